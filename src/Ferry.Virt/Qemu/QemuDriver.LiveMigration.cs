using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.Core.Errors;

namespace Ferry.Virt.Qemu;

/// <summary>Live migration: incoming QEMU on the destination, <c>migrate</c> and its monitor on the source.</summary>
public sealed partial class QemuDriver
{
    private static readonly TimeSpan s_migrationPollInterval = TimeSpan.FromMilliseconds(100);

    private readonly ConcurrentDictionary<string, QemuProcess> _migrating = new(StringComparer.Ordinal);

    private static long Long(JsonElement e, string name, long fallback = 0) =>
        e.TryGetProperty(name, out var v) && v.TryGetInt64(out var l) ? l : fallback;

    // --- live migration (pre-copy of RAM; the disk must be on shared storage or not needed by the guest) ---

    public async Task<string> PreLiveMigrationAsync(GuestSpec guest, bool sharedInstancePath, bool blockMigration, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(guest);
        if (blockMigration)
        {
            throw NotYet("Block migration");
        }
        var record = new QemuGuest(guest);
        if (!_guests.TryAdd(guest.Uuid, record))
        {
            throw new ConflictException($"Guest {guest.Uuid} is already defined on {_options.HostName}.");
        }
        var dir = InstanceDirectory(guest.Uuid);
        try
        {
            CheckSocketPath(guest.Uuid);
            Directory.CreateDirectory(dir);
            if (!sharedInstancePath)
            {
                await CreateRootDiskAsync(guest, Path.Combine(dir, "disk"), cancellationToken);
                if (guest.ConfigDrive)
                {
                    await WriteConfigDriveAsync(guest, Path.Combine(dir, "disk.config"), cancellationToken);
                }
                await File.WriteAllTextAsync(Path.Combine(dir, "guest.json"), JsonSerializer.Serialize(guest, QemuJsonContext.Default.GuestSpec), cancellationToken);
            }
            var process = await QemuProcess.StartAsync(_options.QemuBinary, LaunchSpec(guest) with { IncomingUri = "defer" }, _options.StartTimeout, cancellationToken);
            record.Process = process;
            record.PowerState = GuestPowerState.Paused;
            StartEventPump(record, process);
            var uri = string.Create(CultureInfo.InvariantCulture, $"tcp:{_options.MigrationAddress}:{FreeTcpPort(_options.MigrationAddress)}");
            await process.Qmp.ExecuteAsync("migrate-incoming", new JsonObject { ["uri"] = uri }, cancellationToken);
            return uri;
        }
        catch
        {
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

    public async Task<LiveMigrationOutcome> LiveMigrateAsync(GuestSpec guest, LiveMigrationPlan plan, IDriverCallbacks callbacks, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(guest);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(callbacks);
        if (plan.BlockMigration)
        {
            throw NotYet("Block migration");
        }
        var record = Find(guest.Uuid);
        var process = record.Process ?? throw new ConflictException($"Guest {guest.Uuid} is not running.");
        var uri = plan.IncomingUri ?? throw new BadRequestException("The live migration plan has no incoming URI.");
        var qmp = process.Qmp;
        await qmp.ExecuteAsync("migrate-set-capabilities", new JsonObject
        {
            ["capabilities"] = new JsonArray(
                new JsonObject { ["capability"] = "events", ["state"] = true },
                new JsonObject { ["capability"] = "auto-converge", ["state"] = plan.PermitAutoConverge }),
        }, cancellationToken);
        // Always explicit: QEMU's default of 128 MiB/s is a hidden cap (see the qemu-lab findings).
        var bandwidth = plan.BandwidthMiBps > 0 ? plan.BandwidthMiBps << 20 : 8L << 30;
        await qmp.ExecuteAsync("migrate-set-parameters", new JsonObject { ["max-bandwidth"] = bandwidth, ["downtime-limit"] = plan.DowntimeMs }, cancellationToken);
        _migrating[guest.Uuid] = process;
        try
        {
            await qmp.ExecuteAsync("migrate", new JsonObject { ["uri"] = uri }, cancellationToken);
            var iteration = 0;
            while (true)
            {
                await Task.Delay(s_migrationPollInterval, cancellationToken);
                var info = await qmp.ExecuteAsync("query-migrate", null, cancellationToken);
                var status = info.TryGetProperty("status", out var st) ? st.GetString() : null;
                if (info.TryGetProperty("ram", out var ram))
                {
                    iteration = ram.TryGetProperty("dirty-sync-count", out var syncs) ? syncs.GetInt32() : iteration;
                    await callbacks.MigrationProgressAsync(guest.Uuid, new MigrationProgress
                    {
                        MemoryTotalBytes = Long(ram, "total"),
                        MemoryProcessedBytes = Long(ram, "transferred"),
                        MemoryRemainingBytes = Long(ram, "remaining"),
                        DirtyRateBytesPerSecond = Long(ram, "dirty-pages-rate") * Long(ram, "page-size", 4096),
                        Iteration = Math.Max(1, iteration),
                        ExpectedDowntimeMs = Long(info, "expected-downtime"),
                    }, cancellationToken);
                }
                switch (status)
                {
                    case "completed":
                        record.PowerState = GuestPowerState.Paused; // postmigrate: never cont it (split brain)
                        LogMigrationFinished(guest.Uuid, plan.MigrationUuid, LiveMigrationOutcome.Completed);
                        return LiveMigrationOutcome.Completed;
                    case "failed":
                        LogMigrationFinished(guest.Uuid, plan.MigrationUuid, LiveMigrationOutcome.Failed);
                        return LiveMigrationOutcome.Failed;
                    case "cancelled":
                        LogMigrationFinished(guest.Uuid, plan.MigrationUuid, LiveMigrationOutcome.Cancelled);
                        return LiveMigrationOutcome.Cancelled;
                }
            }
        }
        finally
        {
            _migrating.TryRemove(guest.Uuid, out _);
        }
    }

    public bool AbortLiveMigration(string uuid)
    {
        if (!_migrating.TryGetValue(uuid, out var process))
        {
            return false;
        }
        _ = process.Qmp.ExecuteAsync("migrate_cancel", null, CancellationToken.None)
            .ContinueWith(t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        return true;
    }

    public bool ForceCompleteLiveMigration(string uuid) => false;

    public async Task PostLiveMigrationAtSourceAsync(GuestSpec guest, bool sharedInstancePath, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(guest);
        await DestroyAsync(guest.Uuid, destroyDisks: !sharedInstancePath, cancellationToken);
    }

    public async Task PostLiveMigrationAtDestinationAsync(GuestSpec guest, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(guest);
        var record = Find(guest.Uuid);
        if (record.Process is { } process)
        {
            record.PowerState = await QueryStatusAsync(process, cancellationToken);
        }
    }

    public Task RollbackLiveMigrationAtDestinationAsync(GuestSpec guest, bool destroyDisks, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(guest);
        return DestroyAsync(guest.Uuid, destroyDisks, cancellationToken);
    }
}
