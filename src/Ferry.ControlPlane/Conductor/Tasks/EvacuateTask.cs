using Ferry.ControlPlane.Placement;
using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Rpc.Compute;
using Ferry.Core.Rpc.Conductor;
using Ferry.Core.Rpc.Scheduler;

namespace Ferry.ControlPlane.Conductor.Tasks;

/// <summary>
/// Evacuation (Nova's rebuild_instance with recreate): the source host is down, so the instance
/// keeps its source allocation (no migration consumer) and also claims the destination; the source
/// part is released when the dead host comes back and cleans up.
/// </summary>
public sealed class EvacuateTask(ConductorContext context)
{
    private const string EventName = "rebuild_server";

    public async Task ExecuteAsync(EvacuateRequest request, CancellationToken ct)
    {
        var instance = await context.Instances.GetAsync(request.InstanceUuid, ct);
        var started = context.Time.GetTimestamp();
        var migration = await context.Migrations.GetAsync(request.MigrationUuid, ct);
        if (migration.Status != MigrationStatus.Accepted || !context.IsMoveWanted(instance, TaskState.Rebuilding, EventName))
        {
            return;
        }
        await context.Actions.RecordEventAsync(instance.Uuid, request.RequestId, EventName, ConductorContext.ConductorHost, false, false, null, cancellationToken: ct);
        Selection? claimed = null;
        try
        {
            var selection = claimed = request.Host is not null && request.Force
                ? await ClaimForcedHostAsync(instance, request.Host, ct)
                : (await context.Scheduler.SelectDestinationsAsync(new SelectDestinationsRequest(
                    (await context.BuildRequestSpecAsync(instance, instance.Flavor, ct)) with
                    {
                        IgnoreHosts = [instance.Host!],
                        RequestedHost = request.Host,
                        IsMove = true,
                    }, 0), ct)).Selections[0];
            migration = await context.Migrations.UpdateAsync(new MigrationUpdateRequest
            {
                Uuid = migration.Uuid,
                DestCompute = selection.ServiceHost,
                DestNode = selection.Nodename,
            }, ct);
            // A server booted from a volume keeps its root volume: there is no image to rebuild from (Nova's image_ref "").
            var image = instance.ImageRef.Length == 0
                ? null
                : await context.Catalog.FindImageAsync(instance.ImageRef, ct) ?? throw new ImageNotFoundException(instance.ImageRef);
            await context.Actions.RecordEventAsync(instance.Uuid, request.RequestId, EventName, ConductorContext.ConductorHost, true, false, null, cancellationToken: ct);
            context.LogTaskDone(EventName, instance.Uuid, migration.Uuid, instance.Host, selection.ServiceHost, started);
            await context.Compute.RebuildInstanceAsync(selection.ServiceHost,
                new RebuildInstanceRequest(instance, migration, image, request.OnSharedStorage, selection, request.RequestId), ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            if (claimed is not null)
            {
                await context.Placement.RemoveProviderFromAllocationAsync(instance.Uuid, claimed.ComputeNodeUuid, CancellationToken.None);
            }
            await context.SetMigrationStatusAsync(migration.Uuid, MigrationStatus.Error);
            await context.RecordFailureAsync(instance.Uuid, request.RequestId, EventName, ex);
            // The guest's host is down and nothing started elsewhere: Nova reports that as ERROR.
            await context.ResetTaskStateAsync(instance.Uuid, TaskState.Rebuilding, VmState.Error);
        }
    }

    private async Task<Selection> ClaimForcedHostAsync(Instance instance, string host, CancellationToken ct)
    {
        var node = await context.Nodes.FindByHostAsync(host, ct) ?? throw new ComputeHostNotFoundException(host);
        var current = await context.Placement.GetAllocationsAsync(instance.Uuid, ct);
        var resources = ConductorContext.Resources(instance.Flavor, instance.VolumeBacked);
        var allocations = current.Allocations.ToDictionary(a => a.Key, a => new Dictionary<string, long>(a.Value));
        allocations[node.Uuid] = resources;
        try
        {
            await context.Placement.PutAllocationsAsync(instance.Uuid, new AllocationRequest
            {
                Allocations = allocations,
                ProjectId = instance.ProjectId,
                UserId = instance.UserId,
                ConsumerGeneration = current.ConsumerGeneration,
            }, ct);
        }
        catch (PlacementConflictException ex)
        {
            throw new NoValidHostException($"Unable to move instance {instance.Uuid} to host {host}. {ex.Message}");
        }
        return new Selection
        {
            ServiceHost = host,
            Nodename = node.HypervisorHostname,
            ComputeNodeUuid = node.Uuid,
            Resources = resources.ToDictionary(r => r.Key, r => (int)r.Value),
        };
    }
}
