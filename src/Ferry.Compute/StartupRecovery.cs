using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Rpc.Compute;
using Ferry.Core.Rpc.Conductor;
using Ferry.Virt;
using Microsoft.Extensions.Logging;

namespace Ferry.Compute;

/// <summary>
/// What a compute agent does before it takes messages (Nova's init_host): destroy guests that were
/// evacuated away while it was down, then finish or roll back every move it was part of when it
/// stopped. Unlike Nova (bug 1753676 and §4.6 of the reference), queued and preparing live migrations
/// and resizes caught on the destination (resize_migrated, resize_finish) are recovered too, so nothing
/// is left stuck.
/// </summary>
public sealed partial class StartupRecovery(ComputeContext context)
{
    /// <summary>
    /// Post-copy migrations this host was the source of when it stopped. The hypervisor may have carried them on alone;
    /// their monitors are attached again once the agent serves (<see cref="LiveMigrationSource.ReattachPostCopyAsync"/>).
    /// </summary>
    public List<PostCopyToReattach> PostCopies { get; } = [];

    public sealed record PostCopyToReattach(Instance Instance, Migration Migration, string Dest, bool SharedInstancePath);

    /// <summary>
    /// The instances the database placed on this host when recovery read them. Recovery changes only those with a task in
    /// flight (and moves of other hosts), so the start-up power sync, which leaves such instances alone, reuses this list.
    /// </summary>
    public IReadOnlyList<Instance> Instances { get; private set; } = [];

    /// <param name="state">
    /// The host's migrations and instances as the agent's start read them (<c>compute_start</c>): one read serves every step
    /// below. Nothing before the instances' recovery moves an instance onto this host or changes one placed here, so they
    /// may be read with the migrations.
    /// </param>
    public async Task RunAsync(HostRecoveryState state, CancellationToken ct)
    {
        var migrations = await DestroyEvacuatedInstancesAsync(state.Migrations, ct);
        await RecoverMovesAwayAsync(migrations, ct);
        Instances = state.Instances;
        await DestroyStrayGuestsAsync(migrations, state.Instances, ct);
        foreach (var instance in state.Instances)
        {
            try
            {
                await RecoverInstanceAsync(instance, migrations, ct);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                Log.RecoveryFailed(context.Logger, ex, instance.Uuid);
            }
        }
        await SettlePortsAsync(state, ct);
    }

    /// <summary>
    /// The ports of every server whose move recovery just finished or rolled back follow it to the host it ended on: a move
    /// cut between binding the destination and settling leaves a binding on the host the guest is not on (or an inactive
    /// one). Servers still moving (a post-copy migration carried on) are left to their move; servers that were not moving
    /// have nothing to settle, so a restart makes no network call for them.
    /// </summary>
    private async Task SettlePortsAsync(HostRecoveryState state, CancellationToken ct)
    {
        var moved = state.Instances.Where(i => i.TaskState is not null && i.NetworkInfo.Count > 0).Select(i => i.Uuid)
            .Concat(state.Migrations.Where(m => !MigrationStatus.Final.Contains(m.Status)).Select(m => m.InstanceUuid))
            .Except(PostCopies.Select(p => p.Instance.Uuid)).Distinct();
        foreach (var uuid in moved)
        {
            try
            {
                var instance = await context.Conductor.GetInstanceAsync(uuid, ct);
                if (instance.Host is { } host && instance.TaskState is null && instance.NetworkInfo.Count > 0)
                {
                    await context.Networks.SettleOnHostAsync(instance, host, ct);
                }
            }
            catch (NotFoundException)
            {
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                Log.RecoveryFailed(context.Logger, ex, uuid);
            }
        }
    }

    /// <summary>
    /// Moves this host took part in whose instance the database already places on another host, so that the
    /// recovery by instance below never sees them: a live migration whose destination took over while the
    /// source's clean-up had not run, a confirm that had not finished on the source, an evacuation rebuild
    /// that died here before the instance became ours.
    /// </summary>
    private async Task RecoverMovesAwayAsync(List<Migration> migrations, CancellationToken ct)
    {
        foreach (var migration in migrations.Where(m => !MigrationStatus.Final.Contains(m.Status)))
        {
            try
            {
                Instance instance;
                try
                {
                    instance = await context.Conductor.GetInstanceAsync(migration.InstanceUuid, ct);
                }
                catch (NotFoundException)
                {
                    continue;
                }
                if (instance.Host == context.Host)
                {
                    continue;
                }
                switch (migration.MigrationType)
                {
                    case MigrationType.LiveMigration when migration.SourceCompute == context.Host && instance.Host == migration.DestCompute
                        && migration.Status != MigrationStatus.RunningPostCopy:
                        // post_live_migration_at_destination ran (it moves the instance): only our clean-up is missing.
                        if (context.Driver.GetGuest(instance.Uuid) is not null)
                        {
                            var shared = await IsStorageSharedWithAsync(instance.Uuid, migration.DestCompute, ct);
                            await context.Driver.PostLiveMigrationAtSourceAsync(ComputeContext.GuestFor(instance), shared, ct);
                        }
                        await context.Placement.DeleteAllocationsAsync(migration.Uuid, ct);
                        await context.SetMigrationStatusAsync(migration.Uuid, MigrationStatus.Completed, ct);
                        Log.MoveRecovered(context.Logger, instance.Uuid, migration.MigrationType, migration.Status, "completed at the source");
                        break;
                    case MigrationType.Migration or MigrationType.Resize when migration.SourceCompute == context.Host && migration.Status == MigrationStatus.Confirming:
                        await new ResizeSource(context).ConfirmResizeAsync(new MigrationRequest(instance, migration, null), ct);
                        Log.MoveRecovered(context.Logger, instance.Uuid, migration.MigrationType, migration.Status, "confirmed");
                        break;
                    case MigrationType.Evacuation when migration.DestCompute == context.Host:
                        await AbandonEvacuationRebuildAsync(instance, migration, ct);
                        break;
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                Log.RecoveryFailed(context.Logger, ex, migration.InstanceUuid);
            }
        }
    }

    /// <summary>
    /// The rebuild of an evacuated instance died here: drop whatever it built (and our share of the doubled
    /// allocation) and leave the instance in ERROR on its old host, as a failed rebuild does, so the operator
    /// evacuates again. A disk on shared storage may be the only one: it stays unless the storage is known not shared.
    /// </summary>
    private async Task AbandonEvacuationRebuildAsync(Instance instance, Migration migration, CancellationToken ct)
    {
        if (context.Driver.GetGuest(instance.Uuid) is not null || context.Driver.InstanceOnDisk(instance.Uuid))
        {
            var shared = await IsStorageSharedWithAsync(instance.Uuid, migration.SourceCompute, ct);
            await context.Driver.DestroyAsync(instance.Uuid, destroyDisks: !shared, ct);
        }
        if (!string.IsNullOrEmpty(context.NodeUuid))
        {
            await context.Placement.RemoveProviderFromAllocationAsync(instance.Uuid, context.NodeUuid, ct);
        }
        await context.SetMigrationStatusAsync(migration.Uuid, MigrationStatus.Failed, ct);
        if (instance.TaskState is TaskState.Rebuilding or TaskState.RebuildSpawning)
        {
            await ClearTaskStateAsync(instance, ct, VmState.Error, powerState: false);
        }
        Log.MoveRecovered(context.Logger, instance.Uuid, migration.MigrationType, migration.Status, "abandoned at the destination");
    }

    /// <returns><paramref name="migrations"/> with the status of each evacuation completed here updated.</returns>
    private async Task<List<Migration>> DestroyEvacuatedInstancesAsync(List<Migration> migrations, CancellationToken ct)
    {
        var completed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var migration in migrations.Where(m => m.MigrationType == MigrationType.Evacuation && m.SourceCompute == context.Host
            && m.Status is MigrationStatus.Accepted or MigrationStatus.PreMigrating or MigrationStatus.Done))
        {
            if (migration.Status != MigrationStatus.Done)
            {
                // Still being rebuilt elsewhere; the next start-up cleans up.
                continue;
            }
            try
            {
                if (context.Driver.GetGuest(migration.InstanceUuid) is not null)
                {
                    var shared = await IsStorageSharedWithAsync(migration.InstanceUuid, migration.DestCompute, ct);
                    await context.Driver.DestroyAsync(migration.InstanceUuid, destroyDisks: !shared, ct);
                }
                if (!string.IsNullOrEmpty(context.NodeUuid))
                {
                    await context.Placement.RemoveProviderFromAllocationAsync(migration.InstanceUuid, context.NodeUuid, ct);
                }
                await context.SetMigrationStatusAsync(migration.Uuid, MigrationStatus.Completed, ct);
                completed.Add(migration.Uuid);
                Log.EvacuatedGuestDestroyed(context.Logger, migration.InstanceUuid);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // The stale copy stays (stopped) and the migration `done`: the next start-up tries again.
                Log.RecoveryFailed(context.Logger, ex, migration.InstanceUuid);
            }
        }
        return completed.Count == 0 ? migrations
            : [.. migrations.Select(m => completed.Contains(m.Uuid) ? m with { Status = MigrationStatus.Completed } : m)];
    }

    /// <summary>Whether this host and <paramref name="otherHost"/> share the instances path; unknown counts as shared.</summary>
    private async Task<bool> IsStorageSharedWithAsync(string instanceUuid, string? otherHost, CancellationToken ct)
    {
        if (otherHost is null)
        {
            return false;
        }
        var file = context.Driver.CreateSharedStorageTestFile();
        try
        {
            var instance = await context.Conductor.GetInstanceAsync(instanceUuid, ct);
            return await context.Compute.CheckInstanceSharedStorageAsync(otherHost, new CheckInstanceSharedStorageRequest(instance, file), ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Unknown means keep the disks: deleting a shared disk loses the guest (Nova bug 1550919).
            Log.SharedStorageUnknown(context.Logger, ex, instanceUuid);
            return true;
        }
        finally
        {
            context.Driver.CleanupSharedStorageTestFile(file);
        }
    }

    /// <summary>
    /// Removes guests this hypervisor still holds but the database places elsewhere with no move in
    /// flight here (a source copy whose clean-up failed after a live migration), or not at all
    /// (deleted). Such a copy is never running; keeping it would risk two copies one day.
    /// </summary>
    private async Task DestroyStrayGuestsAsync(List<Migration> migrations, List<Instance> instances, CancellationToken ct)
    {
        // The instances placed here (one read, through an index) settle almost every guest: only the others are looked
        // up one by one (a restart of 10,000 hosts with 100,000 guests made 100,000 calls otherwise).
        var ours = instances.Select(i => i.Uuid).ToHashSet(StringComparer.Ordinal);
        foreach (var guest in context.Driver.ListGuests().Where(g => !ours.Contains(g.Uuid)))
        {
            try
            {
                Instance instance;
                try
                {
                    instance = await context.Conductor.GetInstanceAsync(guest.Uuid, ct);
                }
                catch (NotFoundException)
                {
                    await context.Driver.DestroyAsync(guest.Uuid, destroyDisks: true, ct);
                    Log.StrayGuestDestroyed(context.Logger, guest.Uuid, "deleted");
                    continue;
                }
                var moving = migrations.Any(m => m.InstanceUuid == guest.Uuid && !MigrationStatus.Final.Contains(m.Status));
                if (instance.Host == context.Host || instance.Host is null || moving)
                {
                    continue;
                }
                var shared = await IsStorageSharedWithAsync(guest.Uuid, instance.Host, ct);
                await context.Driver.DestroyAsync(guest.Uuid, destroyDisks: !shared, ct);
                Log.StrayGuestDestroyed(context.Logger, guest.Uuid, instance.Host);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                Log.RecoveryFailed(context.Logger, ex, guest.Uuid);
            }
        }
    }

    private async Task RecoverInstanceAsync(Instance instance, List<Migration> migrations, CancellationToken ct)
    {
        var active = migrations
            .Where(m => m.InstanceUuid == instance.Uuid && !MigrationStatus.Final.Contains(m.Status))
            .OrderByDescending(m => m.Id)
            .FirstOrDefault();
        switch (instance.TaskState)
        {
            case TaskState.Migrating when active is { Status: MigrationStatus.RunningPostCopy, DestCompute: { } postCopyDest }:
                // Never rolled back: the guest runs on the destination and part of its memory may be only here.
                PostCopies.Add(new PostCopyToReattach(instance, active, postCopyDest, await IsStorageSharedWithAsync(instance.Uuid, postCopyDest, ct)));
                break;
            case TaskState.Migrating when active is not null:
                // The copy died with us: the guest is still here (paused or running); keep it here.
                await context.TryAsync("revert allocations", instance.Uuid, () => context.Placement.MoveAllocationsAsync(active.Uuid, instance.Uuid, ct));
                if (active.DestCompute is { } dest && dest != context.Host)
                {
                    // On shared storage the destination's instance directory is ours: it must stay.
                    var sharedWithDest = await IsStorageSharedWithAsync(instance.Uuid, dest, ct);
                    await context.TryAsync("rollback at destination", instance.Uuid, () => context.Compute.RollbackLiveMigrationAtDestinationAsync(dest,
                        new RollbackLiveMigrationAtDestinationRequest(instance, active, DestroyDisks: !sharedWithDest, null), ct));
                }
                if (context.Driver.GetGuest(instance.Uuid) is { PowerState: Virt.GuestPowerState.Paused } && instance.VmState == VmState.Active)
                {
                    await context.Driver.PowerOnAsync(instance.Uuid, ct);
                }
                await context.SetMigrationStatusAsync(active.Uuid, MigrationStatus.Error, ct);
                await ClearTaskStateAsync(instance, ct);
                break;
            case TaskState.ResizePrep or TaskState.ResizeMigrating when active is not null:
                if (context.Driver.GetGuest(instance.Uuid) is { PowerState: not Virt.GuestPowerState.Running } && instance.VmState == VmState.Active)
                {
                    await context.TryAsync("restore source", instance.Uuid,
                        () => context.Driver.FinishRevertMigrationAsync(ComputeContext.GuestFor(instance), powerOn: true, ct));
                }
                await ResizeRollback.RevertAsync(context, instance, active, instance.TaskState.Value, ct);
                break;
            case TaskState.ResizeMigrated or TaskState.ResizeFinish when active is not null && active.SourceCompute is { } source && source != context.Host:
                // We died while building the destination copy; the source kept its copy (until
                // confirm), so drop ours and hand the instance back (Nova leaves these stuck).
                await context.TryAsync("destroy destination copy", instance.Uuid, () => context.Driver.DestroyAsync(instance.Uuid, destroyDisks: true, ct));
                await context.SetMigrationStatusAsync(active.Uuid, MigrationStatus.Error, ct);
                await context.Compute.FinishRevertResizeAsync(source, new MigrationRequest(instance, active, null), ct);
                break;
            case TaskState.Rebuilding or TaskState.RebuildSpawning:
                // The old host of an evacuation: the destination drops what it built when it starts
                // (RecoverMovesAwayAsync); one that never got the rebuild, or was never chosen, holds a claim only.
                if (active is not null)
                {
                    if (active.DestCompute is { } rebuildHost && rebuildHost != context.Host)
                    {
                        await context.TryAsync("destination claim", instance.Uuid, () => DropOtherProvidersAsync(instance.Uuid, ct));
                    }
                    await context.SetMigrationStatusAsync(active.Uuid, MigrationStatus.Failed, ct);
                }
                else
                {
                    await context.TryAsync("destination claim", instance.Uuid, () => DropOtherProvidersAsync(instance.Uuid, ct));
                }
                await ClearTaskStateAsync(instance, ct, VmState.Error);
                break;
            case TaskState.ResizeReverting:
                await ResumeRevertAsync(instance, migrations, ct);
                break;
            case null when instance.BlockDevices.Count > 0:
                await context.Volumes.SettleAfterRestartAsync(instance, ct);
                break;
            case TaskState.Deleting:
                // The delete was accepted: finish it (destroying what is left here is idempotent).
                await new InstanceLifecycle(context).TerminateAsync(new InstanceRequest(instance, null), ct);
                break;
            case TaskState.Migrating or TaskState.ResizePrep or TaskState.ResizeMigrating
                or TaskState.PoweringOff or TaskState.PoweringOn or TaskState.Spawning
                or TaskState.Rebooting or TaskState.RebootingHard
                or TaskState.Pausing or TaskState.Unpausing or TaskState.Suspending or TaskState.Resuming:
                await ClearTaskStateAsync(instance, ct, instance.TaskState == TaskState.Spawning ? VmState.Error : null);
                break;
        }
    }

    /// <summary>
    /// A revert died on this (destination) host: the instance is still ours in the database. Drop our copy (again)
    /// and hand the instance back to the source, whose finish_revert_resize brings its kept copy back (idempotent).
    /// </summary>
    private async Task ResumeRevertAsync(Instance instance, List<Migration> migrations, CancellationToken ct)
    {
        var migration = migrations
            .Where(m => m.InstanceUuid == instance.Uuid && m.MigrationType is MigrationType.Migration or MigrationType.Resize
                && m.Status is MigrationStatus.Reverting or MigrationStatus.Reverted)
            .OrderByDescending(m => m.Id)
            .FirstOrDefault();
        if (migration?.SourceCompute is not { } source)
        {
            await ClearTaskStateAsync(instance, ct);
            return;
        }
        if (source != context.Host && context.Driver.GetGuest(instance.Uuid) is not null)
        {
            await context.Driver.DestroyAsync(instance.Uuid, destroyDisks: true, ct);
        }
        if (migration.Status != MigrationStatus.Reverted)
        {
            await context.SetMigrationStatusAsync(migration.Uuid, MigrationStatus.Reverted, ct);
        }
        await context.Compute.FinishRevertResizeAsync(source, new MigrationRequest(instance, migration with { Status = MigrationStatus.Reverted }, null), ct);
        Log.MoveRecovered(context.Logger, instance.Uuid, migration.MigrationType, migration.Status, "revert resumed");
    }

    /// <summary>Leaves the instance's allocation on this host's provider only (a claim made elsewhere for a move that died).</summary>
    private async Task DropOtherProvidersAsync(string instanceUuid, CancellationToken ct)
    {
        var allocations = await context.Placement.GetAllocationsAsync(instanceUuid, ct);
        foreach (var provider in (allocations.Allocations?.Keys.ToList() ?? []).Where(p => p != context.NodeUuid))
        {
            await context.Placement.RemoveProviderFromAllocationAsync(instanceUuid, provider, ct);
        }
    }

    private Task ClearTaskStateAsync(Instance instance, CancellationToken ct, VmState? vmState = null, bool powerState = true) =>
        context.UpdateInstanceAsync(new InstanceUpdateRequest
        {
            Uuid = instance.Uuid,
            VmState = vmState,
            SetTaskState = true,
            TaskState = null,
            Progress = 0,
            PowerState = powerState ? context.PowerStateOf(instance.Uuid) : null,
            ExpectedTaskStates = [instance.TaskState],
        }, ct);

    private static partial class Log
    {
        [LoggerMessage(EventId = 210, Level = LogLevel.Error, Message = "Could not recover instance {InstanceId} at start-up")]
        public static partial void RecoveryFailed(ILogger logger, Exception ex, string instanceId);

        [LoggerMessage(EventId = 211, Level = LogLevel.Information, Message = "Destroyed instance {InstanceId}: it was evacuated while this host was down")]
        public static partial void EvacuatedGuestDestroyed(ILogger logger, string instanceId);

        [LoggerMessage(EventId = 213, Level = LogLevel.Warning, Message = "Destroyed stray guest {InstanceId}: the instance is on {Owner}")]
        public static partial void StrayGuestDestroyed(ILogger logger, string instanceId, string owner);

        [LoggerMessage(EventId = 214, Level = LogLevel.Warning, Message = "Recovered {MigrationType} of instance {InstanceId} found {Status} at start-up: {Outcome}")]
        public static partial void MoveRecovered(ILogger logger, string instanceId, string migrationType, string status, string outcome);

        [LoggerMessage(EventId = 212, Level = LogLevel.Warning, Message = "Could not tell whether instance {InstanceId} is on shared storage; keeping its disks")]
        public static partial void SharedStorageUnknown(ILogger logger, Exception ex, string instanceId);
    }
}
