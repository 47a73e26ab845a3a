using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Ferry.Core.Errors;
using Ferry.Core.Images;
using Ferry.Virt.Qemu.Qmp;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ferry.Virt.Qemu;

/// <summary>
/// Runs each guest as its own QEMU process driven over QMP, without libvirt (as Proxmox VE's qemu-server does).
/// Files follow Nova's libvirt layout: <c>&lt;InstancesPath&gt;/_base/&lt;sha1(image ref)&gt;</c> is the host's copy of the
/// image, <c>&lt;uuid&gt;/disk</c> a qcow2 overlay on it, plus <c>disk.config</c>, <c>console.log</c> (serial),
/// <c>guest.json</c> (the spec). What makes a guest <em>defined on this host</em> lives apart, in the host's own
/// runtime directory <c>&lt;InstancesPath&gt;/_run/&lt;host&gt;/&lt;uuid&gt;/</c> (<c>guest.json</c>, <c>qmp.sock</c>,
/// <c>qemu.pid</c>), as libvirt keeps domain definitions per host: on a shared instances path two hosts then never
/// collide on a socket or pid file during a migration, and a host adopts only its own guests when it starts.
/// </summary>
public sealed partial class QemuDriver : IComputeDriver, IAsyncDisposable
{
    public const string QemuHypervisorType = "QEMU";

    private const string BaseDirectoryName = "_base";
    private const string RuntimeDirectoryName = "_run";
    private const int MaxUnixSocketPathBytes = 107;
    private const string QemuLogFileName = "qemu.log";

    private readonly QemuDriverOptions _options;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, QemuGuest> _guests = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _baseLock = new(1, 1);
    /// <summary>One lock per image: guests of one image wait for its single download, other images download meanwhile.</summary>
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _imageLocks = new(StringComparer.Ordinal);
    private readonly IImageService? _images;
    private int _imageDownloads;
    private long _hypervisorVersion;
    private string? _accel;
    private int _disposed;

    /// <param name="images">Where images missing from <c>_base</c> are downloaded from (the image API); null: only <see cref="QemuDriverOptions.ImagesPath"/>.</param>
    public QemuDriver(QemuDriverOptions options, ILogger<QemuDriver>? logger = null, IImageService? images = null)
    {
        _images = images;
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.InstancesPath);
        if (options.Accel is not ("auto" or "kvm" or "tcg"))
        {
            throw new ArgumentException($"Accel must be auto, kvm or tcg, not '{options.Accel}'.", nameof(options));
        }
        _options = options;
        _logger = logger ?? NullLogger<QemuDriver>.Instance;
    }

    public string HypervisorType => QemuHypervisorType;

    public QemuDriverOptions Options => _options;

    /// <summary>The accelerator guests start with: the configured one, or KVM when /dev/kvm can be opened, else TCG.</summary>
    public string Accel => _accel ??= _options.Accel != "auto" ? _options.Accel : (KvmAvailable() ? "kvm" : "tcg");

    public string InstanceDirectory(string uuid) => Path.Combine(_options.InstancesPath, ValidSegment(uuid));

    public string BaseDirectory => Path.Combine(_options.InstancesPath, BaseDirectoryName);

    /// <summary>Images downloaded from the image service into <see cref="BaseDirectory"/> so far (verified ones).</summary>
    public int ImageDownloads => Volatile.Read(ref _imageDownloads);

    /// <summary>This host's definition and control files of the guest (never shared with another host).</summary>
    public string RuntimeDirectory(string uuid) => Path.Combine(_options.InstancesPath, RuntimeDirectoryName, ValidSegment(_options.HostName), ValidSegment(uuid));

    public string ConsoleLogPath(string uuid) => Path.Combine(InstanceDirectory(uuid), "console.log");

    /// <summary>The pid of the guest's QEMU process while it runs.</summary>
    public int? GetProcessId(string uuid) =>
        _guests.TryGetValue(uuid, out var guest) && guest.Process is { } process && !process.HasExited ? process.Pid : null;

    public async Task<IReadOnlyList<GuestInfo>> InitHostAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(_options.InstancesPath);
        Directory.CreateDirectory(BaseDirectory);
        _hypervisorVersion = await ReadQemuVersionAsync(cancellationToken);
        var attached = 0;
        var definitions = Path.Combine(_options.InstancesPath, RuntimeDirectoryName, ValidSegment(_options.HostName));
        Directory.CreateDirectory(definitions);
        foreach (var runtime in Directory.EnumerateDirectories(definitions))
        {
            var uuid = Path.GetFileName(runtime);
            var specPath = Path.Combine(runtime, "guest.json");
            if (_guests.ContainsKey(uuid) || !File.Exists(specPath))
            {
                continue;
            }
            var spec = JsonSerializer.Deserialize(await File.ReadAllTextAsync(specPath, cancellationToken), QemuJsonContext.Default.GuestSpec);
            if (spec is null || spec.Uuid != uuid)
            {
                continue;
            }
            var guest = new QemuGuest(spec);
            var process = await QemuProcess.AttachAsync(uuid, Path.Combine(runtime, "qemu.pid"), Path.Combine(runtime, "qmp.sock"), cancellationToken, Path.Combine(InstanceDirectory(uuid), QemuLogFileName));
            if (process is not null)
            {
                guest.Process = process;
                guest.PowerState = await QueryStatusAsync(process, cancellationToken);
                StartEventPump(guest, process);
                attached++;
                LogReattached(uuid, process.Pid);
            }
            else if (File.Exists(ManagedSavePath(uuid)))
            {
                guest.PowerState = GuestPowerState.Suspended;
            }
            _guests.TryAdd(uuid, guest);
        }
        await AdoptKeptResizeSourcesAsync(cancellationToken);
        await InitHostNetworkAsync(cancellationToken);
        LogHostInitialized(_options.HostName, _hypervisorVersion, Accel, _guests.Count, attached);
        return ListGuests();
    }

    public HostResources GetHostResources()
    {
        if (_hypervisorVersion == 0)
        {
            _hypervisorVersion = ReadQemuVersion();
        }
        Directory.CreateDirectory(_options.InstancesPath);
        return new HostResources
        {
            HypervisorType = HypervisorType,
            HypervisorVersion = _hypervisorVersion,
            Vcpus = HostCpuCount(),
            MemoryMb = HostMemoryMb(),
            // Nova reports local_gb as the size of the instances file system; placement subtracts allocations itself.
            LocalGb = (int)(new DriveInfo(Path.GetFullPath(_options.InstancesPath)).TotalSize >> 30),
            CpuModel = _options.CpuModel,
        };
    }

    public event Action<string>? GuestStopped;

    public GuestInfo? GetGuest(string uuid) => _guests.TryGetValue(uuid, out var guest) ? guest.ToInfo() : null;

    public IReadOnlyList<GuestInfo> ListGuests() => _guests.Values.Select(g => g.ToInfo()).ToList();

    /// <summary>Asks QEMU for the guest's run state (<c>query-status</c>); Shutdown when no process runs.</summary>
    public async Task<GuestPowerState> QueryPowerStateAsync(string uuid, CancellationToken cancellationToken)
    {
        if (!_guests.TryGetValue(uuid, out var guest))
        {
            throw new NotFoundException($"Guest {uuid} is not defined on {_options.HostName}.");
        }
        if (guest.Process is not { } process || process.HasExited)
        {
            return GuestPowerState.Shutdown;
        }
        guest.PowerState = await QueryStatusAsync(process, cancellationToken);
        return guest.PowerState;
    }

    /// <summary>Runs a QMP command on the guest's monitor (diagnostics and tests).</summary>
    public async Task<JsonElement> ExecuteQmpAsync(string uuid, string command, JsonObject? arguments, CancellationToken cancellationToken)
    {
        if (!_guests.TryGetValue(uuid, out var guest) || guest.Process is not { } process)
        {
            throw new NotFoundException($"Guest {uuid} has no running QEMU on {_options.HostName}.");
        }
        return await process.Qmp.ExecuteAsync(command, arguments, cancellationToken);
    }

    public async Task SpawnAsync(GuestSpec guest, bool reuseDisks, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(guest);
        VifModels.Resolve(guest.VifModel);     // before anything is made: libvirt refuses it while building the domain XML
        var dir = InstanceDirectory(guest.Uuid);
        var record = new QemuGuest(guest);
        if (!_guests.TryAdd(guest.Uuid, record))
        {
            throw new ConflictException($"Guest {guest.Uuid} is already defined on {_options.HostName}.");
        }
        await record.Lock.WaitAsync(cancellationToken);
        try
        {
            CheckSocketPath(guest.Uuid);
            Directory.CreateDirectory(dir);
            var disk = Path.Combine(dir, "disk");
            if (!guest.VolumeBacked && (!reuseDisks || !File.Exists(disk)))
            {
                if (reuseDisks)
                {
                    throw new NotFoundException($"Guest {guest.Uuid} has no disk at {disk} to reuse.");
                }
                await CreateRootDiskAsync(guest, disk, cancellationToken);
            }
            if (guest.ConfigDrive && (!reuseDisks || !File.Exists(Path.Combine(dir, "disk.config"))))
            {
                await WriteConfigDriveAsync(guest, Path.Combine(dir, "disk.config"), cancellationToken);
            }
            await File.WriteAllTextAsync(Path.Combine(dir, "guest.json"), JsonSerializer.Serialize(guest, QemuJsonContext.Default.GuestSpec), cancellationToken);
            var process = await StartGuestAsync(record, cancellationToken);
            LogSpawned(guest.Uuid, _options.HostName, process.Pid, reuseDisks);
        }
        catch
        {
            _guests.TryRemove(new KeyValuePair<string, QemuGuest>(guest.Uuid, record));
            if (record.Process is { } started)
            {
                await started.DisposeAsync();
            }
            if (!reuseDisks && Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
            throw;
        }
        finally
        {
            record.Lock.Release();
        }
    }

    public async Task DestroyAsync(string uuid, bool destroyDisks, CancellationToken cancellationToken)
    {
        var dir = InstanceDirectory(uuid);
        if (_guests.TryGetValue(uuid, out var guest))
        {
            await guest.Lock.WaitAsync(cancellationToken);
            try
            {
                await StopGuestAsync(guest, cancellationToken);
                _guests.TryRemove(new KeyValuePair<string, QemuGuest>(uuid, guest));
            }
            finally
            {
                guest.Lock.Release();
            }
        }
        DeleteDirectory(RuntimeDirectory(uuid));
        if (destroyDisks)
        {
            DeleteDirectory(dir);
        }
        LogDestroyed(uuid, _options.HostName, destroyDisks);
    }

    /// <summary>Deletes a directory tree that another host may be deleting at the same time (shared instances path).</summary>
    private static void DeleteDirectory(string path)
    {
        try
        {
            Directory.Delete(path, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    public async Task PowerOffAsync(string uuid, CancellationToken cancellationToken)
    {
        var guest = Find(uuid);
        await guest.Lock.WaitAsync(cancellationToken);
        try
        {
            await StopGuestAsync(guest, cancellationToken);
            LogPoweredOff(uuid);
        }
        finally
        {
            guest.Lock.Release();
        }
    }

    public async Task PowerOnAsync(string uuid, CancellationToken cancellationToken)
    {
        var guest = Find(uuid);
        await guest.Lock.WaitAsync(cancellationToken);
        try
        {
            if (guest.Process is { HasExited: false } running)
            {
                if (guest.PowerState == GuestPowerState.Paused)
                {
                    await running.Qmp.ExecuteAsync("cont", null, cancellationToken);
                    guest.PowerState = await QueryStatusAsync(running, cancellationToken);
                }
                return;
            }
            var process = await StartGuestAsync(guest, cancellationToken);
            LogPoweredOn(uuid, process.Pid);
        }
        finally
        {
            guest.Lock.Release();
        }
    }

    public async Task RebootAsync(string uuid, bool hard, CancellationToken cancellationToken)
    {
        var guest = Find(uuid);
        await guest.Lock.WaitAsync(cancellationToken);
        try
        {
            if (guest.Process is not { HasExited: false } running)
            {
                // A hard reboot boots afresh: a suspended guest's saved state goes, as Nova's libvirt driver drops the managed save.
                File.Delete(ManagedSavePath(uuid));
                await StartGuestAsync(guest, cancellationToken);
            }
            else if (!hard && await PowerDownGracefullyAsync(running, cancellationToken))
            {
                await StopGuestAsync(guest, cancellationToken);
                await StartGuestAsync(guest, cancellationToken);
            }
            else
            {
                // system_reset restarts the machine in the same process (same disk, same QMP socket).
                await running.Qmp.ExecuteAsync("system_reset", null, cancellationToken);
                if (guest.PowerState == GuestPowerState.Paused)
                {
                    await running.Qmp.ExecuteAsync("cont", null, cancellationToken);
                }
                guest.PowerState = await QueryStatusAsync(running, cancellationToken);
            }
            LogRebooted(uuid, hard);
        }
        finally
        {
            guest.Lock.Release();
        }
    }

    /// <summary>ACPI power button, then waits for QEMU to exit; false when the guest ignored it in time.</summary>
    private async Task<bool> PowerDownGracefullyAsync(QemuProcess process, CancellationToken cancellationToken)
    {
        await process.Qmp.ExecuteAsync("system_powerdown", null, cancellationToken);
        var deadline = DateTime.UtcNow + _options.SoftRebootTimeout;
        while (!process.HasExited && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100, cancellationToken);
        }
        return process.HasExited;
    }

    public Task<string> GetConsoleOutputAsync(string uuid, CancellationToken cancellationToken)
    {
        Find(uuid);
        return ConsoleLog.ReadTailAsync(ConsoleLogPath(uuid), cancellationToken);
    }

    public string CreateSharedStorageTestFile()
    {
        Directory.CreateDirectory(_options.InstancesPath);
        var name = "ferry-shared-storage-" + Guid.NewGuid().ToString("N");
        File.WriteAllText(Path.Combine(_options.InstancesPath, name), _options.HostName);
        return name;
    }

    public bool CheckSharedStorageTestFile(string filename) =>
        File.Exists(Path.Combine(_options.InstancesPath, ValidSegment(filename)));

    public void CleanupSharedStorageTestFile(string filename)
    {
        var path = Path.Combine(_options.InstancesPath, ValidSegment(filename));
        if (File.Exists(path))
        {
            File.Delete(path);
        }
    }

    public bool InstanceOnDisk(string uuid)
    {
        var dir = InstanceDirectory(uuid);
        return File.Exists(Path.Combine(dir, "disk")) || File.Exists(Path.Combine(dir, "guest.json"));
    }

    /// <remarks>The config drive does not count: it is a pure function of the spec, written again on the destination.</remarks>
    public bool HasLocalDisks(GuestSpec guest)
    {
        ArgumentNullException.ThrowIfNull(guest);
        return !guest.VolumeBacked;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        foreach (var guest in _guests.Values)
        {
            if (guest.Process is not { } process)
            {
                continue;
            }
            guest.Process = null; // the event pump must not take the closed monitor for an exited guest
            if (_options.KillGuestsOnDispose)
            {
                await process.DisposeAsync();
            }
            else
            {
                await process.Qmp.DisposeAsync();
            }
        }
        foreach (var transfer in _resizeTransfers.Values)
        {
            await transfer.DisposeAsync();
        }
        _resizeTransfers.Clear();
        _guests.Clear();
        _baseLock.Dispose();
    }

    // --- internals ---

    /// <summary>
    /// A port free on the address, for a QEMU to listen on. When QEMU runs in another network namespace the address is
    /// not this process's: a port free here on any address is taken (that namespace holds only its QEMUs' sockets).
    /// </summary>
    private int FreeTcpPort(string address)
    {
        using var listener = new System.Net.Sockets.TcpListener(_options.NetworkNamespace is null ? System.Net.IPAddress.Parse(address) : System.Net.IPAddress.Any, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    private QemuGuest Find(string uuid) =>
        _guests.TryGetValue(uuid, out var guest) ? guest : throw new NotFoundException($"Guest {uuid} is not defined on {_options.HostName}.");

    private bool IsTestGuest(GuestSpec guest) => _options.TestGuestImageRefs.Contains(guest.ImageRef, StringComparer.Ordinal);

    /// <summary>Records the guest as defined on this host (what <see cref="InitHostAsync"/> adopts after a restart).</summary>
    private void SaveDefinition(GuestSpec guest)
    {
        var runtime = RuntimeDirectory(guest.Uuid);
        Directory.CreateDirectory(runtime);
        File.WriteAllText(Path.Combine(runtime, "guest.json"), JsonSerializer.Serialize(guest, QemuJsonContext.Default.GuestSpec));
    }

    /// <summary>The launch spec of the guest's QEMU; defines the guest on this host first, since every start goes through here.</summary>
    private QemuLaunchSpec LaunchSpec(GuestSpec guest)
    {
        SaveDefinition(guest);
        var runtime = RuntimeDirectory(guest.Uuid);
        var dir = InstanceDirectory(guest.Uuid);
        var configDrive = Path.Combine(dir, "disk.config");
        string? kernel = null;
        string? append = null;
        if (IsTestGuest(guest))
        {
            kernel = _options.TestGuestKernelPath is { } k && File.Exists(k)
                ? k
                : throw new BadRequestException($"The test guest kernel '{_options.TestGuestKernelPath}' does not exist; run tools/test-guest/build.sh.");
            append = QemuTestGuest.KernelAppend(guest);
        }
        return new QemuLaunchSpec
        {
            Uuid = guest.Uuid,
            Name = guest.Name,
            MemoryMb = guest.MemoryMb,
            Vcpus = guest.Vcpus,
            KernelPath = kernel,
            KernelAppend = append,
            DiskPath = guest.VolumeBacked ? null : Path.Combine(dir, "disk"),
            ConfigDrivePath = guest.ConfigDrive && File.Exists(configDrive) ? configDrive : null,
            Volumes = guest.Volumes,
            Nics = Nics(guest),
            NetworkNamespace = _options.NetworkNamespace,
            SerialLogPath = Path.Combine(dir, "console.log"),
            LogPath = Path.Combine(dir, QemuLogFileName),
            QmpSocketPath = Path.Combine(runtime, "qmp.sock"),
            PidFilePath = Path.Combine(runtime, "qemu.pid"),
            Accel = Accel,
            CpuModel = _options.CpuModel,
        };
    }

    private async Task<QemuProcess> StartGuestAsync(QemuGuest guest, CancellationToken cancellationToken)
    {
        var process = await StartQemuAsync(LaunchSpec(guest.Spec), cancellationToken);
        guest.Process = process;
        try
        {
            guest.PowerState = await QueryStatusAsync(process, cancellationToken);
        }
        catch
        {
            guest.Process = null;
            await process.DisposeAsync();
            throw;
        }
        StartEventPump(guest, process);
        return process;
    }

    private async Task StopGuestAsync(QemuGuest guest, CancellationToken cancellationToken)
    {
        if (guest.Process is { } process)
        {
            guest.Process = null; // first, so the event pump does not report this exit as unexpected
            try
            {
                await process.StopAsync(_options.StopGracePeriod, cancellationToken);
            }
            finally
            {
                await process.DisposeAsync();
            }
        }
        guest.PowerState = GuestPowerState.Shutdown;
    }

    /// <summary>Keeps the cached power state current from QMP events; the process ending means Shutdown.</summary>
    private void StartEventPump(QemuGuest guest, QemuProcess process) => _ = Task.Run(async () =>
    {
        try
        {
            await foreach (var e in process.Qmp.Events.ReadAllAsync(CancellationToken.None))
            {
                if (guest.Process != process)
                {
                    return;
                }
                var state = e.Name switch
                {
                    "STOP" => GuestPowerState.Paused,
                    "RESUME" => GuestPowerState.Running,
                    "SHUTDOWN" => GuestPowerState.Shutdown,
                    "GUEST_PANICKED" => GuestPowerState.Crashed,
                    _ => (GuestPowerState?)null,
                };
                if (state is { } s)
                {
                    guest.PowerState = s;
                    if (s == GuestPowerState.Crashed)
                    {
                        GuestStopped?.Invoke(guest.Spec.Uuid);
                    }
                }
            }
            // The monitor closes a moment before the OS reaps the process: wait for that, or a start asked for at once
            // would find the old process still "running" and start nothing.
            if (guest.Process == process)
            {
                await process.WaitForExitAsync(TimeSpan.FromSeconds(10), CancellationToken.None);
            }
            // Still this guest's process: the driver did not end it (its own stops let go of the process first).
            if (guest.Process == process)
            {
                guest.PowerState = GuestPowerState.Shutdown;
                LogProcessExited(guest.Spec.Uuid, process.Pid, string.Join(" | ", process.LastOutput));
                GuestStopped?.Invoke(guest.Spec.Uuid);
            }
        }
        catch (ObjectDisposedException)
        {
        }
    }, CancellationToken.None);

    private static async Task<GuestPowerState> QueryStatusAsync(QemuProcess process, CancellationToken cancellationToken) =>
        MapStatus(await RunStatusAsync(process, cancellationToken));

    /// <summary>QEMU's RunState: running, paused, inmigrate, postmigrate…</summary>
    private static async Task<string?> RunStatusAsync(QemuProcess process, CancellationToken cancellationToken) =>
        (await process.Qmp.ExecuteAsync("query-status", null, cancellationToken)).GetProperty("status").GetString();

    /// <summary>QEMU's RunState (qapi/run-state.json) as a Nova power state.</summary>
    public static GuestPowerState MapStatus(string? status) => status switch
    {
        "running" => GuestPowerState.Running,
        "shutdown" => GuestPowerState.Shutdown,
        "internal-error" or "guest-panicked" => GuestPowerState.Crashed,
        null or "" => GuestPowerState.NoState,
        _ => GuestPowerState.Paused, // paused, postmigrate, inmigrate, prelaunch, finish-migrate, suspended, io-error, …
    };

    private async Task CreateRootDiskAsync(GuestSpec guest, string diskPath, CancellationToken cancellationToken)
    {
        var (basePath, format) = await EnsureBaseImageAsync(guest, cancellationToken);
        var args = new List<string> { "create", "-q", "-f", "qcow2", "-F", format, "-b", basePath, diskPath };
        if (guest.RootGb > 0)
        {
            args.Add(string.Create(CultureInfo.InvariantCulture, $"{guest.RootGb}G"));
        }
        await RunToolAsync(_options.QemuImgBinary, args, cancellationToken);
    }

    /// <summary>
    /// The host's copy of the image under <c>_base/&lt;sha1(image ref)&gt;</c> (Nova's image cache), created once: the test
    /// guest's blank disk, a copy from <see cref="QemuDriverOptions.ImagesPath"/>, or a verified download from the image
    /// service written to <c>*.part</c> and renamed, so <c>_base</c> never holds a partial or corrupt image.
    /// </summary>
    private async Task<(string Path, string Format)> EnsureBaseImageAsync(GuestSpec guest, CancellationToken cancellationToken)
    {
        var hash = Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(guest.ImageRef)));
        var basePath = Path.Combine(BaseDirectory, hash);
        var imageLock = _imageLocks.GetOrAdd(hash, _ => new SemaphoreSlim(1, 1));
        await imageLock.WaitAsync(cancellationToken);
        try
        {
            Directory.CreateDirectory(BaseDirectory);
            if (!File.Exists(basePath))
            {
                var temp = basePath + ".part";
                try
                {
                    var local = _options.ImagesPath is { } images ? Path.Combine(images, ValidSegment(guest.ImageRef)) : null;
                    if (IsTestGuest(guest))
                    {
                        // The test guest boots from -kernel; its disk only makes the instance layout real.
                        await RunToolAsync(_options.QemuImgBinary,
                            ["create", "-q", "-f", "raw", temp, string.Create(CultureInfo.InvariantCulture, $"{_options.TestGuestBaseImageMb}M")], cancellationToken);
                    }
                    else if (local is not null && File.Exists(local))
                    {
                        File.Copy(local, temp, overwrite: true);
                    }
                    else if (_images is not null)
                    {
                        await ImageDownload.FetchAsync(_images, guest.ImageRef, temp, cancellationToken);
                        Interlocked.Increment(ref _imageDownloads);
                        LogImageDownloaded(guest.ImageRef, _options.HostName, new FileInfo(temp).Length);
                    }
                    else
                    {
                        throw new NotFoundException($"Image {guest.ImageRef} could not be found.");
                    }
                    File.Move(temp, basePath, overwrite: true);
                }
                finally
                {
                    File.Delete(temp); // a failed or cancelled fetch leaves nothing behind
                }
                LogBaseCreated(guest.ImageRef, basePath);
            }
        }
        finally
        {
            imageLock.Release();
        }
        return (basePath, await DetectFormatAsync(basePath, cancellationToken));
    }

    private async Task<string> DetectFormatAsync(string path, CancellationToken cancellationToken)
    {
        var info = await RunToolAsync(_options.QemuImgBinary, ["info", "-U", "--output=json", path], cancellationToken);
        using var doc = JsonDocument.Parse(info);
        return doc.RootElement.GetProperty("format").GetString() ?? "raw";
    }

    /// <summary>Nova's config drive: an ISO 9660 volume labelled config-2 (<see cref="ConfigDrive"/>), made with xorriso as Nova makes it with genisoimage.</summary>
    private async Task WriteConfigDriveAsync(GuestSpec guest, string path, CancellationToken cancellationToken)
    {
        var staging = path + ".tree";
        if (Directory.Exists(staging))
        {
            Directory.Delete(staging, recursive: true);
        }
        Directory.CreateDirectory(staging);
        try
        {
            await ConfigDrive.WriteTreeAsync(guest, staging, cancellationToken);
            await RunToolAsync(_options.XorrisoBinary,
                ["-as", "mkisofs", "-o", path, "-ldots", "-allow-lowercase", "-allow-multidot", "-l", "-publisher", "Ferry", "-quiet", "-J", "-r", "-V", ConfigDrive.VolumeLabel, staging],
                cancellationToken, new Dictionary<string, string> { ["SOURCE_DATE_EPOCH"] = ConfigDrive.SourceDateEpoch });
        }
        finally
        {
            Directory.Delete(staging, recursive: true);
        }
    }

    private static async Task<string> RunToolAsync(string binary, IReadOnlyList<string> args, CancellationToken cancellationToken, IReadOnlyDictionary<string, string>? environment = null)
    {
        var (exitCode, stdout, stderr) = await HostCommand.RunAsync(binary, args, "its Debian package (see tests/qemu-packages.txt)", cancellationToken, environment);
        if (exitCode != 0)
        {
            throw new FerryException($"{binary} {string.Join(' ', args)} failed ({exitCode}): {stderr.Trim()}");
        }
        return stdout;
    }

    private async Task<long> ReadQemuVersionAsync(CancellationToken cancellationToken) =>
        ParseVersion(await RunToolAsync(_options.QemuBinary, ["--version"], cancellationToken));

    private long ReadQemuVersion()
    {
        var psi = new ProcessStartInfo(_options.QemuBinary) { UseShellExecute = false, RedirectStandardOutput = true };
        psi.ArgumentList.Add("--version");
        using var process = Process.Start(psi) ?? throw new FerryException($"Could not start {_options.QemuBinary}.");
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return ParseVersion(output);
    }

    /// <summary>"QEMU emulator version 7.2.22 (…)" → 7002022 (Nova's integer hypervisor_version).</summary>
    public static long ParseVersion(string versionOutput)
    {
        var m = VersionPattern().Match(versionOutput ?? "");
        if (!m.Success)
        {
            throw new FerryException($"Cannot read the QEMU version from '{versionOutput}'.");
        }
        return long.Parse(m.Groups[1].ValueSpan, CultureInfo.InvariantCulture) * 1_000_000
            + long.Parse(m.Groups[2].ValueSpan, CultureInfo.InvariantCulture) * 1_000
            + (m.Groups[3].Success ? long.Parse(m.Groups[3].ValueSpan, CultureInfo.InvariantCulture) : 0);
    }

    /// <summary>
    /// KVM is used only when the CPU offers hardware virtualization (vmx/svm in /proc/cpuinfo) and /dev/kvm opens:
    /// some VMs expose a /dev/kvm that opens without nested virtualization behind it, and a guest started there
    /// never runs its first instruction.
    /// </summary>
    private static bool KvmAvailable()
    {
        try
        {
            if (!CpuHasVirtualization(File.ReadLines("/proc/cpuinfo")))
            {
                return false;
            }
            using var kvm = new FileStream("/dev/kvm", FileMode.Open, FileAccess.ReadWrite);
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    internal static bool CpuHasVirtualization(IEnumerable<string> cpuinfo) =>
        cpuinfo.Where(line => line.StartsWith("flags", StringComparison.Ordinal))
            .Any(line => line.Split([' ', '\t', ':'], StringSplitOptions.RemoveEmptyEntries).Any(flag => flag is "vmx" or "svm"));

    private static int HostCpuCount()
    {
        try
        {
            var count = File.ReadLines("/proc/cpuinfo").Count(l => l.StartsWith("processor", StringComparison.Ordinal));
            return count > 0 ? count : Environment.ProcessorCount;
        }
        catch (IOException)
        {
            return Environment.ProcessorCount;
        }
    }

    private static int HostMemoryMb()
    {
        try
        {
            var line = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
            var kb = line?.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];
            return kb is null ? 0 : (int)(long.Parse(kb, CultureInfo.InvariantCulture) / 1024);
        }
        catch (IOException)
        {
            return 0;
        }
    }

    private void CheckSocketPath(string uuid)
    {
        var socket = Path.GetFullPath(Path.Combine(RuntimeDirectory(uuid), "qmp.sock"));
        if (Encoding.UTF8.GetByteCount(socket) > MaxUnixSocketPathBytes)
        {
            throw new FerryException($"The QMP socket path '{socket}' is longer than {MaxUnixSocketPathBytes} bytes; use a shorter instances path.");
        }
    }

    private static string ValidSegment(string name)
    {
        if (string.IsNullOrWhiteSpace(name) || name is "." or ".." or BaseDirectoryName or RuntimeDirectoryName
            || name.IndexOfAny(['/', '\\', '\0']) >= 0)
        {
            throw new BadRequestException($"Invalid instance or file name '{name}'.");
        }
        return name;
    }

    [GeneratedRegex(@"version (\d+)\.(\d+)(?:\.(\d+))?")]
    private static partial Regex VersionPattern();
}
