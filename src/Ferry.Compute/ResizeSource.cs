using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Rpc.Compute;
using Ferry.Core.Rpc.Conductor;

namespace Ferry.Compute;

/// <summary>The source's part of a cold migration or resize: resize_instance, confirm_resize, finish_revert_resize.</summary>
public sealed class ResizeSource(ComputeContext context)
{
    public async Task ResizeInstanceAsync(ResizeInstanceRequest request, CancellationToken ct)
    {
        var instance = request.Instance;
        var poweredOff = false;
        try
        {
            await context.RunEventAsync(instance, request.Migration, request.RequestId, "compute_resize_instance", async () =>
            {
                await context.SetMigrationStatusAsync(request.Migration.Uuid, MigrationStatus.Migrating, ct);
                await context.UpdateInstanceAsync(new InstanceUpdateRequest
                {
                    Uuid = instance.Uuid,
                    SetTaskState = true,
                    TaskState = TaskState.ResizeMigrating,
                    ExpectedTaskStates = [TaskState.ResizePrep],
                }, ct);
                poweredOff = true;
                var diskInfo = await context.Driver.MigrateDiskAndPowerOffAsync(ComputeContext.GuestFor(instance), request.Migration.DestCompute!,
                    ComputeContext.GuestFor(instance, request.NewFlavor), ct);
                await context.SetMigrationStatusAsync(request.Migration.Uuid, MigrationStatus.PostMigrating, ct);
                var moved = await context.UpdateInstanceAsync(new InstanceUpdateRequest
                {
                    Uuid = instance.Uuid,
                    Host = request.Migration.DestCompute,
                    Node = request.Migration.DestNode,
                    SetOldFlavor = true,
                    OldFlavor = instance.Flavor,
                    PowerState = PowerState.Shutdown,
                    SetTaskState = true,
                    TaskState = TaskState.ResizeMigrated,
                    ExpectedTaskStates = [TaskState.ResizeMigrating],
                }, ct);
                await context.Compute.FinishResizeAsync(request.Migration.DestCompute!,
                    new FinishResizeRequest(moved, request.Migration, request.NewFlavor, diskInfo, request.RequestId), ct);
            }, ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            if (poweredOff)
            {
                // Our copy is intact (kept for revert): bring it back as it was.
                await context.TryAsync("restore source", instance.Uuid, () =>
                    context.Driver.FinishRevertMigrationAsync(ComputeContext.GuestFor(instance), instance.VmState != VmState.Stopped, ct));
                await context.TryAsync("bind ports here", instance.Uuid, () => context.Networks.BindToHostAsync(instance, context.Host, ct));
                await context.TryAsync("restore host", instance.Uuid, () => context.UpdateInstanceAsync(new InstanceUpdateRequest
                {
                    Uuid = instance.Uuid,
                    Host = context.Host,
                    Node = instance.Node,
                    SetOldFlavor = true,
                    OldFlavor = null,
                    PowerState = context.PowerStateOf(instance.Uuid),
                }, ct));
            }
            var expected = poweredOff ? TaskState.ResizeMigrating : TaskState.ResizePrep;
            var current = await context.Conductor.GetInstanceAsync(instance.Uuid, ct);
            await ResizeRollback.RevertAsync(context, instance, request.Migration, current.TaskState ?? expected, ct);
        }
    }

    /// <summary>
    /// Confirm: the source copy goes and so does the migration's hold on this host, whatever else
    /// fails (the hold is released before the final status is written, so a final status means it is gone).
    /// </summary>
    public async Task ConfirmResizeAsync(MigrationRequest request, CancellationToken ct)
    {
        var instance = request.Instance;
        try
        {
            await context.RunEventAsync(instance, request.Migration, request.RequestId, "compute_confirm_resize", async () =>
            {
                try
                {
                    await context.Driver.ConfirmMigrationAsync(ComputeContext.GuestFor(instance, instance.OldFlavor), ct);
                }
                finally
                {
                    await context.TryAsync("delete migration allocation", instance.Uuid, () => context.Placement.DeleteAllocationsAsync(request.Migration.Uuid, ct));
                }
                await context.SetMigrationStatusAsync(request.Migration.Uuid, MigrationStatus.Confirmed, ct);
                try
                {
                    await context.UpdateInstanceAsync(new InstanceUpdateRequest
                    {
                        Uuid = instance.Uuid,
                        VmState = instance.PowerState == PowerState.Shutdown ? VmState.Stopped : VmState.Active,
                        SetOldFlavor = true,
                        OldFlavor = null,
                        SetNewFlavor = true,
                        NewFlavor = null,
                        SetOldVmState = true,
                        OldVmState = null,
                    }, ct);
                }
                catch (NotFoundException)
                {
                    // Confirmed because the server is being deleted: the row may already be gone.
                }
            }, ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            await context.TryAsync("migration error", instance.Uuid, () => context.SetMigrationStatusAsync(request.Migration.Uuid, MigrationStatus.Error, ct));
        }
    }

    /// <summary>The server is being deleted after a failed confirm: retry removing what the confirm left here.</summary>
    public Task DestroyResizeSourceAsync(MigrationRequest request, CancellationToken ct) =>
        context.RunEventAsync(request.Instance, request.Migration, request.RequestId, "compute_destroy_resize_source", async () =>
        {
            await context.Driver.ConfirmMigrationAsync(ComputeContext.GuestFor(request.Instance, request.Instance.OldFlavor), ct);
            await context.Placement.DeleteAllocationsAsync(request.Migration.Uuid, ct);
        }, ct);

    /// <summary>Revert (or a failed finish on the destination): the kept source copy runs again, here.</summary>
    public async Task FinishRevertResizeAsync(MigrationRequest request, CancellationToken ct)
    {
        var instance = await context.Conductor.GetInstanceAsync(request.Instance.Uuid, ct);
        var oldFlavor = instance.OldFlavor ?? instance.Flavor;
        try
        {
            await context.RunEventAsync(instance, request.Migration, request.RequestId, "compute_finish_revert_resize", async () =>
            {
                var powerOn = instance.OldVmState != VmState.Stopped;
                await context.Networks.BindToHostAsync(instance, context.Host, ct);
                instance = instance with { BlockDevices = await context.Volumes.ReconnectHereAsync(instance, ct) };
                await context.Driver.FinishRevertMigrationAsync(ComputeContext.GuestFor(instance, oldFlavor), powerOn, ct);
                await context.Placement.MoveAllocationsAsync(request.Migration.Uuid, instance.Uuid, ct);
                await context.UpdateInstanceAsync(RevertedHere(instance, request.Migration, oldFlavor, instance.OldVmState ?? VmState.Active), ct);
            }, ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The destination copy is gone and ours would not come back: the instance is here, not
            // running, and in ERROR so the operator sees it; the source allocation is its own again.
            await context.TryAsync("revert allocations", instance.Uuid, () => context.Placement.MoveAllocationsAsync(request.Migration.Uuid, instance.Uuid, ct));
            await context.TryAsync("error out", instance.Uuid, () => context.UpdateInstanceAsync(RevertedHere(instance, request.Migration, oldFlavor, VmState.Error), ct));
            await context.TryAsync("migration error", instance.Uuid, () => context.SetMigrationStatusAsync(request.Migration.Uuid, MigrationStatus.Error, ct));
        }
    }

    private InstanceUpdateRequest RevertedHere(Instance instance, Migration migration, Flavor oldFlavor, VmState vmState) => new()
    {
        Uuid = instance.Uuid,
        Host = context.Host,
        Node = migration.SourceNode ?? context.Host,
        Flavor = oldFlavor,
        BlockDevices = instance.BlockDevices,
        SetOldFlavor = true,
        OldFlavor = null,
        SetNewFlavor = true,
        NewFlavor = null,
        SetOldVmState = true,
        OldVmState = null,
        VmState = vmState,
        PowerState = context.PowerStateOf(instance.Uuid),
        SetTaskState = true,
        TaskState = null,
    };
}
