using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Rpc.Compute;
using Ferry.Core.Rpc.Conductor;
using Ferry.Core.Rpc.Scheduler;

namespace Ferry.ControlPlane.Conductor;

/// <summary>Boot: schedule, claim, hand the instance to its host (Nova's schedule_and_build_instances).</summary>
public sealed class BuildTask(ConductorContext context)
{
    public async Task ExecuteAsync(BuildInstanceRequest request, CancellationToken ct)
    {
        const string eventName = "conductor_schedule_and_build_instances";
        var instance = await context.Instances.GetAsync(request.InstanceUuid, ct);
        var started = context.Time.GetTimestamp();
        await context.Actions.RecordEventAsync(instance.Uuid, request.RequestId, eventName, ConductorContext.ConductorHost, false, false, null, cancellationToken: ct);
        var claimed = false;
        try
        {
            var image = string.IsNullOrEmpty(instance.ImageRef)
                ? null
                : await context.Catalog.FindImageAsync(instance.ImageRef, ct) ?? throw new ImageNotFoundException(instance.ImageRef);
            var reply = await context.Scheduler.SelectDestinationsAsync(new SelectDestinationsRequest(request.RequestSpec, 0), ct);
            claimed = true;
            var selection = reply.Selections[0];
            instance = await context.Instances.UpdateAsync(new InstanceUpdateRequest
            {
                Uuid = instance.Uuid,
                Host = selection.ServiceHost,
                Node = selection.Nodename,
                AvailabilityZone = selection.AvailabilityZone,
                SetTaskState = true,
                TaskState = TaskState.Spawning,
                ExpectedTaskStates = [TaskState.Scheduling],
            }, ct);
            await context.Actions.RecordEventAsync(instance.Uuid, request.RequestId, eventName, ConductorContext.ConductorHost, true, false, null, cancellationToken: ct);
            context.LogTaskDone(eventName, instance.Uuid, null, null, selection.ServiceHost, started);
            await context.Compute.BuildAndRunInstanceAsync(selection.ServiceHost, new BuildAndRunInstanceRequest(instance, image, request.RequestId), ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Nothing was cast to a host: give the claim back and say why. If the instance was
            // deleted meanwhile, there is nothing left to mark.
            if (claimed)
            {
                await context.Placement.DeleteAllocationsAsync(instance.Uuid, CancellationToken.None);
            }
            await context.RecordFailureAsync(instance.Uuid, request.RequestId, eventName, ex);
            try
            {
                await context.Instances.UpdateAsync(new InstanceUpdateRequest
                {
                    Uuid = instance.Uuid,
                    VmState = VmState.Error,
                    SetTaskState = true,
                    TaskState = null,
                    ClearHost = true,
                    ExpectedTaskStates = [TaskState.Scheduling, TaskState.Spawning],
                }, CancellationToken.None); // the failure is recorded whatever became of the caller
            }
            catch (FerryException)
            {
            }
        }
    }
}
