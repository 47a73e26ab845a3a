using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Rpc.Compute;
using Ferry.Core.Rpc.Conductor;
using Ferry.Core.Rpc.Scheduler;
using Ferry.ControlPlane.Placement;

namespace Ferry.ControlPlane.Conductor.Tasks;

/// <summary>
/// Cold migration and resize (nova/conductor/tasks/migrate.py): migration record `pre-migrating`,
/// source allocation handed to the migration, destination scheduled and claimed for the instance,
/// then prep_resize cast to the destination. Failure before the cast puts it all back.
/// </summary>
public sealed class MigrationTask(ConductorContext context)
{
    private const string EventName = "conductor_migrate_server";

    public async Task ExecuteAsync(MigrateServerRequest request, CancellationToken ct)
    {
        if (request.MigrationUuid is null && await context.TakeOverFromDeadConductorAsync(request.InstanceUuid, request.RequestId, EventName,
            [MigrationType.Migration, MigrationType.Resize], MigrationStatus.PreMigrating, ct))
        {
            return;
        }
        var instance = await context.Instances.GetAsync(request.InstanceUuid, ct);
        if (request.MigrationUuid is null && !context.IsMoveWanted(instance, TaskState.ResizePrep, EventName))
        {
            return;
        }
        var started = context.Time.GetTimestamp();
        var newFlavor = request.NewFlavorId is null
            ? instance.Flavor
            : await context.Catalog.FindFlavorAsync(request.NewFlavorId, ct) ?? throw new FlavorNotFoundException(request.NewFlavorId);
        var isResize = newFlavor.InternalId != instance.Flavor.InternalId;
        var migration = request.MigrationUuid is { } inFlight ? await context.Migrations.GetAsync(inFlight, ct) : await context.Migrations.CreateAsync(id => new Migration
        {
            Id = id,
            Uuid = Guid.NewGuid().ToString(),
            InstanceUuid = instance.Uuid,
            MigrationType = isResize ? MigrationType.Resize : MigrationType.Migration,
            Status = MigrationStatus.PreMigrating,
            SourceCompute = instance.Host,
            SourceNode = instance.Node,
            OldInstanceTypeId = instance.Flavor.InternalId,
            NewInstanceTypeId = newFlavor.InternalId,
            UserId = instance.UserId,
            ProjectId = instance.ProjectId,
        }, ct);
        await context.Actions.RecordEventAsync(instance.Uuid, request.RequestId, EventName, ConductorContext.ConductorHost, false, false, null, cancellationToken: ct);
        // A reschedule arrives with the source already held by the migration.
        var held = request.MigrationUuid is not null;
        try
        {
            if (request.Alternates is { } alternates)
            {
                await RescheduleAsync(instance, migration, newFlavor, alternates, request, ct);
                return;
            }
            held = await context.Placement.MoveAllocationsAsync(instance.Uuid, migration.Uuid, ct);
            var sameHostAllowed = isResize && context.Options.AllowResizeToSameHost;
            var spec = (await context.BuildRequestSpecAsync(instance, newFlavor, ct)) with
            {
                IgnoreHosts = sameHostAllowed ? [] : [instance.Host!],
                RequestedHost = request.Host,
                IsMove = true,
            };
            var selections = (await context.Scheduler.SelectDestinationsAsync(
                new SelectDestinationsRequest(spec, Math.Max(0, context.Options.MaxAttempts - 1)), ct)).Selections;
            var selection = selections[0];
            migration = await context.Migrations.UpdateAsync(new MigrationUpdateRequest
            {
                Uuid = migration.Uuid,
                DestCompute = selection.ServiceHost,
                DestNode = selection.Nodename,
            }, ct);
            await context.Instances.UpdateAsync(new InstanceUpdateRequest { Uuid = instance.Uuid, AvailabilityZone = selection.AvailabilityZone }, ct);
            await context.Actions.RecordEventAsync(instance.Uuid, request.RequestId, EventName, ConductorContext.ConductorHost, true, false, null, cancellationToken: ct);
            context.LogTaskDone(EventName, instance.Uuid, migration.Uuid, instance.Host, selection.ServiceHost, started);
            await context.Compute.PrepResizeAsync(selection.ServiceHost,
                new PrepResizeRequest(instance, migration, newFlavor, spec, [.. selections.Skip(1)], request.RequestId), ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            if (held)
            {
                await context.Placement.MoveAllocationsAsync(migration.Uuid, instance.Uuid, CancellationToken.None);
            }
            await context.SetMigrationStatusAsync(migration.Uuid, MigrationStatus.Error);
            var failure = ErrorRegistry.Is<NoValidHostException>(ex)
                ? new NoValidHostException($"No valid host found for {(isResize ? "resize" : "cold migrate")}")
                : ex;
            await context.RecordFailureAsync(instance.Uuid, request.RequestId, EventName, failure);
            await context.ResetTaskStateAsync(instance.Uuid, TaskState.ResizePrep);
        }
    }

    /// <summary>Claims the first alternate that still fits and sends prep_resize there with the rest.</summary>
    private async Task RescheduleAsync(Instance instance, Migration migration, Flavor newFlavor, List<Selection> alternates, MigrateServerRequest request, CancellationToken ct)
    {
        var started = context.Time.GetTimestamp();
        for (var i = 0; i < alternates.Count; i++)
        {
            var alternate = alternates[i];
            try
            {
                await context.Placement.PutAllocationsAsync(instance.Uuid, new Placement.AllocationRequest
                {
                    Allocations = new() { [alternate.ComputeNodeUuid] = ConductorContext.Resources(newFlavor, instance.VolumeBacked) },
                    ProjectId = instance.ProjectId,
                    UserId = instance.UserId,
                    ConsumerGeneration = (await context.Placement.GetAllocationsAsync(instance.Uuid, ct)).ConsumerGeneration,
                }, ct);
            }
            catch (PlacementConflictException)
            {
                continue;
            }
            migration = await context.Migrations.UpdateAsync(new MigrationUpdateRequest { Uuid = migration.Uuid, DestCompute = alternate.ServiceHost, DestNode = alternate.Nodename }, ct);
            await context.Actions.RecordEventAsync(instance.Uuid, request.RequestId, EventName, ConductorContext.ConductorHost, true, false, null, cancellationToken: ct);
            context.LogTaskDone(EventName, instance.Uuid, migration.Uuid, instance.Host, alternate.ServiceHost, started);
            var spec = (await context.BuildRequestSpecAsync(instance, newFlavor, ct)) with { IsMove = true };
            await context.Compute.PrepResizeAsync(alternate.ServiceHost,
                new PrepResizeRequest(instance, migration, newFlavor, spec, [.. alternates.Skip(i + 1)], request.RequestId), ct);
            return;
        }
        throw new MaxRetriesExceededException("Exhausted all hosts available for retrying build failures for instance " + instance.Uuid + ".");
    }
}
