using Ferry.Core.Domain;
using Ferry.Core.Rpc.Compute;
using Ferry.Core.Rpc.Conductor;
using Ferry.Virt;

namespace Ferry.Compute;

/// <summary>Boot, start, stop and delete of guests on this host.</summary>
public sealed class InstanceLifecycle(ComputeContext context)
{
    public async Task BuildAndRunAsync(BuildAndRunInstanceRequest request, CancellationToken ct)
    {
        var instance = request.Instance;
        var volumes = new List<BlockDeviceMapping>(instance.BlockDevices);
        try
        {
            await context.RunEventAsync(instance, request.RequestId, "compute_build_and_run_instance", async () =>
            {
                // Ports first, bound to this host (Nova's _build_networks_for_instance), so the guest starts with its NICs;
                // then its volumes, connected from here (_prep_block_device), so it starts with its disks.
                // Nova's configdrive.required_by: asked for, forced on this host, or demanded by the image (img_config_drive).
                if (context.Options.ForceConfigDrive || ImageSystemMetadata.Property(instance.SystemMetadata, ImageSystemMetadata.ConfigDriveProperty) == "mandatory")
                {
                    instance = instance with { ConfigDrive = true };
                }
                var vifs = await context.Networks.AllocateAsync(instance, ct);
                await context.Volumes.ConnectForBuildAsync(instance, volumes, ct);
                instance = instance with { NetworkInfo = vifs, BlockDevices = [.. volumes] };
                await context.Driver.SpawnAsync(ComputeContext.GuestFor(instance), reuseDisks: false, ct);
                await context.Volumes.CompleteAsync(volumes, ct);
                await context.UpdateInstanceAsync(new InstanceUpdateRequest
                {
                    Uuid = instance.Uuid,
                    NetworkInfo = vifs,
                    BlockDevices = [.. volumes],
                    VmState = VmState.Active,
                    SetTaskState = true,
                    TaskState = null,
                    PowerState = context.PowerStateOf(instance.Uuid),
                    LaunchedAt = context.Time.GetUtcNow(),
                    ConfigDrive = instance.ConfigDrive ? true : null,
                    ExpectedTaskStates = [TaskState.Spawning],
                }, ct);
            }, ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Nothing runs for a failed build: free its ports, volumes and claim and say so (Nova's _cleanup_volumes: the
            // attachments go, the delete_on_termination volumes too, the others stay available and off the server).
            await context.TryAsync("destroy", instance.Uuid, () => context.Driver.DestroyAsync(instance.Uuid, destroyDisks: true, ct));
            await context.TryAsync("release ports", instance.Uuid, () => context.Networks.DeallocateAsync(instance, CancellationToken.None));
            await context.TryAsync("release volumes", instance.Uuid, () => context.Volumes.ReleaseAsync(instance with { BlockDevices = [.. volumes] }, CancellationToken.None));
            await context.TryAsync("delete allocations", instance.Uuid, () => context.Placement.DeleteAllocationsAsync(instance.Uuid, ct));
            await context.TryAsync("error out", instance.Uuid, () => context.UpdateInstanceAsync(new InstanceUpdateRequest
            {
                Uuid = instance.Uuid,
                VmState = VmState.Error,
                SetTaskState = true,
                TaskState = null,
                PowerState = PowerState.NoState,
                BlockDevices = [],
                ClearHost = true,
            }, ct));
        }
    }

    public Task StartAsync(InstanceRequest request, CancellationToken ct) =>
        ChangePowerAsync(request, "compute_start_instance", TaskState.PoweringOn, VmState.Active,
            uuid => context.Driver.PowerOnAsync(uuid, ct), ct);

    public Task StopAsync(InstanceRequest request, CancellationToken ct) =>
        ChangePowerAsync(request, "compute_stop_instance", TaskState.PoweringOff, VmState.Stopped,
            uuid => context.Driver.PowerOffAsync(uuid, ct), ct);

    public Task RebootAsync(RebootInstanceRequest request, CancellationToken ct) =>
        ChangePowerAsync(new InstanceRequest(request.Instance, request.RequestId), "compute_reboot_instance",
            request.Hard ? TaskState.RebootingHard : TaskState.Rebooting, VmState.Active,
            uuid => context.Driver.RebootAsync(uuid, request.Hard, ct), ct);

    /// <summary>Nova's pause_instance: the guest's vCPUs stop, it stays in memory.</summary>
    public Task PauseAsync(InstanceRequest request, CancellationToken ct) =>
        ChangePowerAsync(request, "compute_pause_instance", TaskState.Pausing, VmState.Paused,
            uuid => context.Driver.PauseAsync(uuid, ct), ct);

    public Task UnpauseAsync(InstanceRequest request, CancellationToken ct) =>
        ChangePowerAsync(request, "compute_unpause_instance", TaskState.Unpausing, VmState.Active,
            uuid => context.Driver.UnpauseAsync(uuid, ct), ct);

    /// <summary>Nova's suspend_instance: the guest's state is saved on this host and its process ends.</summary>
    public Task SuspendAsync(InstanceRequest request, CancellationToken ct) =>
        ChangePowerAsync(request, "compute_suspend_instance", TaskState.Suspending, VmState.Suspended,
            uuid => context.Driver.SuspendAsync(uuid, ct), ct);

    public Task ResumeAsync(InstanceRequest request, CancellationToken ct) =>
        ChangePowerAsync(request, "compute_resume_instance", TaskState.Resuming, VmState.Active,
            uuid => context.Driver.ResumeAsync(uuid, ct), ct);

    private async Task ChangePowerAsync(InstanceRequest request, string eventName, TaskState during, VmState after, Func<string, Task> change, CancellationToken ct)
    {
        var instance = request.Instance;
        try
        {
            await context.RunEventAsync(instance, request.RequestId, eventName, async () =>
            {
                await change(instance.Uuid);
                await context.UpdateInstanceAsync(new InstanceUpdateRequest
                {
                    Uuid = instance.Uuid,
                    VmState = after,
                    SetTaskState = true,
                    TaskState = null,
                    PowerState = context.PowerStateOf(instance.Uuid),
                    ExpectedTaskStates = [during],
                }, ct);
            }, ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            await context.TryAsync("reset task state", instance.Uuid, () => context.UpdateInstanceAsync(new InstanceUpdateRequest
            {
                Uuid = instance.Uuid,
                SetTaskState = true,
                TaskState = null,
                PowerState = context.PowerStateOf(instance.Uuid),
                ExpectedTaskStates = [during],
            }, ct));
        }
    }

    /// <summary>The guest's serial console, tailed here so only the lines asked for cross the wire.</summary>
    public async Task<ConsoleOutputReply> GetConsoleOutputAsync(ConsoleOutputRequest request, CancellationToken ct)
    {
        var output = await context.Driver.GetConsoleOutputAsync(request.Instance.Uuid, ct);
        return new ConsoleOutputReply(ConsoleLog.Tail(output, request.TailLength));
    }

    /// <summary>Deletes the guest, its allocations (and a pending resize's source hold), then the row.</summary>
    public async Task TerminateAsync(InstanceRequest request, CancellationToken ct)
    {
        var instance = request.Instance;
        await context.RunEventAsync(instance, request.RequestId, "compute_terminate_instance", async () =>
        {
            await context.Driver.DestroyAsync(instance.Uuid, destroyDisks: true, ct);
            // A copy kept here for a resize that could not be reverted goes too.
            await context.Driver.ConfirmMigrationAsync(ComputeContext.GuestFor(instance), ct);
            await context.Networks.DeallocateAsync(instance, ct);
            await context.Volumes.ReleaseAsync(instance, ct);
            await context.Placement.DeleteAllocationsAsync(instance.Uuid, ct);
            await context.UpdateInstanceAsync(new InstanceUpdateRequest
            {
                Uuid = instance.Uuid,
                Deleted = true,
                SetTaskState = true,
                TaskState = null,
                PowerState = PowerState.NoState,
            }, ct);
        }, ct);
    }
}
