using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Rpc.Conductor;

namespace Ferry.ControlPlane.Conductor;

/// <summary>
/// Nova's <c>_check_instance_build_time</c> (instance_build_timeout): a server still BUILD after the timeout goes
/// to ERROR. Nova runs it on each compute for its own instances, so a build cast to a host that is gone (a stale
/// host of an earlier run, a host that died after scheduling) would stay BUILD for good; here the conductor runs
/// it for builds no compute has acknowledged (no <c>compute_build_and_run_instance</c> event yet). The claim is
/// given back and the host cleared, as for any build that never ran, and a fault says why (Nova only logs it).
/// A compute that picks the build up later loses the task_state compare-and-swap and cleans up after itself.
/// </summary>
public sealed partial class BuildTimeoutCheck(ConductorContext context) : PeriodicCheck(context.Options, context.Time)
{
    public const string FaultMessage = "Instance build timed out. Set to error state.";

    private const string ComputeBuildEvent = "compute_build_and_run_instance";

    /// <summary>One pass; returns the uuids of the instances set to ERROR.</summary>
    public async Task<List<string>> RunAsync(CancellationToken cancellationToken)
    {
        var timeout = context.Options.InstanceBuildTimeout;
        var timedOut = new List<string>();
        if (timeout <= TimeSpan.Zero)
        {
            return timedOut;
        }
        // Only BUILD rows older than the timeout are read: the check runs every minute whatever the number of servers.
        foreach (var instance in await context.Instances.ListBuildingCreatedBeforeAsync(context.Time.GetUtcNow() - timeout, cancellationToken))
        {
            if (await IsAcknowledgedAsync(instance.Uuid, cancellationToken))
            {
                continue;
            }
            try
            {
                await context.Instances.UpdateAsync(new InstanceUpdateRequest
                {
                    Uuid = instance.Uuid,
                    VmState = VmState.Error,
                    SetTaskState = true,
                    TaskState = null,
                    PowerState = PowerState.NoState,
                    ClearHost = true,
                    ExpectedTaskStates = [TaskState.Scheduling, TaskState.Spawning],
                }, cancellationToken);
            }
            catch (FerryException)
            {
                // Deleted or moved on meanwhile: not stuck after all.
                continue;
            }
            await context.Placement.DeleteAllocationsAsync(instance.Uuid, CancellationToken.None);
            await context.Actions.AddFaultAsync(instance.Uuid, 500, FaultMessage, instance.Host ?? ConductorContext.ConductorHost, null, CancellationToken.None);
            Log.TimedOut(context.Logger<BuildTimeoutCheck>(), instance.Uuid, instance.Host ?? "no host", timeout);
            timedOut.Add(instance.Uuid);
        }
        return timedOut;
    }

    private async Task<bool> IsAcknowledgedAsync(string uuid, CancellationToken cancellationToken)
    {
        foreach (var action in (await context.Actions.ListActionsAsync(uuid, cancellationToken)).Where(a => a.Action == "create"))
        {
            if ((await context.Actions.ListEventsAsync(action.Id, cancellationToken)).Any(e => e.Event == ComputeBuildEvent))
            {
                return true;
            }
        }
        return false;
    }

    protected override Task RunOnceAsync(CancellationToken cancellationToken) => RunAsync(cancellationToken);

    protected override void LogFailure(Exception ex) => Log.CheckFailed(context.Logger<BuildTimeoutCheck>(), ex);
}
