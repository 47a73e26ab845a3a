using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using Ferry.Core.Errors;
using Microsoft.Extensions.Logging;

namespace Ferry.Virt.Qemu;

/// <summary>
/// Cold migration and resize: power off, copy the instance directory to the destination through an
/// agent-to-agent transfer (<see cref="InstanceTransfer"/>), boot it there with the new flavor, keep the source
/// copy as <c>&lt;uuid&gt;_resize</c> (Nova's name) until confirm, restore it on revert.
/// </summary>
/// <remarks>
/// The kept source copy stays in <c>_guests</c> (powered off), so <see cref="GetGuest"/> and <see cref="ListGuests"/>
/// report it as the fake driver does, until a same-host finish replaces it or confirm removes it. Its definition in
/// the runtime directory goes (the uuid's definition belongs to whichever copy runs next); the directory records the
/// host that keeps it (<see cref="ResizeHostFile"/>) so <see cref="AdoptKeptResizeSourcesAsync"/> finds it after a restart.
/// Confirm and revert work from the files alone, so they also work after an agent restart.
/// </remarks>
public sealed partial class QemuDriver
{
    public const string ResizeSuffix = "_resize";

    /// <summary>In <c>&lt;uuid&gt;_resize/</c>: the name of the host that keeps the copy (a shared instances path holds several hosts' copies).</summary>
    public const string ResizeHostFile = "resize.host";

    private const long GiB = 1L << 30;

    /// <summary>The kept source copy of each guest resized away from here, while this agent knows it.</summary>
    private readonly ConcurrentDictionary<string, QemuGuest> _resizeKept = new(StringComparer.Ordinal);

    private readonly ConcurrentDictionary<string, InstanceTransfer> _resizeTransfers = new(StringComparer.Ordinal);

    /// <summary>Where <see cref="MigrateDiskAndPowerOffAsync"/> keeps the source copy until confirm or revert.</summary>
    public string ResizeDirectory(string uuid) => InstanceDirectory(uuid) + ResizeSuffix;

    /// <summary>The transfer serving the kept copy of <paramref name="uuid"/>, while it runs (diagnostics and tests).</summary>
    internal InstanceTransfer? GetResizeTransfer(string uuid) => _resizeTransfers.TryGetValue(uuid, out var transfer) ? transfer : null;

    /// <summary>
    /// Registers the kept copies of unconfirmed resizes (<c>&lt;uuid&gt;_resize</c>) as powered-off guests, as before an
    /// agent restart, unless a guest with that uuid is defined (a same-host resize's new copy). Meant to be called by
    /// <see cref="InitHostAsync"/>, which skips these directories (their guest.json names the uuid without the suffix).
    /// </summary>
    internal async Task AdoptKeptResizeSourcesAsync(CancellationToken cancellationToken)
    {
        foreach (var dir in Directory.EnumerateDirectories(_options.InstancesPath, "*" + ResizeSuffix))
        {
            var uuid = Path.GetFileName(dir)[..^ResizeSuffix.Length];
            var specPath = Path.Combine(dir, "guest.json");
            var hostPath = Path.Combine(dir, ResizeHostFile);
            if (uuid.Length == 0 || _guests.ContainsKey(uuid) || !File.Exists(specPath) || !File.Exists(hostPath)
                || (await File.ReadAllTextAsync(hostPath, cancellationToken)).Trim() != _options.HostName)
            {
                continue;
            }
            var spec = JsonSerializer.Deserialize(await File.ReadAllTextAsync(specPath, cancellationToken), QemuJsonContext.Default.GuestSpec);
            if (spec is null || spec.Uuid != uuid)
            {
                continue;
            }
            var record = new QemuGuest(spec);
            if (_guests.TryAdd(uuid, record))
            {
                _resizeKept[uuid] = record;
            }
        }
    }

    public Task CheckCanReceiveAsync(GuestSpec resized, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(resized);
        try
        {
            CheckSocketPath(resized.Uuid);
        }
        catch (FerryException ex) when (ex is not InstanceFaultRollbackException)
        {
            throw new InstanceFaultRollbackException(ex.Message);
        }
        if (IsTestGuest(resized))
        {
            if (_options.TestGuestKernelPath is not { } kernel || !File.Exists(kernel))
            {
                throw new InstanceFaultRollbackException($"The test guest kernel '{_options.TestGuestKernelPath}' does not exist on {_options.HostName}.");
            }
        }
        else if (!File.Exists(BaseImagePath(resized.ImageRef))
            && (_options.ImagesPath is not { } images || !File.Exists(Path.Combine(images, ValidSegment(resized.ImageRef)))))
        {
            throw new InstanceFaultRollbackException($"Image {resized.ImageRef} is not available on {_options.HostName}.");
        }

        // Nova's resize claim: the new size must fit next to the guests that run here (a same-host resize frees the old size).
        var committedMb = _guests.Values
            .Where(g => g.Spec.Uuid != resized.Uuid && g.Process is { HasExited: false })
            .Sum(g => (long)g.Spec.MemoryMb);
        var (totalMb, availableMb) = ReadHostMemoryMb();
        var sameHostMb = _guests.TryGetValue(resized.Uuid, out var here) && here.Process is { HasExited: false } ? here.Spec.MemoryMb : 0;
        var freeMb = Math.Min(totalMb - committedMb, availableMb + sameHostMb);
        if (resized.MemoryMb > freeMb)
        {
            throw new InstanceFaultRollbackException(
                $"Insufficient compute resources: Free memory {freeMb} MB < requested {resized.MemoryMb} MB.");
        }
        if (!resized.VolumeBacked)
        {
            var freeGb = new DriveInfo(Path.GetFullPath(_options.InstancesPath)).AvailableFreeSpace / (double)GiB;
            if (resized.RootGb > freeGb)
            {
                throw new InstanceFaultRollbackException(string.Create(CultureInfo.InvariantCulture,
                    $"Insufficient compute resources: Free disk {freeGb:F1} GB < requested {resized.RootGb} GB."));
            }
        }
        return Task.CompletedTask;
    }

    public async Task<Dictionary<string, string>> MigrateDiskAndPowerOffAsync(GuestSpec guest, string destHost, GuestSpec resized, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(guest);
        ArgumentNullException.ThrowIfNull(resized);
        if (!guest.VolumeBacked && resized.RootGb < guest.RootGb)
        {
            throw new InstanceFaultRollbackException("Unable to resize disk down.");
        }
        if (!_guests.TryGetValue(guest.Uuid, out var record))
        {
            throw new InstanceNotFoundException(guest.Uuid);
        }
        await record.Lock.WaitAsync(cancellationToken);
        try
        {
            await StopResizeTransferAsync(guest.Uuid);
            // quit flushes every block device, so the overlay is consistent once QEMU is gone.
            await StopGuestAsync(record, cancellationToken);
            var dir = InstanceDirectory(guest.Uuid);
            var resizeDir = ResizeDirectory(guest.Uuid);
            if (Directory.Exists(resizeDir))
            {
                Directory.Delete(resizeDir, recursive: true);
            }
            if (Directory.Exists(dir))
            {
                Directory.Move(dir, resizeDir);
            }
            else
            {
                Directory.CreateDirectory(resizeDir);
            }
            var runtime = RuntimeDirectory(guest.Uuid);
            if (Directory.Exists(runtime))
            {
                Directory.Delete(runtime, recursive: true);
            }
            try
            {
                await File.WriteAllTextAsync(Path.Combine(resizeDir, ResizeHostFile), _options.HostName, cancellationToken);
                string[] names = ["disk", "disk.config"];
                var transfer = await InstanceTransfer.StartAsync(_options.HostAddress, resizeDir,
                    names.Where(n => File.Exists(Path.Combine(resizeDir, n))).ToList(), _options.ResizeTransferLifetime, cancellationToken);
                _resizeTransfers[guest.Uuid] = transfer;
                _resizeKept[guest.Uuid] = record;
                var diskInfo = new Dictionary<string, string>(StringComparer.Ordinal)
                {
                    ["image_ref"] = guest.ImageRef,
                    ["root_gb"] = guest.RootGb.ToString(CultureInfo.InvariantCulture),
                    ["source_host"] = _options.HostName,
                    ["source_path"] = resizeDir,
                    ["dest_host"] = destHost,
                };
                transfer.AddTo(diskInfo);
                LogResizeServing(guest.Uuid, destHost, transfer.Address, transfer.Port, transfer.Files.Count);
                return diskInfo;
            }
            catch
            {
                // Nothing left the host: put the directory back where FinishRevertMigrationAsync expects either copy.
                if (!Directory.Exists(dir))
                {
                    Directory.Move(resizeDir, dir);
                    File.Delete(Path.Combine(dir, ResizeHostFile));
                }
                SaveDefinition(record.Spec);
                throw;
            }
        }
        finally
        {
            record.Lock.Release();
        }
    }

    public async Task FinishMigrationAsync(GuestSpec resized, Dictionary<string, string> diskInfo, bool powerOn, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(resized);
        ArgumentNullException.ThrowIfNull(diskInfo);
        var uuid = resized.Uuid;
        var dir = InstanceDirectory(uuid);
        CheckSocketPath(uuid);
        // The only guest that may already carry this uuid here is our own kept source copy (a same-host resize).
        var existing = _guests.TryGetValue(uuid, out var defined) ? defined : null;
        if (existing is not null && (!_resizeKept.TryGetValue(uuid, out var kept) || kept != existing))
        {
            throw new ConflictException($"Guest {uuid} is already defined on {_options.HostName}.");
        }
        if (Directory.Exists(dir))
        {
            throw new ConflictException($"The destination already holds files of {uuid} at {dir}.");
        }
        var record = new QemuGuest(resized);
        var registered = false;
        await record.Lock.WaitAsync(cancellationToken);
        try
        {
            Directory.CreateDirectory(dir);
            var files = await InstanceTransfer.ReceiveAsync(diskInfo, dir, cancellationToken);
            var disk = Path.Combine(dir, "disk");
            if (files.Any(f => f.Name == "disk"))
            {
                await AdoptRootDiskAsync(resized, disk, cancellationToken);
            }
            else if (!resized.VolumeBacked)
            {
                throw new FerryException($"The source of {uuid} handed over no root disk.");
            }
            if (resized.ConfigDrive && !File.Exists(Path.Combine(dir, "disk.config")))
            {
                await WriteConfigDriveAsync(resized, Path.Combine(dir, "disk.config"), cancellationToken);
            }
            await File.WriteAllTextAsync(Path.Combine(dir, "guest.json"), JsonSerializer.Serialize(resized, QemuJsonContext.Default.GuestSpec), cancellationToken);
            registered = existing is null ? _guests.TryAdd(uuid, record) : _guests.TryUpdate(uuid, record, existing);
            if (!registered)
            {
                throw new ConflictException($"Guest {uuid} was defined on {_options.HostName} during the migration.");
            }
            if (powerOn)
            {
                await StartGuestAsync(record, cancellationToken);
            }
            else
            {
                SaveDefinition(resized);
            }
            LogResizeFinished(uuid, _options.HostName, resized.MemoryMb, resized.RootGb, powerOn);
        }
        catch
        {
            // Leave nothing behind: the source still has its copy and takes the guest back.
            if (registered)
            {
                if (existing is null)
                {
                    _guests.TryRemove(new KeyValuePair<string, QemuGuest>(uuid, record));
                }
                else
                {
                    _guests.TryUpdate(uuid, existing, record);
                }
            }
            if (record.Process is { } started)
            {
                record.Process = null;
                await started.DisposeAsync();
            }
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
            // The kept copy (same host) has no definition since the power-off, so any here is ours.
            if (Directory.Exists(RuntimeDirectory(uuid)))
            {
                Directory.Delete(RuntimeDirectory(uuid), recursive: true);
            }
            throw;
        }
        finally
        {
            record.Lock.Release();
        }
    }

    public async Task ConfirmMigrationAsync(GuestSpec guest, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(guest);
        await StopResizeTransferAsync(guest.Uuid);
        if (_resizeKept.TryRemove(guest.Uuid, out var kept))
        {
            // Only the kept record goes; a same-host resize's running <uuid> guest is a different record.
            await kept.Lock.WaitAsync(cancellationToken);
            try
            {
                await StopGuestAsync(kept, cancellationToken);
                _guests.TryRemove(new KeyValuePair<string, QemuGuest>(guest.Uuid, kept));
            }
            finally
            {
                kept.Lock.Release();
            }
        }
        var resizeDir = ResizeDirectory(guest.Uuid);
        if (Directory.Exists(resizeDir))
        {
            Directory.Delete(resizeDir, recursive: true);
            LogResizeConfirmed(guest.Uuid, _options.HostName);
        }
    }

    public async Task FinishRevertMigrationAsync(GuestSpec guest, bool powerOn, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(guest);
        var uuid = guest.Uuid;
        var dir = InstanceDirectory(uuid);
        var resizeDir = ResizeDirectory(uuid);
        await StopResizeTransferAsync(uuid);
        if (!Directory.Exists(resizeDir) && !File.Exists(Path.Combine(dir, "disk")) && !File.Exists(Path.Combine(dir, "guest.json")))
        {
            throw new InstanceNotFoundException(uuid);
        }
        _resizeKept.TryRemove(uuid, out var kept);
        var current = _guests.TryGetValue(uuid, out var defined) ? defined : null;
        var record = kept ?? current ?? new QemuGuest(guest);
        if (current is not null && current != record)
        {
            // A destination copy still defined here (same host, not destroyed first): the kept source copy wins.
            await current.Lock.WaitAsync(cancellationToken);
            try
            {
                await StopGuestAsync(current, cancellationToken);
                _guests.TryRemove(new KeyValuePair<string, QemuGuest>(uuid, current));
            }
            finally
            {
                current.Lock.Release();
            }
        }
        await record.Lock.WaitAsync(cancellationToken);
        try
        {
            if (Directory.Exists(resizeDir) && record.Process is not { HasExited: false })
            {
                if (Directory.Exists(dir))
                {
                    Directory.Delete(dir, recursive: true);
                }
                Directory.Move(resizeDir, dir);
            }
            File.Delete(Path.Combine(dir, ResizeHostFile));
            record.Spec = guest;
            if (guest.ConfigDrive && !File.Exists(Path.Combine(dir, "disk.config")))
            {
                await WriteConfigDriveAsync(guest, Path.Combine(dir, "disk.config"), cancellationToken);
            }
            await File.WriteAllTextAsync(Path.Combine(dir, "guest.json"), JsonSerializer.Serialize(guest, QemuJsonContext.Default.GuestSpec), cancellationToken);
            _guests[uuid] = record;
            var running = record.Process is { HasExited: false };
            if (powerOn && !running)
            {
                await StartGuestAsync(record, cancellationToken);
            }
            else if (!powerOn && running)
            {
                await StopGuestAsync(record, cancellationToken);
            }
            if (!powerOn)
            {
                SaveDefinition(guest);
            }
            LogResizeReverted(uuid, _options.HostName, powerOn);
        }
        finally
        {
            record.Lock.Release();
        }
    }

    // --- internals ---

    /// <summary>Re-points the handed-over overlay at this host's own copy of the image and grows it to the new root size.</summary>
    private async Task AdoptRootDiskAsync(GuestSpec resized, string disk, CancellationToken cancellationToken)
    {
        using var info = JsonDocument.Parse(await RunToolAsync(_options.QemuImgBinary, ["info", "--output=json", disk], cancellationToken));
        var format = info.RootElement.GetProperty("format").GetString() ?? "raw";
        if (info.RootElement.TryGetProperty("backing-filename", out _))
        {
            // The backing content is the same image, only its path differs: an unsafe rebase only rewrites the header.
            var (basePath, baseFormat) = await EnsureBaseImageAsync(resized, cancellationToken);
            await RunToolAsync(_options.QemuImgBinary, ["rebase", "-q", "-u", "-f", format, "-b", basePath, "-F", baseFormat, disk], cancellationToken);
        }
        var virtualSize = info.RootElement.GetProperty("virtual-size").GetInt64();
        if (!resized.VolumeBacked && resized.RootGb * GiB > virtualSize)
        {
            await RunToolAsync(_options.QemuImgBinary,
                ["resize", "-q", "-f", format, disk, string.Create(CultureInfo.InvariantCulture, $"{resized.RootGb}G")], cancellationToken);
        }
    }

    private async Task StopResizeTransferAsync(string uuid)
    {
        if (_resizeTransfers.TryRemove(uuid, out var transfer))
        {
            await transfer.DisposeAsync();
        }
    }

    private string BaseImagePath(string imageRef) =>
        Path.Combine(BaseDirectory, Convert.ToHexStringLower(System.Security.Cryptography.SHA1.HashData(System.Text.Encoding.UTF8.GetBytes(imageRef))));

    /// <summary>MemTotal and MemAvailable in MiB (0 when /proc/meminfo cannot be read, which refuses every claim).</summary>
    private static (long TotalMb, long AvailableMb) ReadHostMemoryMb()
    {
        long total = 0, available = 0;
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
            {
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length < 2 || !long.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out var kb))
                {
                    continue;
                }
                if (fields[0] == "MemTotal:")
                {
                    total = kb / 1024;
                }
                else if (fields[0] == "MemAvailable:")
                {
                    available = kb / 1024;
                }
            }
        }
        catch (IOException)
        {
        }
        return (total, available);
    }
}
