using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.Core.Errors;
using Ferry.Core.Volumes;
using Ferry.Virt.Qemu;
using Ferry.Virt.Qemu.Qmp;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ferry.Virt.Storage;

/// <summary>
/// Volumes as sparse raw files, exported over NBD by one long-lived <c>qemu-storage-daemon</c> per run directory
/// (https://www.qemu.org/docs/master/tools/qemu-storage-daemon.html). The daemon runs in a session of its own and outlives
/// the process that started it, as guests do; a later backend object (a restarted API, a second replica) adopts it through
/// its pid file and QMP socket, and starts a new one only when none runs. Every adoption or start reconciles the daemon
/// with the volume files: each file is exported, no export outlives its file.
/// </summary>
/// <remarks>
/// Every step runs under an exclusive lock on a file in the run directory and on a QMP connection of its own (connect,
/// negotiate, command, close): a QMP monitor serves one client at a time, and processes sharing the directory take turns.
/// </remarks>
public sealed partial class QemuStorageDaemonBackend : IVolumeBackend, IAsyncDisposable
{
    /// <summary>The Debian package that brings qemu-storage-daemon.</summary>
    public const string DaemonPackage = "qemu-system-common";

    /// <summary>The Debian package that brings qemu-img.</summary>
    public const string QemuImgPackage = "qemu-utils";

    private const long GiB = 1L << 30;
    private const string VolumePrefix = "volume-";
    private const string RawSuffix = ".raw";
    private const int MaxUnixSocketPathBytes = 107;
    private const int PortPickAttempts = 5;
    private static readonly TimeSpan s_pollInterval = TimeSpan.FromMilliseconds(20);
    private static readonly TimeSpan s_monitorTimeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan s_exportDeleteTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan s_exitTimeout = TimeSpan.FromSeconds(5);

    private readonly QemuStorageDaemonOptions _options;
    private readonly string _volumesDirectory;
    private readonly string _runDirectory;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private Process? _child;
    private int _daemonPid;
    private int _port;
    private int _disposed;

    public QemuStorageDaemonBackend(QemuStorageDaemonOptions options, ILogger<QemuStorageDaemonBackend>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.VolumesDirectory);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.RunDirectory);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.Binary);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.QemuImgBinary);
        if (!IPAddress.TryParse(options.ListenAddress, out var listen))
        {
            throw new ArgumentException($"ListenAddress must be an IP address, not '{options.ListenAddress}'.", nameof(options));
        }
        if (options.Port is < 0 or > IPEndPoint.MaxPort)
        {
            throw new ArgumentException($"Port must be 0 (pick one) or a TCP port, not {options.Port}.", nameof(options));
        }
        if (options.AdvertiseAddress is null && (listen.Equals(IPAddress.Any) || listen.Equals(IPAddress.IPv6Any)))
        {
            throw new ArgumentException($"ListenAddress {options.ListenAddress} is a wildcard: set AdvertiseAddress to the address hosts connect to.", nameof(options));
        }
        _options = options;
        _volumesDirectory = Path.GetFullPath(options.VolumesDirectory);
        _runDirectory = Path.GetFullPath(options.RunDirectory);
        if (Encoding.UTF8.GetByteCount(QmpSocketPath) > MaxUnixSocketPathBytes)
        {
            throw new ArgumentException($"RunDirectory is too long: the QMP socket path {QmpSocketPath} must fit {MaxUnixSocketPathBytes} bytes.", nameof(options));
        }
        _logger = logger ?? NullLogger<QemuStorageDaemonBackend>.Instance;
    }

    public QemuStorageDaemonOptions Options => _options;

    /// <summary>The daemon this backend last started or adopted; null before the first step.</summary>
    public int? DaemonPid => _daemonPid == 0 ? null : _daemonPid;

    /// <summary>The NBD server's port once the daemon was started or adopted; 0 before.</summary>
    public int Port => _port;

    /// <summary>The address hosts are given in <see cref="VolumeConnectionInfo.Host"/>.</summary>
    public string AdvertisedAddress => _options.AdvertiseAddress ?? _options.ListenAddress;

    public string PidFilePath => Path.Combine(_runDirectory, "qemu-storage-daemon.pid");

    public string QmpSocketPath => Path.Combine(_runDirectory, "qmp.sock");

    /// <summary>The daemon's stdout and stderr, appended across starts.</summary>
    public string LogPath => Path.Combine(_runDirectory, "qemu-storage-daemon.log");

    private string LockPath => Path.Combine(_runDirectory, "daemon.lock");

    private string PortFilePath => Path.Combine(_runDirectory, "nbd.port");

    /// <summary>The daemon's QMP chardev argument names the socket: its presence in a process's command line identifies the daemon of this directory.</summary>
    private string DaemonMarker => $"path={EscapeOption(QmpSocketPath)},";

    /// <summary>The volume's raw file.</summary>
    public string VolumePath(string volumeId) => Path.Combine(_volumesDirectory, VolumePrefix + ValidId(volumeId) + RawSuffix);

    /// <summary>The NBD export (its id and its name) of a volume.</summary>
    public static string ExportName(string volumeId) => VolumePrefix + volumeId;

    /// <summary>
    /// The block node of a volume. QEMU limits node names to 31 characters, too few for <c>volume-&lt;uuid&gt;</c>, so the
    /// name is derived from a hash of the id; the export's id, which has no such limit, carries the volume id.
    /// </summary>
    internal static string NodeName(string volumeId) =>
        "vol-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(volumeId)))[..24];

    /// <summary>Starts or adopts the daemon and reconciles its exports with the volume files. Every other method does this first.</summary>
    public Task StartAsync(CancellationToken cancellationToken) =>
        WithDaemonAsync(static (_, _) => Task.CompletedTask, cancellationToken);

    public async Task CreateAsync(string volumeId, int sizeGb, string? sourceImagePath, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sizeGb);
        var path = VolumePath(volumeId);
        Directory.CreateDirectory(_volumesDirectory);
        // Made under a name no reconciliation exports, then renamed: a crash leaves no half-written volume.
        string? temporary = null;
        try
        {
            if (!File.Exists(path))
            {
                temporary = Path.Combine(_volumesDirectory, $".{VolumePrefix}{volumeId}.{Guid.NewGuid():N}.tmp");
                await WriteVolumeFileAsync(volumeId, temporary, sizeGb, sourceImagePath, cancellationToken);
            }
            await WithDaemonAsync(async (qmp, ct) =>
            {
                if (temporary is not null && !File.Exists(path))
                {
                    File.Move(temporary, path);
                    temporary = null;
                    LogVolumeCreated(volumeId, sizeGb, sourceImagePath is null ? "" : $" from {sourceImagePath}");
                }
                await EnsureExportedAsync(qmp, volumeId, ct);
            }, cancellationToken);
        }
        finally
        {
            if (temporary is not null)
            {
                File.Delete(temporary);
            }
        }
    }

    /// <summary>
    /// Grows the file through the daemon (<c>block_resize</c>). QEMU 7.2's NBD export forbids resizing the node under it
    /// and fixes its size when created, so the export is ended (cutting any client, which reconnects) and made again: every
    /// connection from then on sees the new size.
    /// </summary>
    public Task ExtendAsync(string volumeId, int newSizeGb, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(newSizeGb);
        var path = VolumePath(volumeId);
        return WithDaemonAsync(async (qmp, ct) =>
        {
            var current = File.Exists(path) ? new FileInfo(path).Length : throw NoStorage(volumeId, path);
            var size = newSizeGb * GiB;
            if (size < current)
            {
                throw new ArgumentException($"Volume {volumeId} has {current} bytes: it cannot shrink to {newSizeGb} GiB.", nameof(newSizeGb));
            }
            if (size > current)
            {
                try
                {
                    await RemoveExportAsync(qmp, volumeId, ct);
                    await EnsureNodeAsync(qmp, volumeId, ct);
                    await qmp.ExecuteAsync("block_resize", new JsonObject { ["node-name"] = NodeName(volumeId), ["size"] = size }, ct);
                }
                finally
                {
                    await EnsureExportedAsync(qmp, volumeId, ct);
                }
                LogVolumeExtended(volumeId, current, size);
            }
            else
            {
                await EnsureExportedAsync(qmp, volumeId, ct);
            }
        }, cancellationToken);
    }

    /// <summary>Ends the export (at once, dropping clients: Cinder deletes only volumes nothing uses), closes the nodes, deletes the file.</summary>
    public Task DeleteAsync(string volumeId, CancellationToken cancellationToken)
    {
        var path = VolumePath(volumeId);
        return WithDaemonAsync(async (qmp, ct) =>
        {
            await RemoveExportAsync(qmp, volumeId, ct);
            await RemoveNodeAsync(qmp, volumeId, ct);
            if (File.Exists(path))
            {
                File.Delete(path);
                LogVolumeDeleted(volumeId);
            }
        }, cancellationToken);
    }

    public async Task<VolumeConnectionInfo> ConnectionInfoAsync(string volumeId, VolumeConnector connector, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connector);
        var path = VolumePath(volumeId);
        await WithDaemonAsync(async (qmp, ct) =>
        {
            if (!File.Exists(path))
            {
                throw NoStorage(volumeId, path);
            }
            await EnsureExportedAsync(qmp, volumeId, ct);
        }, cancellationToken);
        return new VolumeConnectionInfo { Host = AdvertisedAddress, Port = _port, Export = ExportName(volumeId) };
    }

    public Task<IReadOnlyList<string>> ListExportsAsync(CancellationToken cancellationToken) =>
        WithDaemonAsync<IReadOnlyList<string>>(async (qmp, ct) =>
            [.. (await QueryExportsAsync(qmp, ct)).Select(VolumeIdOfExport).OfType<string>().Order(StringComparer.Ordinal)], cancellationToken);

    /// <summary>Ends this backend; with <paramref name="killDaemon"/> also the daemon (and so every export), else the daemon keeps serving.</summary>
    public async Task StopAsync(bool killDaemon, CancellationToken cancellationToken)
    {
        if (killDaemon)
        {
            await StopDaemonAsync(cancellationToken);
        }
        await DisposeAsync();
    }

    /// <summary>Asks the daemon to quit and kills it if it has not exited within a few seconds. Nothing to do when none runs.</summary>
    public async Task StopDaemonAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        Directory.CreateDirectory(_runDirectory);
        await _gate.WaitAsync(cancellationToken);
        try
        {
            await using var held = await RunDirectoryLock.AcquireAsync(LockPath, cancellationToken);
            if (await ReadPidAsync(cancellationToken) is { } pid && QemuProcess.IsAlive(pid, DaemonMarker))
            {
                try
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    timeout.CancelAfter(s_monitorTimeout);
                    await using var qmp = await QmpClient.ConnectAsync(QmpSocketPath, timeout.Token);
                    await qmp.ExecuteAsync("quit", null, timeout.Token);
                }
                catch (Exception ex) when (ex is QmpException or SocketException or IOException
                    || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
                {
                    // it closes the monitor as it quits, or does not answer: the wait below decides
                }
                var killed = false;
                if (!await WaitForExitAsync(pid, s_exitTimeout, cancellationToken))
                {
                    Kill(pid);
                    killed = true;
                    await WaitForExitAsync(pid, s_exitTimeout, cancellationToken);
                }
                LogDaemonStopped(pid, killed);
            }
            _daemonPid = 0;
            if (_child is not null)
            {
                _child.Dispose();
                _child = null;
            }
            // A killed daemon leaves both behind; a clean exit removes the pid file itself.
            File.Delete(PidFilePath);
            File.Delete(QmpSocketPath);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Lets go of this backend's resources; the daemon keeps running (as guests outlive the agent).</summary>
    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _child?.Dispose();
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>Runs one step under the run directory's lock, on a fresh monitor connection to a daemon that runs and is reconciled.</summary>
    private Task WithDaemonAsync(Func<QmpClient, CancellationToken, Task> step, CancellationToken cancellationToken) =>
        WithDaemonAsync(async (qmp, ct) =>
        {
            await step(qmp, ct);
            return true;
        }, cancellationToken);

    private async Task<T> WithDaemonAsync<T>(Func<QmpClient, CancellationToken, Task<T>> step, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        Directory.CreateDirectory(_runDirectory);
        Directory.CreateDirectory(_volumesDirectory);
        await _gate.WaitAsync(cancellationToken);
        try
        {
            await using var held = await RunDirectoryLock.AcquireAsync(LockPath, cancellationToken);
            var (qmp, pid) = await TryAdoptAsync(cancellationToken) ?? await StartDaemonAsync(cancellationToken);
            await using (qmp)
            {
                if (pid != _daemonPid)
                {
                    // Started here, adopted, or restarted by another process since this one last looked.
                    await StartNbdServerAsync(qmp, pid, cancellationToken);
                    await ReconcileAsync(qmp, pid, cancellationToken);
                    _daemonPid = pid;
                }
                return await step(qmp, cancellationToken);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<(QmpClient Qmp, int Pid)?> TryAdoptAsync(CancellationToken cancellationToken)
    {
        if (await ReadPidAsync(cancellationToken) is not { } pid || !QemuProcess.IsAlive(pid, DaemonMarker))
        {
            return null;
        }
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(s_monitorTimeout);
            var qmp = await QmpClient.ConnectAsync(QmpSocketPath, timeout.Token);
            if (pid != _daemonPid)
            {
                LogDaemonAdopted(_runDirectory, pid);
            }
            return (qmp, pid);
        }
        catch (Exception ex) when (ex is QmpException or SocketException or IOException
            || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            // Starting a second daemon would fight the first over the port and the files: an operator must look.
            throw Failure($"qemu-storage-daemon pid {pid} of {_runDirectory} runs but its monitor {QmpSocketPath} does not answer ({ex.Message})", 0);
        }
    }

    /// <summary>
    /// Starts the daemon in a session of its own (setsid), its output appended to <see cref="LogPath"/>, and waits for its
    /// monitor. Like <see cref="QemuProcess"/>, never <c>--daemonize</c>: the pid stays the child's and the log keeps its errors.
    /// </summary>
    private async Task<(QmpClient Qmp, int Pid)> StartDaemonAsync(CancellationToken cancellationToken)
    {
        if (!ExecutablePath.Exists(_options.Binary))
        {
            throw MissingBinary();
        }
        File.Delete(QmpSocketPath);
        await File.AppendAllTextAsync(LogPath, string.Create(CultureInfo.InvariantCulture,
            $"--- {DateTime.UtcNow:yyyy-MM-dd HH:mm:ss.fff}Z starting qemu-storage-daemon{Environment.NewLine}"), cancellationToken);
        var logStart = new FileInfo(LogPath).Length;
        // sh is never a process group leader, so setsid(1) calls setsid() and execs the daemon in place: the pid stays the child's.
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, WorkingDirectory = "/" };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec setsid \"$0\" \"$@\" </dev/null >>\"$FERRY_QSD_LOG\" 2>&1");
        psi.Environment["FERRY_QSD_LOG"] = LogPath;
        foreach (var arg in (string[])[_options.Binary,
            "--pidfile", PidFilePath,
            "--chardev", $"socket,id=qmp,path={EscapeOption(QmpSocketPath)},server=on,wait=off",
            "--monitor", "chardev=qmp"])
        {
            psi.ArgumentList.Add(arg);
        }
        Process child;
        try
        {
            child = Process.Start(psi) ?? throw new QemuStartException($"Could not start {_options.Binary}.");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new QemuStartException($"Could not start {_options.Binary}: {ex.Message}");
        }
        try
        {
            var qmp = await ConnectWhenReadyAsync(child, logStart, cancellationToken);
            _child?.Dispose();
            _child = child;
            LogDaemonStarted(_runDirectory, child.Id);
            return (qmp, child.Id);
        }
        catch
        {
            if (!child.HasExited)
            {
                child.Kill(entireProcessTree: true);
            }
            child.Dispose();
            throw;
        }
    }

    private async Task<QmpClient> ConnectWhenReadyAsync(Process child, long logStart, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.StartTimeout);
        try
        {
            while (true)
            {
                if (child.HasExited)
                {
                    await child.WaitForExitAsync(cancellationToken);
                    throw child.ExitCode == 127
                        ? MissingBinary()
                        : Failure(string.Create(CultureInfo.InvariantCulture, $"qemu-storage-daemon exited during start-up (exit code {child.ExitCode})"), logStart);
                }
                if (File.Exists(QmpSocketPath))
                {
                    try
                    {
                        return await QmpClient.ConnectAsync(QmpSocketPath, timeout.Token);
                    }
                    catch (Exception ex) when (ex is SocketException or IOException or QmpException)
                    {
                        // not listening yet, or exiting after a bad argument: the loop sees that
                    }
                }
                await Task.Delay(s_pollInterval, timeout.Token);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw Failure($"qemu-storage-daemon did not open its monitor {QmpSocketPath} within {_options.StartTimeout.TotalSeconds:F0} s", logStart);
        }
    }

    /// <summary>
    /// Starts the daemon's NBD server on the configured port, else the one remembered in the run directory, else a free one
    /// (remembered before the daemon listens, so a restarted daemon serves where hosts were told to connect).
    /// <c>max-connections</c> 0 is unlimited: both ends of a live migration open one export.
    /// </summary>
    private async Task StartNbdServerAsync(QmpClient qmp, int pid, CancellationToken cancellationToken)
    {
        var port = _options.Port > 0 ? _options.Port : await ReadPortAsync(cancellationToken) ?? 0;
        for (var attempt = 1; ; attempt++)
        {
            var picked = port == 0;
            if (picked)
            {
                port = PickFreePort();
            }
            await WritePortAsync(port, cancellationToken);
            var address = new JsonObject
            {
                ["type"] = "inet",
                ["data"] = new JsonObject { ["host"] = _options.ListenAddress, ["port"] = port.ToString(CultureInfo.InvariantCulture) },
            };
            try
            {
                await qmp.ExecuteAsync("nbd-server-start", new JsonObject { ["addr"] = address, ["max-connections"] = 0 }, cancellationToken);
                _port = port;
                LogNbdServerStarted(pid, _options.ListenAddress, port);
                return;
            }
            catch (QmpException ex) when (ex.Description.Contains("already running", StringComparison.Ordinal))
            {
                _port = port; // an adopted daemon
                return;
            }
            catch (QmpException ex) when (picked && attempt < PortPickAttempts && ex.Description.Contains("in use", StringComparison.Ordinal))
            {
                port = 0; // taken between the pick and the bind
            }
            catch (QmpException ex)
            {
                throw new FerryException($"qemu-storage-daemon could not serve NBD on {_options.ListenAddress}:{port}: {ex.Description}");
            }
        }
    }

    /// <summary>Exports every volume file that has no export and removes every volume export whose file is gone.</summary>
    private async Task ReconcileAsync(QmpClient qmp, int pid, CancellationToken cancellationToken)
    {
        var exports = await QueryExportsAsync(qmp, cancellationToken);
        var volumes = VolumeIdsOnDisk();
        var removed = 0;
        foreach (var id in exports.Select(VolumeIdOfExport).OfType<string>().Where(id => !volumes.Contains(id)))
        {
            await RemoveExportAsync(qmp, id, cancellationToken);
            await RemoveNodeAsync(qmp, id, cancellationToken);
            removed++;
        }
        var exported = 0;
        foreach (var id in volumes.Where(id => !exports.Contains(ExportName(id))))
        {
            await EnsureExportedAsync(qmp, id, cancellationToken);
            exported++;
        }
        LogReconciled(pid, volumes.Count, exported, removed);
    }

    private async Task EnsureExportedAsync(QmpClient qmp, string volumeId, CancellationToken cancellationToken)
    {
        var export = ExportName(volumeId);
        if ((await QueryExportsAsync(qmp, cancellationToken)).Contains(export))
        {
            return;
        }
        await EnsureNodeAsync(qmp, volumeId, cancellationToken);
        await qmp.ExecuteAsync("block-export-add", new JsonObject
        {
            ["type"] = "nbd",
            ["id"] = export,
            ["name"] = export,
            ["node-name"] = NodeName(volumeId),
            ["writable"] = true,
        }, cancellationToken);
    }

    /// <summary>Opens the volume's file as a raw node (discards punch holes, keeping the file sparse) unless it is open.</summary>
    private async Task EnsureNodeAsync(QmpClient qmp, string volumeId, CancellationToken cancellationToken)
    {
        var node = NodeName(volumeId);
        if ((await QueryNodeNamesAsync(qmp, cancellationToken)).Contains(node))
        {
            return;
        }
        await qmp.ExecuteAsync("blockdev-add", new JsonObject
        {
            ["driver"] = "raw",
            ["node-name"] = node,
            ["discard"] = "unmap",
            ["file"] = new JsonObject
            {
                ["driver"] = "file",
                ["node-name"] = node + "-f",
                ["filename"] = VolumePath(volumeId),
                ["discard"] = "unmap",
            },
        }, cancellationToken);
    }

    /// <summary>Ends the volume's export, dropping its clients, and waits until the daemon has let go of it.</summary>
    private static async Task RemoveExportAsync(QmpClient qmp, string volumeId, CancellationToken cancellationToken)
    {
        var export = ExportName(volumeId);
        if (!(await QueryExportsAsync(qmp, cancellationToken)).Contains(export))
        {
            return;
        }
        try
        {
            await qmp.ExecuteAsync("block-export-del", new JsonObject { ["id"] = export, ["mode"] = "hard" }, cancellationToken);
        }
        catch (QmpException)
        {
            // already shutting down: the wait below decides
        }
        var deadline = Stopwatch.GetTimestamp() + (long)(s_exportDeleteTimeout.TotalSeconds * Stopwatch.Frequency);
        while ((await QueryExportsAsync(qmp, cancellationToken)).Contains(export))
        {
            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new FerryException($"qemu-storage-daemon did not end export {export} within {s_exportDeleteTimeout.TotalSeconds:F0} s.");
            }
            await Task.Delay(s_pollInterval, cancellationToken);
        }
    }

    /// <summary>Closes the volume's nodes (the file node goes with the raw node that opened it).</summary>
    private static async Task RemoveNodeAsync(QmpClient qmp, string volumeId, CancellationToken cancellationToken)
    {
        var node = NodeName(volumeId);
        var deadline = Stopwatch.GetTimestamp() + (long)(s_exportDeleteTimeout.TotalSeconds * Stopwatch.Frequency);
        while ((await QueryNodeNamesAsync(qmp, cancellationToken)).Contains(node))
        {
            try
            {
                await qmp.ExecuteAsync("blockdev-del", new JsonObject { ["node-name"] = node }, cancellationToken);
            }
            catch (QmpException) when (Stopwatch.GetTimestamp() < deadline)
            {
                // still held by an export that is shutting down
                await Task.Delay(s_pollInterval, cancellationToken);
            }
        }
    }

    private static async Task<HashSet<string>> QueryExportsAsync(QmpClient qmp, CancellationToken cancellationToken)
    {
        var reply = await qmp.ExecuteAsync("query-block-exports", null, cancellationToken);
        return [.. reply.EnumerateArray().Select(e => e.GetProperty("id").GetString() ?? "")];
    }

    private static async Task<HashSet<string>> QueryNodeNamesAsync(QmpClient qmp, CancellationToken cancellationToken)
    {
        var reply = await qmp.ExecuteAsync("query-named-block-nodes", new JsonObject { ["flat"] = true }, cancellationToken);
        return [.. reply.EnumerateArray().Select(n => n.TryGetProperty("node-name", out var name) ? name.GetString() ?? "" : "")];
    }

    private static string? VolumeIdOfExport(string export) =>
        export.StartsWith(VolumePrefix, StringComparison.Ordinal) && IsValidId(export[VolumePrefix.Length..]) ? export[VolumePrefix.Length..] : null;

    private HashSet<string> VolumeIdsOnDisk() =>
        [.. Directory.EnumerateFiles(_volumesDirectory, VolumePrefix + "*" + RawSuffix)
            .Select(f => Path.GetFileName(f)[VolumePrefix.Length..^RawSuffix.Length])
            .Where(IsValidId)];

    /// <summary>Makes the raw file: converted from the image (its format probed, a backing file refused) or empty, then grown sparse to size.</summary>
    private async Task WriteVolumeFileAsync(string volumeId, string path, int sizeGb, string? sourceImagePath, CancellationToken cancellationToken)
    {
        var size = sizeGb * GiB;
        if (sourceImagePath is not null)
        {
            if (!File.Exists(sourceImagePath))
            {
                throw new FerryException($"The image file {sourceImagePath} of volume {volumeId} does not exist.");
            }
            using var info = JsonDocument.Parse(await RunQemuImgAsync(["info", "--output=json", sourceImagePath], cancellationToken));
            var format = info.RootElement.GetProperty("format").GetString() ?? "raw";
            var virtualSize = info.RootElement.GetProperty("virtual-size").GetInt64();
            if (info.RootElement.TryGetProperty("backing-filename", out _))
            {
                throw new BadRequestException($"The image {sourceImagePath} of volume {volumeId} has a backing file; only standalone images can fill a volume.");
            }
            if (virtualSize > size)
            {
                throw new BadRequestException(string.Create(CultureInfo.InvariantCulture,
                    $"The image {sourceImagePath} has a virtual size of {virtualSize} bytes, more than volume {volumeId}'s {sizeGb} GiB."));
            }
            await RunQemuImgAsync(["convert", "-q", "-f", format, "-O", "raw", sourceImagePath, path], cancellationToken);
        }
        await using var file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.Write, FileShare.None);
        if (file.Length < size)
        {
            file.SetLength(size); // ftruncate: the new range is a hole
        }
        file.Flush(flushToDisk: true);
    }

    private async Task<string> RunQemuImgAsync(IReadOnlyList<string> args, CancellationToken cancellationToken)
    {
        var (exitCode, stdout, stderr) = await HostCommand.RunAsync(_options.QemuImgBinary, args, QemuImgPackage, cancellationToken);
        if (exitCode != 0)
        {
            throw new FerryException($"{_options.QemuImgBinary} {string.Join(' ', args)} failed ({exitCode}): {stderr.Trim()}");
        }
        return stdout;
    }

    private async Task<int?> ReadPidAsync(CancellationToken cancellationToken) =>
        File.Exists(PidFilePath) && int.TryParse((await File.ReadAllTextAsync(PidFilePath, cancellationToken)).Trim(), CultureInfo.InvariantCulture, out var pid)
            ? pid : null;

    private async Task<int?> ReadPortAsync(CancellationToken cancellationToken) =>
        File.Exists(PortFilePath) && int.TryParse((await File.ReadAllTextAsync(PortFilePath, cancellationToken)).Trim(), CultureInfo.InvariantCulture, out var port)
            && port is > 0 and <= IPEndPoint.MaxPort
            ? port : null;

    private async Task WritePortAsync(int port, CancellationToken cancellationToken)
    {
        var temporary = PortFilePath + ".tmp";
        await File.WriteAllTextAsync(temporary, port.ToString(CultureInfo.InvariantCulture) + "\n", cancellationToken);
        File.Move(temporary, PortFilePath, overwrite: true);
    }

    private int PickFreePort()
    {
        using var listener = new TcpListener(IPAddress.Parse(_options.ListenAddress), 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private static async Task<bool> WaitForExitAsync(int pid, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (IsRunning(pid))
        {
            if (Stopwatch.GetTimestamp() > deadline)
            {
                return false;
            }
            await Task.Delay(s_pollInterval, cancellationToken);
        }
        return true;
    }

    /// <summary>Alive and not a zombie (a daemon started here stays one until reaped).</summary>
    private static bool IsRunning(int pid) => QemuProcess.IsAlive(pid, "");

    private static void Kill(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            process.Kill();
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or System.ComponentModel.Win32Exception)
        {
            // already gone
        }
    }

    private FerryException MissingBinary() =>
        new($"{_options.Binary} was not found: install the Debian package {DaemonPackage}, which brings qemu-storage-daemon.");

    private QemuStartException Failure(string what, long logStart)
    {
        var tail = QemuProcess.ReadLogTail(LogPath, logStart);
        return new QemuStartException(tail.Count == 0 ? what + "." : $"{what}: {tail[^1]}")
        {
            Details = tail.Count == 0 ? null : $"Last lines of {LogPath}:\n{string.Join('\n', tail)}",
        };
    }

    private static NotFoundException NoStorage(string volumeId, string path) =>
        new($"Volume {volumeId} has no storage on this backend ({path} does not exist).");

    /// <summary>QEMU's option syntax ends a value at a comma; a literal comma is doubled.</summary>
    private static string EscapeOption(string value) => value.Replace(",", ",,", StringComparison.Ordinal);

    private static string ValidId(string volumeId)
    {
        ArgumentException.ThrowIfNullOrEmpty(volumeId);
        return IsValidId(volumeId)
            ? volumeId
            : throw new ArgumentException($"'{volumeId}' is not a volume id: up to 64 letters, digits, '-', '_' or '.', starting with a letter or digit.", nameof(volumeId));
    }

    /// <summary>Safe as a file name segment and as a QMP id (which must start with a letter: the <c>volume-</c> prefix is one).</summary>
    private static bool IsValidId(string volumeId) =>
        volumeId.Length is > 0 and <= 64 && char.IsAsciiLetterOrDigit(volumeId[0])
        && volumeId.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');
}
