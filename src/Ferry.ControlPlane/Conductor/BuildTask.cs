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
        var instance = context.Instances.Get(request.InstanceUuid);
        context.Actions.RecordEvent(instance.Uuid, request.RequestId, eventName, ConductorContext.ConductorHost, false, false, null);
        try
        {
            var reply = await context.Scheduler.SelectDestinationsAsync(new SelectDestinationsRequest(request.RequestSpec, 0), ct);
            var selection = reply.Selections[0];
            try
            {
                instance = context.Instances.Update(new InstanceUpdateRequest
                {
                    Uuid = instance.Uuid,
                    Host = selection.ServiceHost,
                    Node = selection.Nodename,
                    AvailabilityZone = selection.AvailabilityZone,
                    SetTaskState = true,
                    TaskState = TaskState.Spawning,
                    ExpectedTaskStates = [TaskState.Scheduling],
                });
            }
            catch
            {
                // Deleted while scheduling: give the claim back.
                context.Placement.DeleteAllocations(instance.Uuid);
                throw;
            }
            var image = context.Catalog.FindImage(instance.ImageRef) ?? throw new ImageNotFoundException(instance.ImageRef);
            context.Actions.RecordEvent(instance.Uuid, request.RequestId, eventName, ConductorContext.ConductorHost, true, false, null);
            await context.Compute.BuildAndRunInstanceAsync(selection.ServiceHost, new BuildAndRunInstanceRequest(instance, image, request.RequestId), ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            context.RecordFailure(instance.Uuid, request.RequestId, eventName, ex);
            context.ResetTaskState(instance.Uuid, TaskState.Scheduling, VmState.Error);
        }
    }
}
