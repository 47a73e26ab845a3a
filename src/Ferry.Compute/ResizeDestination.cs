using Ferry.Core.Domain;
using Ferry.Core.Rpc.Compute;
using Ferry.Core.Rpc.Conductor;

namespace Ferry.Compute;

/// <summary>The destination's part of a cold migration or resize: prep_resize, finish_resize, revert_resize.</summary>
public sealed class ResizeDestination(ComputeContext context)
{
    public async Task PrepResizeAsync(PrepResizeRequest request, CancellationToken ct)
    {
        var instance = request.Instance;
        try
        {
            await context.RunEventAsync(instance, request.Migration, request.RequestId, "compute_prep_resize", async () =>
            {
                await context.Driver.CheckCanReceiveAsync(ComputeContext.GuestFor(instance, request.NewFlavor), ct);
                var migration = await context.Conductor.UpdateMigrationAsync(new MigrationUpdateRequest
                {
                    Uuid = request.Migration.Uuid,
                    DestCompute = context.Host,
                    DestNode = context.Host,
                    DestHost = context.Options.MyIp,
                    ExpectedStatuses = [MigrationStatus.PreMigrating],
                }, ct);
                var updated = await context.UpdateInstanceAsync(new InstanceUpdateRequest
                {
                    Uuid = instance.Uuid,
                    SetNewFlavor = true,
                    NewFlavor = request.NewFlavor,
                    SetOldVmState = true,
                    OldVmState = instance.VmState,
                    ExpectedTaskStates = [TaskState.ResizePrep],
                }, ct);
                await context.Compute.ResizeInstanceAsync(instance.Host!, new ResizeInstanceRequest(updated, migration, request.NewFlavor, request.RequestId), ct);
            }, ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            if (request.Alternates.Count > 0)
            {
                // Reschedule (Nova's prep_resize retry): drop our claim; the conductor claims the next alternate.
                await context.TryAsync("drop destination claim", instance.Uuid, () => context.Placement.DeleteAllocationsAsync(instance.Uuid, ct));
                var newFlavorId = request.NewFlavor.InternalId == instance.Flavor.InternalId ? null : request.NewFlavor.Id;
                await context.Conductor.MigrateServerAsync(new MigrateServerRequest(instance.Uuid, newFlavorId, null, request.RequestId ?? "",
                    request.Migration.Uuid, request.Alternates), ct);
                return;
            }
            await ResizeRollback.RevertAsync(context, instance, request.Migration, TaskState.ResizePrep, ct);
        }
    }

    /// <summary>Builds the guest here from the handed-over disks; on failure the kept source copy comes back.</summary>
    public async Task FinishResizeAsync(FinishResizeRequest request, CancellationToken ct)
    {
        var instance = request.Instance;
        // Delivered again after this agent was killed in it: start-up recovery already gave the instance back to the
        // source and ended the migration. Rolling back here would destroy whatever runs here by now and revert the source twice.
        var migration = await context.Conductor.GetMigrationAsync(request.Migration.Uuid, ct);
        if (MigrationStatus.Final.Contains(migration.Status))
        {
            context.LogStaleRequest("compute_finish_resize", instance.Uuid, migration.Uuid, $"migration {migration.Status}");
            return;
        }
        try
        {
            await context.RunEventAsync(instance, request.Migration, request.RequestId, "compute_finish_resize", async () =>
            {
                await context.UpdateInstanceAsync(new InstanceUpdateRequest
                {
                    Uuid = instance.Uuid,
                    SetTaskState = true,
                    TaskState = TaskState.ResizeFinish,
                    ExpectedTaskStates = [TaskState.ResizeMigrated],
                }, ct);
                var powerOn = instance.OldVmState != VmState.Stopped;
                // The ports follow before the guest starts here (Nova's migrate_instance_finish in _finish_resize).
                await context.Networks.BindToHostAsync(instance, context.Host, ct);
                // The volumes too: this host's own attachments, and the source's deleted (its copy is off).
                var volumes = await context.Volumes.ReconnectHereAsync(instance, ct);
                instance = instance with { BlockDevices = volumes };
                await context.Driver.FinishMigrationAsync(ComputeContext.GuestFor(instance, request.NewFlavor), request.DiskInfo, powerOn, ct);
                // Migration first, as Nova does: a client that confirms the moment it sees
                // VERIFY_RESIZE must find a `finished` migration.
                await context.SetMigrationStatusAsync(request.Migration.Uuid, MigrationStatus.Finished, ct);
                await context.UpdateInstanceAsync(new InstanceUpdateRequest
                {
                    Uuid = instance.Uuid,
                    Flavor = request.NewFlavor,
                    BlockDevices = instance.BlockDevices,
                    VmState = VmState.Resized,
                    SetTaskState = true,
                    TaskState = null,
                    PowerState = context.PowerStateOf(instance.Uuid),
                    ExpectedTaskStates = [TaskState.ResizeFinish],
                }, ct);
            }, ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Unlike Nova (bug 1825537), the source still has its copy: drop ours and let the source take it back.
            await context.TryAsync("destroy destination copy", instance.Uuid, () => context.Driver.DestroyAsync(instance.Uuid, destroyDisks: true, ct));
            await context.TryAsync("migration error", instance.Uuid, () => context.SetMigrationStatusAsync(request.Migration.Uuid, MigrationStatus.Error, ct));
            await context.Compute.FinishRevertResizeAsync(request.Migration.SourceCompute!, new MigrationRequest(instance, request.Migration, request.RequestId), ct);
        }
    }

    public async Task RevertResizeAsync(MigrationRequest request, CancellationToken ct)
    {
        var instance = request.Instance;
        try
        {
            await context.RunEventAsync(instance, request.Migration, request.RequestId, "compute_revert_resize", async () =>
            {
                await context.Driver.DestroyAsync(instance.Uuid, destroyDisks: true, ct);
                await context.SetMigrationStatusAsync(request.Migration.Uuid, MigrationStatus.Reverted, ct);
                await context.Compute.FinishRevertResizeAsync(request.Migration.SourceCompute!, request, ct);
            }, ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Still VERIFY_RESIZE: the operator can retry the revert or confirm.
            await context.TryAsync("reset task state", instance.Uuid, () => context.UpdateInstanceAsync(new InstanceUpdateRequest
            {
                Uuid = instance.Uuid,
                SetTaskState = true,
                TaskState = null,
                ExpectedTaskStates = [TaskState.ResizeReverting],
            }, ct));
            await context.TryAsync("migration back to finished", instance.Uuid, () => context.SetMigrationStatusAsync(request.Migration.Uuid, MigrationStatus.Finished, ct));
        }
    }
}

/// <summary>The common way back for a cold migration that failed before the destination ran the guest.</summary>
internal static class ResizeRollback
{
    public static async Task RevertAsync(ComputeContext context, Instance instance, Migration migration, TaskState expected, CancellationToken ct)
    {
        await context.TryAsync("revert allocations", instance.Uuid, () => context.Placement.MoveAllocationsAsync(migration.Uuid, instance.Uuid, ct));
        await context.TryAsync("migration error", instance.Uuid, () => context.SetMigrationStatusAsync(migration.Uuid, MigrationStatus.Error, ct));
        await context.TryAsync("reset instance", instance.Uuid, () => context.UpdateInstanceAsync(new InstanceUpdateRequest
        {
            Uuid = instance.Uuid,
            SetTaskState = true,
            TaskState = null,
            SetNewFlavor = true,
            NewFlavor = null,
            SetOldVmState = true,
            OldVmState = null,
            ExpectedTaskStates = [expected],
        }, ct));
    }
}
