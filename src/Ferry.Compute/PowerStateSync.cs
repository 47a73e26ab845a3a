using Ferry.Core.Domain;
using Ferry.Core.Rpc.Conductor;
using Microsoft.Extensions.Logging;

namespace Ferry.Compute;

/// <summary>
/// Nova's _sync_power_states: an ACTIVE instance whose guest is found shut down or crashed (it died with a
/// host, QEMU exited by itself, or the guest panicked) becomes SHUTOFF, so the API never shows a server running that
/// is not. A crashed guest's process still holds its memory and CPUs: it is powered off first, as Nova's stop does.
/// Instances with a task in flight belong to that task and are left alone.
/// </summary>
public sealed partial class PowerStateSync(ComputeContext context)
{
    public Task RunAsync(CancellationToken ct) => RunAsync(null, ct);

    /// <param name="instances">The host's instances as just read (start-up recovery's list); null: read them now.</param>
    public async Task RunAsync(IReadOnlyList<Instance>? instances, CancellationToken ct)
    {
        foreach (var instance in instances ?? await context.Conductor.GetInstancesByHostAsync(context.Host, ct))
        {
            await SyncAsync(instance, ct);
        }
    }

    /// <summary>
    /// One instance's sync, when the driver reports its guest stopped by itself (Nova's handle_lifecycle_event): read
    /// now, since a move may have taken it to another host or a task may own it since the guest stopped.
    /// </summary>
    public async Task RunForAsync(string instanceUuid, CancellationToken ct)
    {
        Instance instance;
        try
        {
            instance = await context.Conductor.GetInstanceAsync(instanceUuid, ct);
        }
        catch (Core.Errors.NotFoundException)
        {
            return; // deleted meanwhile
        }
        if (instance.Host == context.Host)
        {
            await SyncAsync(instance, ct);
        }
    }

    private async Task SyncAsync(Instance instance, CancellationToken ct)
    {
        if (instance.VmState != VmState.Active || instance.TaskState is not null
            || context.Driver.GetGuest(instance.Uuid) is not { PowerState: Virt.GuestPowerState.Shutdown or Virt.GuestPowerState.Crashed } guest)
        {
            return;
        }
        try
        {
            var power = guest.PowerState;
            if (power == Virt.GuestPowerState.Crashed)
            {
                await context.Driver.PowerOffAsync(instance.Uuid, ct);
                power = Virt.GuestPowerState.Shutdown;
            }
            await context.UpdateInstanceAsync(new InstanceUpdateRequest
            {
                Uuid = instance.Uuid,
                VmState = VmState.Stopped,
                PowerState = ComputeContext.ToPowerState(power),
                ExpectedTaskStates = [null],
            }, ct);
            Log.Stopped(context.Logger, instance.Uuid, context.Host, guest.PowerState);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.SyncFailed(context.Logger, ex, instance.Uuid);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 230, Level = LogLevel.Warning, Message = "Instance {InstanceId} is active but its guest on {Host} is {PowerState}: now stopped")]
        public static partial void Stopped(ILogger logger, string instanceId, string host, Virt.GuestPowerState powerState);

        [LoggerMessage(EventId = 231, Level = LogLevel.Error, Message = "Could not sync the power state of instance {InstanceId}")]
        public static partial void SyncFailed(ILogger logger, Exception ex, string instanceId);
    }
}
