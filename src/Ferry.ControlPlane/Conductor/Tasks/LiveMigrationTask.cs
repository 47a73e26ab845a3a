using Ferry.ControlPlane.Placement;
using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Rpc.Compute;
using Ferry.Core.Rpc.Conductor;
using Ferry.Core.Rpc.Scheduler;

namespace Ferry.ControlPlane.Conductor.Tasks;

/// <summary>
/// The conductor half of a live migration (nova/conductor/tasks/live_migrate.py): checks, hands the
/// source allocation to the migration, picks and claims a destination (retrying on pre-check failures),
/// runs both hosts' checks, then casts live_migration to the source. Any failure before that cast
/// puts everything back: allocations to the instance, task_state cleared, migration `error`.
/// The guest has not been touched yet, so vm_state is left as it was.
/// </summary>
public sealed class LiveMigrationTask(ConductorContext context)
{
    private const string EventName = "conductor_live_migrate_instance";

    public async Task ExecuteAsync(LiveMigrateInstanceRequest request, CancellationToken ct)
    {
        if (await context.TakeOverFromDeadConductorAsync(request.InstanceUuid, request.RequestId, EventName, [MigrationType.LiveMigration], MigrationStatus.Accepted, ct))
        {
            return;
        }
        var instance = await context.Instances.GetAsync(request.InstanceUuid, ct);
        if (!context.IsMoveWanted(instance, TaskState.Migrating, EventName))
        {
            return;
        }
        var started = context.Time.GetTimestamp();
        var migration = await context.Migrations.CreateAsync(id => new Migration
        {
            Id = id,
            Uuid = Guid.NewGuid().ToString(),
            InstanceUuid = instance.Uuid,
            MigrationType = MigrationType.LiveMigration,
            Status = MigrationStatus.Accepted,
            SourceCompute = instance.Host,
            SourceNode = instance.Node,
            DestCompute = request.Host,
            OldInstanceTypeId = instance.Flavor.InternalId,
            NewInstanceTypeId = instance.Flavor.InternalId,
            UserId = instance.UserId,
            ProjectId = instance.ProjectId,
        }, ct);
        await context.Actions.RecordEventAsync(instance.Uuid, request.RequestId, EventName, ConductorContext.ConductorHost, false, false, null, cancellationToken: ct);
        var held = false;
        try
        {
            if (instance.PowerState is not (PowerState.Running or PowerState.Paused))
            {
                throw InstanceInvalidStateException.For("os-migrateLive", instance.Uuid, "power_state", ((int)instance.PowerState).ToString());
            }
            if (!await context.IsComputeUpAsync(instance.Host, ct))
            {
                throw new ComputeServiceUnavailableException(instance.Host ?? "None");
            }
            held = await context.Placement.MoveAllocationsAsync(instance.Uuid, migration.Uuid, ct);

            var (selection, data) = request.Host is not null && request.Force
                ? await ForcedDestinationAsync(instance, migration, request, ct)
                : await FindDestinationAsync(instance, migration, request, ct);

            migration = await context.Migrations.UpdateAsync(new MigrationUpdateRequest
            {
                Uuid = migration.Uuid,
                SourceNode = instance.Node,
                DestCompute = selection.ServiceHost,
                DestNode = selection.Nodename,
            }, ct);
            await context.Instances.UpdateAsync(new InstanceUpdateRequest { Uuid = instance.Uuid, AvailabilityZone = selection.AvailabilityZone }, ct);
            await context.Actions.RecordEventAsync(instance.Uuid, request.RequestId, EventName, ConductorContext.ConductorHost, true, false, null, cancellationToken: ct);
            context.LogTaskDone(EventName, instance.Uuid, migration.Uuid, instance.Host, selection.ServiceHost, started);
            await context.Compute.LiveMigrationAsync(instance.Host!, new LiveMigrationRequest(instance, migration, selection.ServiceHost, data, request.RequestId), ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            if (held)
            {
                // Overwrites whatever the instance holds on a destination: one step back to the start.
                await context.Placement.MoveAllocationsAsync(migration.Uuid, instance.Uuid, CancellationToken.None);
            }
            await context.SetMigrationStatusAsync(migration.Uuid, MigrationStatus.Error);
            await context.RecordFailureAsync(instance.Uuid, request.RequestId, EventName, ex);
            await context.ResetTaskStateAsync(instance.Uuid, TaskState.Migrating);
        }
    }

    /// <summary>Scheduler-chosen (or scheduler-validated) destination, trying further hosts when one fails its checks.</summary>
    private async Task<(Selection, LiveMigrateData)> FindDestinationAsync(Instance instance, Migration migration, LiveMigrateInstanceRequest request, CancellationToken ct)
    {
        if (request.Host == instance.Host)
        {
            // The scheduler ignores the source, so this would only end in "No valid host was found": say why.
            throw new UnableToMigrateToSelfException(instance.Uuid, instance.Host!);
        }
        var attempted = new List<string> { instance.Host! };
        var lastReason = "";
        while (true)
        {
            var retries = context.Options.MigrateMaxRetries;
            if (retries != -1 && attempted.Count - 1 > retries)
            {
                throw new MaxRetriesExceededException(
                    $"Exceeded max scheduling retries {retries} for instance {instance.Uuid} during live migration. Last failure: {lastReason}");
            }
            var spec = (await context.BuildRequestSpecAsync(instance, instance.Flavor, ct)) with
            {
                IgnoreHosts = [.. attempted],
                RequestedHost = request.Host,
                IsMove = true,
            };
            var selection = (await context.Scheduler.SelectDestinationsAsync(new SelectDestinationsRequest(spec, 0), ct)).Selections[0];
            try
            {
                await CheckCompatibleWithSourceAsync(instance.Host!, selection.ServiceHost, ct);
                var data = await CallLiveMigrationChecksAsync(instance, migration, selection.ServiceHost, request.BlockMigration, ct);
                return (selection, data);
            }
            catch (FerryException ex) when (ex.HttpStatus == 400 || ErrorRegistry.Is<RpcTimeoutException>(ex))
            {
                // Nova skips a host on exception.Invalid / MigrationPreCheckError and gives its claim back.
                await context.Placement.RemoveProviderFromAllocationAsync(instance.Uuid, selection.ComputeNodeUuid, CancellationToken.None);
                attempted.Add(selection.ServiceHost);
                lastReason = ex.Message;
                if (request.Host is not null)
                {
                    throw;
                }
            }
        }
    }

    /// <summary>The operator forced a host: no scheduler, but every check the scheduler would have made.</summary>
    private async Task<(Selection, LiveMigrateData)> ForcedDestinationAsync(Instance instance, Migration migration, LiveMigrateInstanceRequest request, CancellationToken ct)
    {
        var dest = request.Host!;
        if (dest == instance.Host)
        {
            throw new UnableToMigrateToSelfException(instance.Uuid, dest);
        }
        var node = await context.Nodes.FindByHostAsync(dest, ct) ?? throw new ComputeHostNotFoundException(dest);
        if (!await context.IsComputeUpAsync(dest, ct))
        {
            throw new ComputeServiceUnavailableException(dest);
        }
        await CheckEnoughMemoryAsync(instance, node, ct);
        await CheckCompatibleWithSourceAsync(instance.Host!, dest, ct);
        var resources = ConductorContext.Resources(instance.Flavor, instance.VolumeBacked);
        try
        {
            await context.Placement.PutAllocationsAsync(instance.Uuid, new AllocationRequest
            {
                Allocations = new() { [node.Uuid] = resources },
                ProjectId = instance.ProjectId,
                UserId = instance.UserId,
                ConsumerGeneration = (await context.Placement.GetAllocationsAsync(instance.Uuid, ct)).ConsumerGeneration,
            }, ct);
        }
        catch (PlacementConflictException ex)
        {
            throw new NoValidHostException($"Unable to move instance {instance.Uuid} to host {dest}. There is not enough capacity on the host for the instance. {ex.Message}");
        }
        try
        {
            var data = await CallLiveMigrationChecksAsync(instance, migration, dest, request.BlockMigration, ct);
            return (new Selection { ServiceHost = dest, Nodename = node.HypervisorHostname, ComputeNodeUuid = node.Uuid, Resources = resources.ToDictionary(r => r.Key, r => (int)r.Value) }, data);
        }
        catch
        {
            await context.Placement.RemoveProviderFromAllocationAsync(instance.Uuid, node.Uuid, CancellationToken.None);
            throw;
        }
    }

    private async Task CheckEnoughMemoryAsync(Instance instance, ComputeNode node, CancellationToken ct)
    {
        var inventory = await context.Placement.GetInventoriesAsync(node.Uuid, ct);
        if (!inventory.TryGetValue(ResourceClasses.MemoryMb, out var memory))
        {
            throw new MigrationPreCheckException($"Unable to migrate {instance.Uuid} to {node.Host}: destination reports no memory");
        }
        var used = (await context.Placement.GetProviderUsagesAsync(node.Uuid, ct)).GetValueOrDefault(ResourceClasses.MemoryMb);
        var available = memory.Capacity - used;
        if (available <= instance.Flavor.MemoryMb)
        {
            throw new MigrationPreCheckException(
                $"Unable to migrate {instance.Uuid} to {node.Host}: Lack of memory(host:{available} <= instance:{instance.Flavor.MemoryMb})");
        }
    }

    /// <summary>Same hypervisor type, destination not older, destination CPU offers every source CPU feature.</summary>
    private async Task CheckCompatibleWithSourceAsync(string sourceHost, string destHost, CancellationToken ct)
    {
        var source = await context.Nodes.FindByHostAsync(sourceHost, ct) ?? throw new ComputeHostNotFoundException(sourceHost);
        var dest = await context.Nodes.FindByHostAsync(destHost, ct) ?? throw new ComputeHostNotFoundException(destHost);
        if (source.HypervisorType != dest.HypervisorType)
        {
            throw new InvalidHypervisorTypeException();
        }
        if (source.HypervisorVersion > dest.HypervisorVersion)
        {
            throw new DestinationHypervisorTooOldException();
        }
        var missing = source.CpuInfo.Features.Except(dest.CpuInfo.Features).ToList();
        if (source.CpuInfo.Arch != dest.CpuInfo.Arch || missing.Count > 0)
        {
            throw new InvalidCpuInfoException($"CPU doesn't have compatibility. Destination {destHost} lacks {string.Join(", ", missing.DefaultIfEmpty(source.CpuInfo.Arch))}");
        }
    }

    private async Task<LiveMigrateData> CallLiveMigrationChecksAsync(Instance instance, Migration migration, string dest, bool? blockMigration, CancellationToken ct)
    {
        try
        {
            return await context.Compute.CheckCanLiveMigrateDestinationAsync(dest,
                new CheckCanLiveMigrateDestinationRequest(instance, migration, blockMigration, instance.Host!, null), ct);
        }
        catch (RpcTimeoutException)
        {
            throw new MigrationPreCheckException($"Timeout while checking if we can live migrate to host: {dest}");
        }
    }
}
