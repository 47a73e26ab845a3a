using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Rpc.Compute;
using Ferry.Core.Rpc.Conductor;

namespace Ferry.Compute;

/// <summary>
/// Rebuild of an evacuated instance on this (destination) host: reuse the disk when the instance's
/// files are visible here (shared storage), otherwise build it anew from the image.
/// </summary>
public sealed class Evacuation(ComputeContext context)
{
    public async Task RebuildInstanceAsync(RebuildInstanceRequest request, CancellationToken ct)
    {
        var instance = request.Instance;
        var originalVmState = instance.VmState;
        // Whether the disk we would use was already here (shared storage): then it is the only copy.
        var diskWasHere = true;
        try
        {
            await context.RunEventAsync(instance, request.Migration, request.RequestId, "compute_rebuild_instance", async () =>
            {
                await context.Conductor.UpdateMigrationAsync(new MigrationUpdateRequest
                {
                    Uuid = request.Migration.Uuid,
                    Status = MigrationStatus.PreMigrating,
                    DestCompute = context.Host,
                    DestNode = context.Host,
                    DestHost = context.Options.MyIp,
                }, ct);
                var onDisk = diskWasHere = context.Driver.InstanceOnDisk(instance.Uuid);
                if (request.OnSharedStorage is { } claimed && claimed != onDisk)
                {
                    throw new InvalidSharedStorageException(context.Host, "Invalid state of instance files on shared storage");
                }
                await context.UpdateInstanceAsync(new InstanceUpdateRequest
                {
                    Uuid = instance.Uuid,
                    SetTaskState = true,
                    TaskState = TaskState.RebuildSpawning,
                    ExpectedTaskStates = [TaskState.Rebuilding],
                }, ct);
                // The ports are bound here before the guest starts (Nova's setup_instance_network_on_host in rebuild).
                await context.Networks.BindToHostAsync(instance, context.Host, ct);
                // The volumes are attached here, and the dead host's attachments deleted (its QEMU is gone).
                instance = instance with { BlockDevices = await context.Volumes.ReconnectHereAsync(instance, ct) };
                await context.Driver.SpawnAsync(ComputeContext.GuestFor(instance), reuseDisks: onDisk, ct);
                if (originalVmState == VmState.Stopped)
                {
                    await context.Driver.PowerOffAsync(instance.Uuid, ct);
                }
                await context.UpdateInstanceAsync(new InstanceUpdateRequest
                {
                    Uuid = instance.Uuid,
                    Host = context.Host,
                    Node = request.Selection.Nodename,
                    BlockDevices = instance.BlockDevices,
                    VmState = originalVmState == VmState.Stopped ? VmState.Stopped : VmState.Active,
                    PowerState = context.PowerStateOf(instance.Uuid),
                    SetTaskState = true,
                    TaskState = null,
                    LaunchedAt = context.Time.GetUtcNow(),
                    ExpectedTaskStates = [TaskState.RebuildSpawning],
                }, ct);
                await context.SetMigrationStatusAsync(request.Migration.Uuid, MigrationStatus.Done, ct);
            }, ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Nothing runs here: give back our part of the doubled allocation; the source part stays
            // with the instance on its (dead) host, where it still is.
            await context.TryAsync("destroy", instance.Uuid, () => context.Driver.DestroyAsync(instance.Uuid, destroyDisks: !diskWasHere, ct));
            await context.TryAsync("remove destination allocation", instance.Uuid,
                () => context.Placement.RemoveProviderFromAllocationAsync(instance.Uuid, context.NodeUuid, ct));
            await context.TryAsync("migration failed", instance.Uuid, () => context.SetMigrationStatusAsync(request.Migration.Uuid, MigrationStatus.Failed, ct));
            var current = await context.Conductor.GetInstanceAsync(instance.Uuid, ct);
            await context.TryAsync("error out", instance.Uuid, () => context.UpdateInstanceAsync(new InstanceUpdateRequest
            {
                Uuid = instance.Uuid,
                VmState = ex is InstanceFaultRollbackException ? originalVmState : VmState.Error,
                SetTaskState = true,
                TaskState = null,
                ExpectedTaskStates = [current.TaskState],
            }, ct));
        }
    }
}
