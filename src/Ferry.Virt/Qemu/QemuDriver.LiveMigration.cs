using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.Core.Errors;
using Ferry.Virt.Qemu.Qmp;
using Microsoft.Extensions.Logging;

namespace Ferry.Virt.Qemu;

/// <summary>
/// Live migration: incoming QEMU (and, for block migration, an NBD export of its root disk) on the destination;
/// <c>migrate</c>, the NBD mirror and the monitor with Nova's completion policy on the source
/// (nova/virt/libvirt/migration.py; the QMP sequences are the ones measured in the qemu-lab README).
/// </summary>
public sealed partial class QemuDriver
{
    private static readonly TimeSpan s_migrationPollInterval = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan s_blockJobTimeout = TimeSpan.FromSeconds(30);
    /// <summary>How long a post-copy resume may take to connect before the next attempt (a failed connect leaves the migration paused).</summary>
    private static readonly TimeSpan s_resumeGrace = TimeSpan.FromSeconds(3);
    /// <summary>Cuts of a stalled stream refused in a row before the monitor gives up on it.</summary>
    private const int MaxRefusedPauses = 3;
    /// <summary>
    /// How long QEMU may take to notice a cut it accepted and enter postcopy-paused: its migration thread sees the
    /// shut socket on its next write, which on a busy host (TCG vCPUs, two cores) took over 6 s.
    /// </summary>
    private static readonly TimeSpan s_cutSettleTime = TimeSpan.FromSeconds(30);
    /// <summary>
    /// How long the source's monitor may stay silent in post-copy before the monitor gives up: the guest's memory is split
    /// between the hosts, so a QEMU too slow to answer (starved on a busy host) is asked again rather than abandoned.
    /// </summary>
    private static readonly TimeSpan s_postCopyMonitorSilence = TimeSpan.FromSeconds(120);
    /// <summary>How long the destination may stay in inmigrate after the source reported the copy complete.</summary>
    private static readonly TimeSpan s_incomingSettleTime = TimeSpan.FromSeconds(10);
    /// <summary>How long a QEMU whose monitor closed may take to exit before it is taken for hung rather than dead.</summary>
    private static readonly TimeSpan s_exitSettleTime = TimeSpan.FromSeconds(2);

    private const double BytesPerGiB = 1024d * 1024 * 1024;
    /// <summary>QEMU's MAX_MIGRATE_DOWNTIME (2000 s): with this limit the next pass stops the guest and sends the rest.</summary>
    private const long MaxDowntimeLimitMs = 2_000_000;
    /// <summary>"Unlimited" bandwidth: QEMU has no 0 = unlimited for max-bandwidth, and its default caps at 128 MiB/s.</summary>
    private const long UnlimitedBandwidthBytes = 8L << 30;
    private const string RootDiskNode = "disk0";
    private const string NbdExportId = "ferry-migration-export";
    private const string MirrorJobId = "ferry-migration-mirror";
    private const string MirrorTargetNode = "ferry-migration-target";

    private readonly ConcurrentDictionary<string, MigrationControl> _migrating = new(StringComparer.Ordinal);
    /// <summary>Guests whose incoming QEMU runs an NBD server exporting their root disk (destination side of a block migration).</summary>
    private readonly ConcurrentDictionary<string, bool> _nbdExports = new(StringComparer.Ordinal);

    private static long Long(JsonElement e, string name, long fallback = 0) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.TryGetInt64(out var l) ? l : fallback;

    private static string? Str(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    // --- destination ---

    public async Task<string> PreLiveMigrationAsync(GuestSpec guest, bool sharedInstancePath, bool blockMigration, int parallelConnections, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(guest);
        var dir = InstanceDirectory(guest.Uuid);
        if (!sharedInstancePath && Directory.Exists(dir))
        {
            // Leftovers of an earlier life of this guest here (an evacuation's, say): never write over them, and
            // never let a rollback of this attempt delete them.
            throw new DestinationDiskExistsException(dir);
        }
        var record = new QemuGuest(guest);
        if (!_guests.TryAdd(guest.Uuid, record))
        {
            throw new ConflictException($"Guest {guest.Uuid} is already defined on {_options.HostName}.");
        }
        var exportDisk = blockMigration && !sharedInstancePath && !guest.VolumeBacked;
        try
        {
            CheckSocketPath(guest.Uuid);
            Directory.CreateDirectory(dir);
            if (!sharedInstancePath)
            {
                // A fresh overlay over this host's own _base copy: only the overlay's data is mirrored (sync=top),
                // and the config drive is a pure function of the spec, so it is written again rather than copied.
                // A guest booted from a volume has no root disk here: its volumes are shared.
                if (!guest.VolumeBacked)
                {
                    await CreateRootDiskAsync(guest, Path.Combine(dir, "disk"), cancellationToken);
                }
                if (guest.ConfigDrive)
                {
                    await WriteConfigDriveAsync(guest, Path.Combine(dir, "disk.config"), cancellationToken);
                }
                await File.WriteAllTextAsync(Path.Combine(dir, "guest.json"), JsonSerializer.Serialize(guest, QemuJsonContext.Default.GuestSpec), cancellationToken);
            }
            var process = await StartQemuAsync(LaunchSpec(guest) with { IncomingUri = "defer" }, cancellationToken);
            record.Process = process;
            record.PowerState = GuestPowerState.Paused;
            StartEventPump(record, process);
            var qmp = process.Qmp;
            if (parallelConnections > 1)
            {
                // multifd must match on both ends before migrate-incoming (and excludes post-copy in QEMU 7.2).
                await qmp.ExecuteAsync("migrate-set-capabilities", Capabilities(("multifd", true)), cancellationToken);
                await qmp.ExecuteAsync("migrate-set-parameters", new JsonObject { ["multifd-channels"] = parallelConnections }, cancellationToken);
            }
            else
            {
                // Post-copy needs the capability on both ends before migrate-incoming; the source decides whether to use it.
                try
                {
                    await qmp.ExecuteAsync("migrate-set-capabilities", Capabilities(("postcopy-ram", true)), cancellationToken);
                }
                catch (QmpException ex)
                {
                    LogPostCopyUnavailable(guest.Uuid, _options.HostName, ex.Message);
                }
            }
            string? nbd = null;
            if (exportDisk)
            {
                var port = FreeTcpPort(_options.MigrationAddress);
                await qmp.ExecuteAsync("nbd-server-start", new JsonObject
                {
                    ["addr"] = new JsonObject
                    {
                        ["type"] = "inet",
                        ["data"] = new JsonObject { ["host"] = _options.MigrationAddress, ["port"] = port.ToString(CultureInfo.InvariantCulture) },
                    },
                }, cancellationToken);
                _nbdExports[guest.Uuid] = true;
                await qmp.ExecuteAsync("block-export-add", new JsonObject
                {
                    ["type"] = "nbd",
                    ["id"] = NbdExportId,
                    ["node-name"] = RootDiskNode,
                    ["name"] = RootDiskNode,
                    ["writable"] = true,
                }, cancellationToken);
                nbd = IncomingEndpoints.FormatNbdUri(_options.MigrationAddress, port, RootDiskNode);
            }
            var uri = string.Create(CultureInfo.InvariantCulture, $"tcp:{_options.MigrationAddress}:{FreeTcpPort(_options.MigrationAddress)}");
            await qmp.ExecuteAsync("migrate-incoming", new JsonObject { ["uri"] = uri }, cancellationToken);
            return new IncomingEndpoints(uri, nbd).ToString();
        }
        catch
        {
            _nbdExports.TryRemove(guest.Uuid, out _);
            _guests.TryRemove(new KeyValuePair<string, QemuGuest>(guest.Uuid, record));
            if (record.Process is { } started)
            {
                await started.DisposeAsync();
            }
            if (!sharedInstancePath && Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
            throw;
        }
    }

    public async Task PostLiveMigrationAtDestinationAsync(GuestSpec guest, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(guest);
        var record = Find(guest.Uuid);
        await StopNbdExportAsync(record, cancellationToken);
        if (record.Process is { } process)
        {
            // The source reports completed a moment before this end has loaded the last of the state and left inmigrate.
            var settling = Stopwatch.StartNew();
            var status = await RunStatusAsync(process, cancellationToken);
            while (status == "inmigrate" && settling.Elapsed < s_incomingSettleTime)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(20), cancellationToken);
                status = await RunStatusAsync(process, cancellationToken);
            }
            record.PowerState = MapStatus(status);
            await AnnounceSelfAsync(record, cancellationToken);
        }
    }

    public async Task<string> RecoverPostCopyAtDestinationAsync(string uuid, CancellationToken cancellationToken)
    {
        var record = Find(uuid);
        // The incoming QEMU died after the switch (the usual reason the stream broke): its last words, not just "gone".
        if (await GuestExitReportAsync(uuid, cancellationToken) is { } exit)
        {
            throw exit;
        }
        if (record.Process is not { HasExited: false } process)
        {
            throw new FerryException($"The incoming copy of {uuid} on {_options.HostName} is gone: its post-copy migration cannot resume.");
        }
        var qmp = process.Qmp;
        var status = Str(await qmp.ExecuteAsync("query-migrate", null, cancellationToken), "status");
        if (status == "postcopy-active")
        {
            // The source gave up on a link that went silent, but this end still waits on the old stream: cut it.
            await qmp.ExecuteAsync("migrate-pause", null, cancellationToken);
            var deadline = Stopwatch.StartNew();
            while (status == "postcopy-active" && deadline.Elapsed < s_blockJobTimeout)
            {
                await Task.Delay(s_migrationPollInterval, cancellationToken);
                status = Str(await qmp.ExecuteAsync("query-migrate", null, cancellationToken), "status");
            }
        }
        if (status == "postcopy-recover" && record.PostCopyRecoveryUri is { } handshaking)
        {
            return handshaking;
        }
        if (status != "postcopy-paused")
        {
            throw new ConflictException($"The incoming migration of {uuid} on {_options.HostName} is {status ?? "unknown"}, not waiting for a post-copy resume.");
        }
        var uri = string.Create(CultureInfo.InvariantCulture, $"tcp:{_options.MigrationAddress}:{FreeTcpPort(_options.MigrationAddress)}");
        try
        {
            await qmp.ExecuteAsync("migrate-recover", new JsonObject { ["uri"] = uri }, cancellationToken);
        }
        catch (QmpException) when (record.PostCopyRecoveryUri is { } listening)
        {
            // QEMU accepts one migrate-recover per pause: the listener of an earlier attempt still waits for the source.
            return listening;
        }
        record.PostCopyRecoveryUri = uri;
        LogPostCopyRecoverListening(uuid, _options.HostName, uri);
        return uri;
    }

    public async Task<FerryException?> GuestExitReportAsync(string uuid, CancellationToken cancellationToken)
    {
        if (!_guests.TryGetValue(uuid, out var guest) || guest.Process is not { } process)
        {
            return null; // never started here, or stopped on purpose
        }
        if (!process.HasExited)
        {
            try
            {
                await RunStatusAsync(process, cancellationToken);
                return null;
            }
            catch (Exception ex) when (ex is QmpException or IOException or ObjectDisposedException)
            {
                // The monitor is gone: the process is on its way out (or hangs); give it a moment to end.
            }
            if (!await process.WaitForExitAsync(s_exitSettleTime, cancellationToken))
            {
                return null;
            }
        }
        return process.Died($"QEMU of {uuid} on {_options.HostName} (pid {process.Pid}) exited on its own");
    }

    public async Task RollbackLiveMigrationAtDestinationAsync(GuestSpec guest, bool destroyDisks, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(guest);
        if (!_guests.TryGetValue(guest.Uuid, out var record))
        {
            // pre_live_migration never defined it here (it refused, e.g. over files already here): those files are
            // not this attempt's to delete.
            DeleteDirectory(RuntimeDirectory(guest.Uuid));
            return;
        }
        await StopNbdExportAsync(record, cancellationToken);
        await DestroyAsync(guest.Uuid, destroyDisks, cancellationToken);
    }

    /// <summary>Removes the root disk's NBD export and stops the NBD server, if this host runs one for the guest.</summary>
    private async Task StopNbdExportAsync(QemuGuest record, CancellationToken cancellationToken)
    {
        if (!_nbdExports.TryRemove(record.Spec.Uuid, out _) || record.Process is not { HasExited: false } process)
        {
            return;
        }
        foreach (var (command, arguments) in new (string, JsonObject?)[]
        {
            ("block-export-del", new JsonObject { ["id"] = NbdExportId, ["mode"] = "hard" }),
            ("nbd-server-stop", null),
        })
        {
            try
            {
                await process.Qmp.ExecuteAsync(command, arguments, cancellationToken);
            }
            catch (QmpException ex)
            {
                LogMigrationCleanupFailed(record.Spec.Uuid, command, ex.Message);
            }
        }
    }

    // --- source ---

    public async Task<LiveMigrationOutcome> LiveMigrateAsync(GuestSpec guest, LiveMigrationPlan plan, IDriverCallbacks callbacks, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(guest);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(callbacks);
        var record = Find(guest.Uuid);
        var process = record.Process ?? throw new ConflictException($"Guest {guest.Uuid} is not running.");
        var incoming = IncomingEndpoints.Parse(plan.IncomingUri ?? throw new BadRequestException("The live migration plan has no incoming URI."));
        plan = MirroredPlan(guest, plan);
        if (plan.BlockMigration && incoming.NbdUri is null)
        {
            throw new BadRequestException($"Block migration of {guest.Uuid}: the destination exported no disk ({plan.IncomingUri}).");
        }
        return await MonitorAsync(record, plan, migration => new MigrationMonitor(this, guest, plan, process, migration, incoming, callbacks).RunAsync(cancellationToken));
    }

    /// <summary>
    /// The plan as this driver carries it out: a block migration mirrors the root disk, and a guest booted from a volume has
    /// none (its volumes are shared, its config drive is written on the destination), so it migrates its memory only.
    /// </summary>
    private static LiveMigrationPlan MirroredPlan(GuestSpec guest, LiveMigrationPlan plan) =>
        guest.VolumeBacked ? plan with { BlockMigration = false } : plan;

    /// <summary>QEMU carries on with a migration whether or not anyone watches: after an agent restart, a new monitor takes it over.</summary>
    public async Task<LiveMigrationOutcome> ReattachLiveMigrationAsync(GuestSpec guest, LiveMigrationPlan plan, IDriverCallbacks callbacks, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(guest);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(callbacks);
        if (!_guests.TryGetValue(guest.Uuid, out var record) || record.Process is not { HasExited: false } process)
        {
            return LiveMigrationOutcome.Failed;
        }
        plan = MirroredPlan(guest, plan);
        var status = Str(await process.Qmp.ExecuteAsync("query-migrate", null, cancellationToken), "status");
        LogMigrationReattaching(guest.Uuid, plan.MigrationUuid, status ?? "none");
        switch (status)
        {
            case "completed":
                record.PowerState = GuestPowerState.Paused; // postmigrate: never cont it (split brain)
                return LiveMigrationOutcome.Completed;
            // "active" and "device": the switch was asked for and QEMU has not made it yet.
            case "active" or "device" or "postcopy-active" or "postcopy-paused" or "postcopy-recover":
                return await MonitorAsync(record, plan, migration => new MigrationMonitor(this, guest, plan, process, migration, IncomingEndpoints.None, callbacks).ReattachAsync(cancellationToken));
            default:
                return LiveMigrationOutcome.Failed;
        }
    }

    /// <summary>Runs one monitor over the guest's outgoing migration, the only one it may have.</summary>
    private async Task<LiveMigrationOutcome> MonitorAsync(QemuGuest record, LiveMigrationPlan plan, Func<MigrationControl, Task<LiveMigrationOutcome>> monitor)
    {
        var uuid = record.Spec.Uuid;
        var migration = new MigrationControl();
        if (!_migrating.TryAdd(uuid, migration))
        {
            throw new ConflictException($"Guest {uuid} is already migrating.");
        }
        try
        {
            var outcome = await monitor(migration);
            if (outcome == LiveMigrationOutcome.Completed)
            {
                record.PowerState = GuestPowerState.Paused; // postmigrate: never cont it (split brain)
            }
            LogMigrationFinished(uuid, plan.MigrationUuid, outcome);
            return outcome;
        }
        finally
        {
            migration.Finish();
            _migrating.TryRemove(new KeyValuePair<string, MigrationControl>(uuid, migration));
        }
    }

    public bool AbortLiveMigration(string uuid) => _migrating.TryGetValue(uuid, out var migration) && migration.TryAbort();

    public bool ForceCompleteLiveMigration(string uuid) => _migrating.TryGetValue(uuid, out var migration) && migration.TryForceComplete();

    public async Task PostLiveMigrationAtSourceAsync(GuestSpec guest, bool sharedInstancePath, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(guest);
        await DestroyAsync(guest.Uuid, destroyDisks: !sharedInstancePath, cancellationToken);
    }

    private static JsonObject Capabilities(params (string Name, bool State)[] capabilities) => new()
    {
        ["capabilities"] = new JsonArray(capabilities.Select(c => (JsonNode)new JsonObject { ["capability"] = c.Name, ["state"] = c.State }).ToArray()),
    };

    /// <summary>
    /// What pre_live_migration hands the source: the migration URI, then (block migration only) the NBD URI of the
    /// root disk's export, separated by a space: <c>tcp:10.0.0.2:4711 nbd:10.0.0.2:4712:exportname=disk0</c>.
    /// </summary>
    internal sealed record IncomingEndpoints(string MigrationUri, string? NbdUri)
    {
        /// <summary>For a re-attached monitor, which never starts a stream (a resume asks the destination where to).</summary>
        public static readonly IncomingEndpoints None = new("", null);

        public static string FormatNbdUri(string host, int port, string export) =>
            string.Create(CultureInfo.InvariantCulture, $"nbd:{host}:{port}:exportname={export}");

        public override string ToString() => NbdUri is null ? MigrationUri : MigrationUri + " " + NbdUri;

        public static IncomingEndpoints Parse(string value)
        {
            var parts = value.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (parts.Length is < 1 or > 2 || (parts.Length == 2 && !parts[1].StartsWith("nbd:", StringComparison.Ordinal)))
            {
                throw new BadRequestException($"Cannot read the incoming migration address '{value}'.");
            }
            var endpoints = new IncomingEndpoints(parts[0], parts.Length == 2 ? parts[1] : null);
            if (endpoints.NbdUri is not null)
            {
                _ = endpoints.Nbd(); // validates
            }
            return endpoints;
        }

        /// <summary>Host, port and export name of <see cref="NbdUri"/> (<c>nbd:HOST:PORT:exportname=NAME</c>; HOST may be <c>[v6]</c>).</summary>
        public (string Host, string Port, string Export) Nbd()
        {
            const string Prefix = "nbd:";
            const string ExportMarker = ":exportname=";
            var text = NbdUri ?? throw new InvalidOperationException("No NBD endpoint.");
            var exportAt = text.LastIndexOf(ExportMarker, StringComparison.Ordinal);
            var hostPort = exportAt > Prefix.Length ? text[Prefix.Length..exportAt] : "";
            var portAt = hostPort.LastIndexOf(':');
            if (exportAt < 0 || portAt <= 0 || !int.TryParse(hostPort[(portAt + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            {
                throw new BadRequestException($"Cannot read the NBD address '{text}'.");
            }
            var host = hostPort[..portAt].Trim('[', ']');
            var export = text[(exportAt + ExportMarker.Length)..];
            return (host, port.ToString(CultureInfo.InvariantCulture), export);
        }
    }

    /// <summary>QEMU takes whole milliseconds, at least 1.</summary>
    private static long QemuLimitMs(double limitMs) => Math.Max(1, (long)limitMs);

    /// <summary>
    /// One source-side run: capabilities and parameters, the NBD mirror of the root disk (block migration),
    /// <c>migrate</c>, then a 100 ms poll of query-migrate that reports progress and applies Nova's policy
    /// (downtime steps, completion timeout, abort, force-complete by post-copy or stop-and-copy).
    /// </summary>
    private sealed class MigrationMonitor(
        QemuDriver driver, GuestSpec guest, LiveMigrationPlan plan, QemuProcess process, MigrationControl migration, IncomingEndpoints incoming, IDriverCallbacks callbacks)
    {
        private readonly QmpClient _qmp = process.Qmp;
        private readonly LiveMigrationPlan _plan = plan;
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private bool _mirrorStarted;
        private bool _mirrorDone;
        private bool _targetAdded;
        private bool _migrateStarted;
        private bool _cancelSent;
        private bool _mirrorFailed;
        private bool _forceApplied;
        private bool _postCopyAnnounced;
        private bool _timeoutFired;
        private long _downtimeLimitMs;
        private long _diskTotal;
        private long _diskProcessed;
        private int _resumeAttempts;             // since the post-copy stream last moved
        private Exception? _lastResumeFailure;   // why the last resume could not be made (the destination QEMU's death, say)
        private Stopwatch? _resumeIssued;        // the last migrate resume, while its outcome is not known yet
        private long _postCopyBytes = -1;        // ram.transferred at the last sample that moved
        private readonly Stopwatch _postCopyIdle = new();
        private Stopwatch? _recovering;          // since the migration entered postcopy-recover, while it stays there
        private int _refusedPauses;              // migrate-pause refused in a row on a stalled stream
        private Stopwatch? _cutAccepted;         // since a migrate-pause was accepted, while QEMU has not paused yet
        private Stopwatch? _monitorSilent;       // since query-migrate first went unanswered in post-copy, while it stays so

        private string Uuid => guest.Uuid;

        /// <summary>
        /// The longest a resume handshake (postcopy-recover) may take: three stall periods, at least 10 s (30 s with stall
        /// detection off). QEMU 7.2 waits in it for good when the other end never answers and cannot pause it
        /// (migrate-pause there came in 8.2), so the monitor gives up instead of hanging.
        /// </summary>
        private TimeSpan RecoverHandshakeLimit => TimeSpan.FromSeconds(_plan.PostCopyStallSeconds > 0 ? Math.Max(10, 3 * _plan.PostCopyStallSeconds) : 30);

        public async Task<LiveMigrationOutcome> RunAsync(CancellationToken cancellationToken)
        {
            var diskBytes = _plan.BlockMigration ? RootDiskBytes() : 0;
            // Nova sizes both schedules by the data to move: RAM plus the disks that are copied (at least 1 GiB, as the fake driver).
            var dataGiB = Math.Max(1d, (((long)guest.MemoryMb << 20) + diskBytes) / BytesPerGiB);
            var schedule = new DowntimeSchedule(_plan, dataGiB);
            var completionTimeout = _plan.CompletionTimeoutSecondsPerGiB > 0 ? TimeSpan.FromSeconds(_plan.CompletionTimeoutSecondsPerGiB * dataGiB) : TimeSpan.Zero;
            var wasRunning = await RunStateAsync(cancellationToken) == "running";
            LiveMigrationOutcome? outcome = null;
            try
            {
                outcome = await MigrateAsync(schedule, completionTimeout, cancellationToken);
                return outcome.Value;
            }
            catch (Exception ex) when (ex is QmpException or IOException or ObjectDisposedException && !cancellationToken.IsCancellationRequested)
            {
                driver.LogMigrationStepFailed(Uuid, _plan.MigrationUuid, ex.Message);
                var connectionLost = ex is not QmpException q || q.ErrorClass == QmpException.ConnectionClosedClass;
                if (process.HasExited || (connectionLost && await process.WaitForExitAsync(s_exitSettleTime, CancellationToken.None)))
                {
                    // QEMU itself died under the migration: what it said last is what the operator needs.
                    throw process.Died($"QEMU of {Uuid} on {driver._options.HostName} (pid {process.Pid}) died during live migration {_plan.MigrationUuid} to {_plan.DestHost}");
                }
                if (ex is QmpException && !migration.PostCopy)
                {
                    // A refused command (an unreachable NBD export, a mirror that cannot start…) fails this attempt; the guest stays here.
                    outcome = LiveMigrationOutcome.Failed;
                    return outcome.Value;
                }
                throw;
            }
            finally
            {
                if (outcome != LiveMigrationOutcome.Completed && !process.HasExited && !migration.PostCopy)
                {
                    await RecoverSourceAsync(wasRunning);
                }
            }
        }

        private async Task<LiveMigrationOutcome> MigrateAsync(DowntimeSchedule schedule, TimeSpan completionTimeout, CancellationToken cancellationToken)
        {
            var multifd = _plan.ParallelConnections > 1 && !_plan.PermitPostCopy;
            await _qmp.ExecuteAsync("migrate-set-capabilities", Capabilities(
                ("events", true),
                ("auto-converge", _plan.PermitAutoConverge),
                ("postcopy-ram", _plan.PermitPostCopy),
                ("multifd", multifd),
                ("pause-before-switchover", _plan.BlockMigration)), cancellationToken);
            // Always explicit: QEMU's default of 128 MiB/s is a hidden cap (qemu-lab findings).
            var bandwidth = _plan.BandwidthMiBps > 0 ? _plan.BandwidthMiBps << 20 : UnlimitedBandwidthBytes;
            _downtimeLimitMs = QemuLimitMs(schedule.LimitMsAt(TimeSpan.Zero));
            var parameters = new JsonObject
            {
                ["max-bandwidth"] = bandwidth,
                ["max-postcopy-bandwidth"] = bandwidth,
                ["downtime-limit"] = _downtimeLimitMs,
            };
            if (multifd)
            {
                parameters["multifd-channels"] = _plan.ParallelConnections;
            }
            await _qmp.ExecuteAsync("migrate-set-parameters", parameters, cancellationToken);
            if (_plan.BlockMigration)
            {
                await StartMirrorAsync(bandwidth, cancellationToken);
            }
            else
            {
                await StartMigrateAsync(cancellationToken);
            }
            return await WatchAsync(schedule, completionTimeout, cancellationToken);
        }

        /// <summary>
        /// Takes over a post-copy migration QEMU carried on without a monitor: the policy that led there is spent (no
        /// downtime steps, no timeout action), what is left is watching it end and resuming a broken stream.
        /// </summary>
        public Task<LiveMigrationOutcome> ReattachAsync(CancellationToken cancellationToken)
        {
            _migrateStarted = true;
            _forceApplied = true;
            _timeoutFired = true;
            _postCopyAnnounced = true;
            migration.TryEnterPostCopy();
            return WatchAsync(new DowntimeSchedule(_plan, dataGiB: 1), TimeSpan.Zero, cancellationToken);
        }

        /// <summary>Polls query-migrate until the migration ends, applying the policy and reporting progress on the way.</summary>
        private async Task<LiveMigrationOutcome> WatchAsync(DowntimeSchedule schedule, TimeSpan completionTimeout, CancellationToken cancellationToken)
        {
            while (true)
            {
                await Task.Delay(s_migrationPollInterval, cancellationToken);
                await ApplyPolicyAsync(schedule, completionTimeout, cancellationToken);
                if (_mirrorStarted && !_mirrorDone && await MirrorFailedAsync(cancellationToken))
                {
                    driver.LogMirrorFailed(Uuid, _plan.MigrationUuid);
                    _mirrorFailed = true;
                    if (!_migrateStarted)
                    {
                        return LiveMigrationOutcome.Failed;
                    }
                    await CancelMigrationAsync(cancellationToken);
                }
                if (!_migrateStarted)
                {
                    // Block migration, bulk copy of the disk: RAM follows once the mirror is in sync (BLOCK_JOB_READY).
                    if (migration.AbortRequested)
                    {
                        return LiveMigrationOutcome.Cancelled;
                    }
                    await ReportAsync(default, null, cancellationToken);
                    if (await MirrorReadyAsync(cancellationToken))
                    {
                        await StartMigrateAsync(cancellationToken);
                    }
                    continue;
                }
                JsonElement info;
                try
                {
                    info = await _qmp.ExecuteAsync("query-migrate", null, cancellationToken);
                    _monitorSilent = null;
                }
                catch (QmpException ex) when (ex.ErrorClass == QmpException.TimeoutClass && migration.PostCopy && !process.HasExited)
                {
                    driver.LogMigrationStepFailed(Uuid, _plan.MigrationUuid, ex.Message);
                    _monitorSilent ??= Stopwatch.StartNew();
                    if (_monitorSilent.Elapsed > s_postCopyMonitorSilence)
                    {
                        throw PostCopyLost(null, $"the source QEMU's monitor did not answer for {s_postCopyMonitorSilence.TotalSeconds:F0} s");
                    }
                    continue;
                }
                var status = Str(info, "status");
                if (status != "postcopy-recover")
                {
                    _recovering = null;
                }
                if (status != "postcopy-active")
                {
                    _cutAccepted = null;
                }
                if (status is "postcopy-active" or "postcopy-paused" or "postcopy-recover")
                {
                    await AnnouncePostCopyAsync(cancellationToken);
                }
                switch (status)
                {
                    case "completed":
                        // QEMU sets "completed" a moment before it fills in total-time and downtime: read them again.
                        for (var i = 0; i < 25 && Long(info, "total-time") == 0; i++)
                        {
                            await Task.Delay(TimeSpan.FromMilliseconds(20), cancellationToken);
                            info = await _qmp.ExecuteAsync("query-migrate", null, cancellationToken);
                        }
                        await ReportAsync(info, status, cancellationToken, final: true);
                        return LiveMigrationOutcome.Completed;
                    case "failed" when migration.PostCopy:
                        // QEMU gave up on the post-copy itself: nothing can resume it.
                        throw PostCopyLost(status, Str(info, "error-desc") ?? "");
                    case "postcopy-paused":
                        await ResumePostCopyAsync(cancellationToken);
                        continue;
                    case "postcopy-active":
                        await WatchPostCopyStreamAsync(info, cancellationToken);
                        break;
                    case "postcopy-recover":
                        _recovering ??= Stopwatch.StartNew();
                        if (_recovering.Elapsed > RecoverHandshakeLimit)
                        {
                            throw PostCopyLost(status, $"the resume handshake did not finish in {RecoverHandshakeLimit.TotalSeconds:F0} s");
                        }
                        break;
                    case "failed":
                        driver.LogMigrationQemuFailed(Uuid, _plan.MigrationUuid, Str(info, "error-desc") ?? "");
                        return LiveMigrationOutcome.Failed;
                    case "cancelled":
                        return _mirrorFailed ? LiveMigrationOutcome.Failed : LiveMigrationOutcome.Cancelled;
                    case "pre-switchover":
                        await ReportAsync(info, status, cancellationToken);
                        await SwitchOverAsync(cancellationToken);
                        continue;
                }
                await ReportAsync(info, status, cancellationToken);
                if (migration.AbortRequested && !_cancelSent)
                {
                    await CancelMigrationAsync(cancellationToken);
                }
                if (migration.ForceRequested && !_forceApplied && _plan.PermitPostCopy && status == "active")
                {
                    await StartPostCopyAsync(cancellationToken);
                }
            }
        }

        /// <summary>
        /// The guest's memory is split between both hosts and its stream broke: have the destination listen again
        /// (migrate-recover) and resume to it, a bounded number of times in a row. The destination is frozen on
        /// missing pages meanwhile, so giving up hands the instance to the operator with both QEMUs left alone.
        /// </summary>
        private async Task ResumePostCopyAsync(CancellationToken cancellationToken)
        {
            if (_resumeIssued is { } issued && issued.Elapsed < s_resumeGrace)
            {
                return; // the last resume is still connecting; a failed one leaves the migration paused
            }
            _resumeIssued = null;
            _postCopyBytes = -1;
            if (_resumeAttempts >= _plan.PostCopyRecoveryAttempts)
            {
                throw PostCopyLost("postcopy-paused", $"the stream could not be resumed after {_resumeAttempts} attempt(s)");
            }
            _resumeAttempts++;
            driver.LogPostCopyPaused(Uuid, _plan.MigrationUuid, "postcopy-paused", _resumeAttempts, _plan.PostCopyRecoveryAttempts);
            await Task.Delay(TimeSpan.FromSeconds(PostCopyResume.DelaySecondsBefore(_resumeAttempts)), cancellationToken);
            try
            {
                var uri = await callbacks.RecoverPostCopyAsync(Uuid, cancellationToken);
                driver.LogPostCopyResuming(Uuid, _plan.MigrationUuid, uri);
                await _qmp.ExecuteAsync("migrate", new JsonObject { ["uri"] = uri, ["resume"] = true }, cancellationToken);
                _resumeIssued = Stopwatch.StartNew();
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                driver.LogPostCopyResumeFailed(Uuid, _plan.MigrationUuid, _resumeAttempts, ex.Message);
                _lastResumeFailure = ex;
            }
        }

        /// <summary>
        /// A stream that moves again ends a run of resume attempts; one that moves nothing for the stall time is a
        /// silent link (TCP would wait minutes to notice), so it is cut here and resumed like a broken one.
        /// </summary>
        private async Task WatchPostCopyStreamAsync(JsonElement info, CancellationToken cancellationToken)
        {
            var ram = info.TryGetProperty("ram", out var r) ? r : default;
            var transferred = Long(ram, "transferred");
            if (transferred != _postCopyBytes)
            {
                if (_postCopyBytes >= 0)
                {
                    _resumeAttempts = 0;
                    _resumeIssued = null;
                    _lastResumeFailure = null;
                }
                _postCopyBytes = transferred;
                _postCopyIdle.Restart();
                _refusedPauses = 0;
                _cutAccepted = null;
                return;
            }
            if (_cutAccepted is { } cut)
            {
                // The stream is shut already: a second migrate-pause is refused ("Failed to pause source migration"),
                // so wait for QEMU's migration thread to notice, within a bound.
                if (cut.Elapsed > s_cutSettleTime)
                {
                    throw PostCopyLost("postcopy-active", $"QEMU did not pause the stream within {s_cutSettleTime.TotalSeconds:F0} s of its cut");
                }
                return;
            }
            if (_plan.PostCopyStallSeconds > 0 && _postCopyIdle.Elapsed > TimeSpan.FromSeconds(_plan.PostCopyStallSeconds))
            {
                driver.LogPostCopyStalled(Uuid, _plan.MigrationUuid, _plan.PostCopyStallSeconds);
                _postCopyIdle.Restart();
                try
                {
                    await _qmp.ExecuteAsync("migrate-pause", null, cancellationToken);
                    _cutAccepted = Stopwatch.StartNew();
                }
                catch (QmpException ex)
                {
                    // Usually it moved on meanwhile and the next sample tells; refused again and again, QEMU is stuck.
                    driver.LogMigrationStepFailed(Uuid, _plan.MigrationUuid, ex.Message);
                    if (++_refusedPauses >= MaxRefusedPauses)
                    {
                        throw PostCopyLost("postcopy-active", $"the stalled stream could not be cut ({_refusedPauses} migrate-pause refused: {ex.Message})");
                    }
                }
            }
        }

        private FerryException PostCopyLost(string? status, string reason)
        {
            driver.LogPostCopyLost(Uuid, _plan.MigrationUuid, status, reason);
            // The destination's answer to the last resume is what an operator acts on (its QEMU's last line, its log).
            var last = _lastResumeFailure;
            // A plain failure on the destination's side crosses the call as "<Kind>: <message>": quote the message.
            var said = last is RemoteErrorException remote && last.Message.StartsWith(remote.RemoteKind + ": ", StringComparison.Ordinal)
                ? last.Message[(remote.RemoteKind.Length + 2)..]
                : last?.Message;
            return new FerryException(
                $"Live migration {_plan.MigrationUuid} of {Uuid} broke during post-copy ({status}: {reason}): the guest's memory is split between " +
                $"{driver._options.HostName} and {_plan.DestHost}. Both QEMUs are left as they are: the destination runs the guest and waits for the pages only the source has." +
                (last is null ? "" : $" The last resume failed on {_plan.DestHost}: {said}"))
            {
                Details = (last as FerryException)?.Details,
            };
        }

        /// <summary>Downtime steps, the completion timeout and a force-complete without post-copy (all allowed at any time).</summary>
        private async Task ApplyPolicyAsync(DowntimeSchedule schedule, TimeSpan completionTimeout, CancellationToken cancellationToken)
        {
            var elapsed = _clock.Elapsed;
            if (!_timeoutFired && completionTimeout > TimeSpan.Zero && elapsed > completionTimeout && !migration.PostCopy)
            {
                // Nova's should_trigger_timeout_action: once, and never in post-copy.
                _timeoutFired = true;
                driver.LogCompletionTimeout(Uuid, _plan.MigrationUuid, (long)completionTimeout.TotalSeconds, _plan.TimeoutAction);
                if (_plan.TimeoutAction == CompletionTimeoutAction.Abort)
                {
                    migration.TryAbort();
                }
                else
                {
                    migration.TryForceComplete();
                }
            }
            if (migration.ForceRequested && !_forceApplied && !_plan.PermitPostCopy)
            {
                // Nova pauses the guest so the copy converges. A QMP stop would carry "paused" to the destination,
                // which cannot tell our pause from the user's; QEMU's own stop-and-copy pauses it just the same
                // and resumes it there. With the largest downtime limit the next pass stops the guest and sends the rest.
                _forceApplied = true;
                driver.LogForceCompleteByPause(Uuid, _plan.MigrationUuid);
                await SetDowntimeLimitAsync(MaxDowntimeLimitMs, cancellationToken);
                return;
            }
            var limit = QemuLimitMs(schedule.LimitMsAt(elapsed));
            if (!_forceApplied && limit != _downtimeLimitMs)
            {
                driver.LogDowntimeStep(Uuid, _plan.MigrationUuid, limit, (long)elapsed.TotalSeconds);
                await SetDowntimeLimitAsync(limit, cancellationToken);
            }
        }

        private async Task SetDowntimeLimitAsync(long limitMs, CancellationToken cancellationToken)
        {
            _downtimeLimitMs = limitMs;
            await _qmp.ExecuteAsync("migrate-set-parameters", new JsonObject { ["downtime-limit"] = limitMs }, cancellationToken);
        }

        private async Task StartMigrateAsync(CancellationToken cancellationToken)
        {
            _migrateStarted = true;
            await _qmp.ExecuteAsync("migrate", new JsonObject { ["uri"] = incoming.MigrationUri }, cancellationToken);
        }

        private async Task CancelMigrationAsync(CancellationToken cancellationToken)
        {
            _cancelSent = true;
            await _qmp.ExecuteAsync("migrate_cancel", null, cancellationToken);
        }

        private async Task StartPostCopyAsync(CancellationToken cancellationToken)
        {
            _forceApplied = true;
            if (!migration.TryEnterPostCopy())
            {
                return;
            }
            try
            {
                await _qmp.ExecuteAsync("migrate-start-postcopy", null, cancellationToken);
            }
            catch (QmpException ex)
            {
                // Nova logs and carries on in pre-copy.
                migration.LeavePostCopy();
                driver.LogPostCopyRefused(Uuid, _plan.MigrationUuid, ex.Message);
                return;
            }
            await AnnouncePostCopyAsync(cancellationToken);
        }

        private async Task AnnouncePostCopyAsync(CancellationToken cancellationToken)
        {
            if (_postCopyAnnounced)
            {
                return;
            }
            _postCopyAnnounced = true;
            driver.LogSwitchedToPostCopy(Uuid, _plan.MigrationUuid, (long)_clock.Elapsed.TotalMilliseconds);
            await callbacks.MigrationSwitchedToPostCopyAsync(Uuid, cancellationToken);
        }

        private async Task ReportAsync(JsonElement info, string? status, CancellationToken cancellationToken, bool final = false)
        {
            var ram = info.ValueKind == JsonValueKind.Object && info.TryGetProperty("ram", out var r) ? r : default;
            var memoryTotal = Long(ram, "total", (long)guest.MemoryMb << 20);
            await callbacks.MigrationProgressAsync(Uuid, new MigrationProgress
            {
                MemoryTotalBytes = memoryTotal,
                MemoryProcessedBytes = Long(ram, "transferred"),
                MemoryRemainingBytes = final ? 0 : Long(ram, "remaining", memoryTotal),
                DiskTotalBytes = _diskTotal,
                DiskProcessedBytes = _diskProcessed,
                DiskRemainingBytes = _diskTotal - _diskProcessed,
                DirtyRateBytesPerSecond = Long(ram, "dirty-pages-rate") * Long(ram, "page-size", 4096),
                Iteration = (int)Math.Max(1, Long(ram, "dirty-sync-count", 1)),
                ExpectedDowntimeMs = Long(info, "expected-downtime"),
                PostCopy = migration.PostCopy || (status?.StartsWith("postcopy", StringComparison.Ordinal) ?? false),
                DowntimeMs = final ? Long(info, "downtime") : null,
                TotalTimeMs = final ? Long(info, "total-time", (long)_clock.Elapsed.TotalMilliseconds) : null,
            }, cancellationToken);
        }

        // --- block migration: blockdev-mirror of the root disk's top layer into the destination's NBD export ---

        private long RootDiskBytes()
        {
            var disk = new FileInfo(Path.Combine(driver.InstanceDirectory(Uuid), "disk"));
            return disk.Exists ? disk.Length : 0;
        }

        private async Task StartMirrorAsync(long bandwidth, CancellationToken cancellationToken)
        {
            var (host, port, export) = incoming.Nbd();
            await _qmp.ExecuteAsync("blockdev-add", new JsonObject
            {
                ["driver"] = "nbd",
                ["node-name"] = MirrorTargetNode,
                ["server"] = new JsonObject { ["type"] = "inet", ["host"] = host, ["port"] = port },
                ["export"] = export,
            }, cancellationToken);
            _targetAdded = true;
            var mirror = new JsonObject
            {
                ["job-id"] = MirrorJobId,
                ["device"] = RootDiskNode,
                ["target"] = MirrorTargetNode,
                ["sync"] = "top", // the _base layer exists on both hosts: copy only the overlay
                ["auto-dismiss"] = false, // keep the concluded job so its error (if any) can be read
            };
            if (_plan.BandwidthMiBps > 0)
            {
                mirror["speed"] = bandwidth;
            }
            await _qmp.ExecuteAsync("blockdev-mirror", mirror, cancellationToken);
            _mirrorStarted = true;
        }

        private async Task<JsonElement?> MirrorJobAsync(CancellationToken cancellationToken)
        {
            var jobs = await _qmp.ExecuteAsync("query-block-jobs", null, cancellationToken);
            foreach (var job in jobs.EnumerateArray())
            {
                if (Str(job, "device") == MirrorJobId)
                {
                    _diskTotal = Long(job, "len");
                    _diskProcessed = Long(job, "offset");
                    return job;
                }
            }
            return null;
        }

        private async Task<bool> MirrorReadyAsync(CancellationToken cancellationToken) =>
            await MirrorJobAsync(cancellationToken) is { } job && job.TryGetProperty("ready", out var ready) && ready.GetBoolean();

        private async Task<bool> MirrorFailedAsync(CancellationToken cancellationToken) =>
            await MirrorJobAsync(cancellationToken) is not { } job || Str(job, "status") is "aborting" or "concluded" or "null";

        /// <summary>
        /// At pre-switchover (vCPUs stopped): complete the READY mirror without a pivot, drop the NBD client, then let
        /// the migration finish. The time spent here is guest downtime.
        /// </summary>
        private async Task SwitchOverAsync(CancellationToken cancellationToken)
        {
            if (migration.AbortRequested && !migration.PostCopy)
            {
                await CancelMigrationAsync(cancellationToken);
                return;
            }
            if (_mirrorStarted && !_mirrorDone)
            {
                await _qmp.ExecuteAsync("block-job-cancel", new JsonObject { ["device"] = MirrorJobId }, cancellationToken);
                var error = await WaitForMirrorConclusionAsync(cancellationToken);
                _mirrorDone = true;
                await _qmp.ExecuteAsync("job-dismiss", new JsonObject { ["id"] = MirrorJobId }, cancellationToken);
                if (error is not null)
                {
                    driver.LogMirrorFailed(Uuid, _plan.MigrationUuid);
                    _mirrorFailed = true;
                    await CancelMigrationAsync(cancellationToken);
                    return;
                }
            }
            if (_targetAdded)
            {
                await _qmp.ExecuteAsync("blockdev-del", new JsonObject { ["node-name"] = MirrorTargetNode }, cancellationToken);
                _targetAdded = false;
            }
            await _qmp.ExecuteAsync("migrate-continue", new JsonObject { ["state"] = "pre-switchover" }, cancellationToken);
        }

        /// <summary>Waits until the mirror job has concluded; returns its error, or null when it finished cleanly.</summary>
        private async Task<string?> WaitForMirrorConclusionAsync(CancellationToken cancellationToken)
        {
            var deadline = Stopwatch.StartNew();
            while (true)
            {
                var job = await MirrorJobAsync(cancellationToken);
                if (job is not { } j)
                {
                    return "the mirror job disappeared";
                }
                if (Str(j, "status") is "concluded" or "null")
                {
                    return Str(j, "error");
                }
                if (deadline.Elapsed > s_blockJobTimeout)
                {
                    throw new FerryException($"The mirror of {Uuid} did not conclude within {s_blockJobTimeout.TotalSeconds:F0} s.");
                }
                await Task.Delay(TimeSpan.FromMilliseconds(20), cancellationToken);
            }
        }

        // --- failure: the guest must keep running here, with no job or NBD client left behind ---

        private async Task RecoverSourceAsync(bool wasRunning)
        {
            var ct = CancellationToken.None;
            try
            {
                var status = Str(await _qmp.ExecuteAsync("query-migrate", null, ct), "status");
                if (_migrateStarted && status is "setup" or "active" or "pre-switchover" or "device" or "cancelling")
                {
                    if (status != "cancelling")
                    {
                        await _qmp.ExecuteAsync("migrate_cancel", null, ct);
                    }
                    status = await WaitForMigrationEndAsync(ct);
                }
                if (_mirrorStarted && !_mirrorDone && await MirrorJobAsync(ct) is { } job)
                {
                    if (Str(job, "status") is not ("concluded" or "null"))
                    {
                        await _qmp.ExecuteAsync("block-job-cancel", new JsonObject { ["device"] = MirrorJobId, ["force"] = true }, ct);
                        await WaitForMirrorConclusionAsync(ct);
                    }
                    await _qmp.ExecuteAsync("job-dismiss", new JsonObject { ["id"] = MirrorJobId }, ct);
                    _mirrorDone = true;
                }
                if (_targetAdded)
                {
                    await _qmp.ExecuteAsync("blockdev-del", new JsonObject { ["node-name"] = MirrorTargetNode }, ct);
                    _targetAdded = false;
                }
                // QEMU restarts the vCPUs itself after a failed or cancelled migration; this only covers a guest that
                // ends up stopped anyway. Never after "completed": the destination runs it then (split brain).
                if (wasRunning && status is not ("completed" or "postcopy-active" or "postcopy-paused") && await RunStateAsync(ct) == "paused")
                {
                    driver.LogResumedAfterFailedMigration(Uuid, _plan.MigrationUuid);
                    await _qmp.ExecuteAsync("cont", null, ct);
                }
            }
            catch (Exception ex) when (ex is QmpException or FerryException or ObjectDisposedException)
            {
                driver.LogMigrationCleanupFailed(Uuid, "recover source", ex.Message);
            }
        }

        private async Task<string?> WaitForMigrationEndAsync(CancellationToken cancellationToken)
        {
            var deadline = Stopwatch.StartNew();
            while (true)
            {
                var status = Str(await _qmp.ExecuteAsync("query-migrate", null, cancellationToken), "status");
                if (status is "completed" or "failed" or "cancelled" or null || deadline.Elapsed > s_blockJobTimeout)
                {
                    return status;
                }
                await Task.Delay(s_migrationPollInterval, cancellationToken);
            }
        }

        private Task<string?> RunStateAsync(CancellationToken cancellationToken) => RunStatusAsync(process, cancellationToken);
    }
}
