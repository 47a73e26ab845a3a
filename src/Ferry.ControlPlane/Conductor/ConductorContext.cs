using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Ferry.Core.Domain;
using Ferry.Core.Rpc.Compute;
using Ferry.Core.Rpc.Conductor;
using Ferry.Core.Rpc.Scheduler;
using Microsoft.Extensions.Logging;

namespace Ferry.ControlPlane.Conductor;

/// <summary>What every conductor task works with; one instance per process.</summary>
public sealed partial class ConductorContext(
    InstanceStore instances,
    MigrationStore migrations,
    ServiceStore services,
    ComputeNodeStore nodes,
    CatalogStore catalog,
    ActionStore actions,
    ServerGroupStore groups,
    IPlacementService placement,
    SchedulerClient scheduler,
    ComputeClient compute,
    ControlPlaneOptions options,
    TimeProvider time,
    ILoggerFactory loggers)
{
    public InstanceStore Instances { get; } = instances;
    public MigrationStore Migrations { get; } = migrations;
    public ServiceStore Services { get; } = services;
    public ComputeNodeStore Nodes { get; } = nodes;
    public CatalogStore Catalog { get; } = catalog;
    public ActionStore Actions { get; } = actions;
    public ServerGroupStore Groups { get; } = groups;
    public IPlacementService Placement { get; } = placement;
    public SchedulerClient Scheduler { get; } = scheduler;
    public ComputeClient Compute { get; } = compute;
    public ControlPlaneOptions Options { get; } = options;
    public TimeProvider Time { get; } = time;
    public ILoggerFactory Loggers { get; } = loggers;
    private readonly ILogger _logger = loggers.CreateLogger("Ferry.ControlPlane.Conductor");

    /// <summary>The conductor's line for a task step that handed the move on to <paramref name="dest"/>.</summary>
    public void LogTaskDone(string step, string instanceUuid, string? migrationUuid, string? source, string? dest, long startedTimestamp) =>
        Log.TaskDone(_logger, step, instanceUuid, migrationUuid ?? "-", source ?? "-", dest ?? "-", (long)Time.GetElapsedTime(startedTimestamp).TotalMilliseconds);

    public const string ConductorHost = "conductor";

    public async Task<bool> IsComputeUpAsync(string? host, CancellationToken cancellationToken)
    {
        if (host is null)
        {
            return false;
        }
        var service = await Services.FindAsync(host, "nova-compute", cancellationToken);
        return service is not null && service.IsUp(Time.GetUtcNow(), Options.ServiceDownTime);
    }

    /// <summary>Records a fault and marks the action event failed: how a user learns why a cast flow failed.</summary>
    /// <remarks>Runs to its end whatever became of the caller: the failure is what the user will read.</remarks>
    public async Task RecordFailureAsync(string instanceUuid, string? requestId, string eventName, Exception ex)
    {
        var code = ex is Core.Errors.FerryException f ? f.HttpStatus : 500;
        Log.TaskFailed(_logger, code == 500 ? ex : null, eventName, instanceUuid, ex.Message);
        await Actions.AddFaultAsync(instanceUuid, code, ex.Message, ConductorHost, code == 500 ? Core.Errors.FaultDetails.Describe(ex) : null, CancellationToken.None);
        await Actions.RecordEventAsync(instanceUuid, requestId, eventName, ConductorHost, finished: true, failed: true, ex.Message, Core.Errors.FaultDetails.Describe(ex),
            cancellationToken: CancellationToken.None);
    }

    /// <summary>Clears task_state (only if it is still <paramref name="expected"/>), optionally setting vm_state.</summary>
    /// <remarks>The undo of a failed move: it runs to its end whatever became of the caller.</remarks>
    public async Task ResetTaskStateAsync(string instanceUuid, TaskState expected, VmState? vmState = null)
    {
        try
        {
            await Instances.UpdateAsync(new InstanceUpdateRequest
            {
                Uuid = instanceUuid,
                SetTaskState = true,
                TaskState = null,
                VmState = vmState,
                Progress = 0,
                ExpectedTaskStates = [expected],
            }, CancellationToken.None);
        }
        catch (Core.Errors.UnexpectedTaskStateException)
        {
            // Someone else already moved the instance on; theirs is the newer truth.
        }
    }

    /// <summary>
    /// A move task delivered again because the conductor running it died before acknowledging it (RabbitMQ hands an
    /// unacknowledged message to another replica, or to the restarted one). Nova's conductor leaves such a move stuck
    /// in its first status with the migration holding the source; here the new delivery decides. If the earlier run
    /// already handed the move to a compute host (its conductor event finished just before that cast), the move is
    /// going on and this delivery does nothing (true). Otherwise the earlier run's migration, still in
    /// <paramref name="firstStatus"/>, ends `error` and gives its allocations back to the instance (overwriting a
    /// destination the earlier run claimed), and this delivery runs the task from the start (false).
    /// </summary>
    public async Task<bool> TakeOverFromDeadConductorAsync(string instanceUuid, string? requestId, string eventName, IReadOnlyCollection<string> migrationTypes,
        string firstStatus, CancellationToken cancellationToken)
    {
        var earlier = (await Migrations.ListAsync(new MigrationFilter(InstanceUuid: instanceUuid, Status: firstStatus), cancellationToken))
            .Where(m => migrationTypes.Contains(m.MigrationType)).ToList();
        if (earlier.Count == 0)
        {
            return false;
        }
        if (requestId is not null && await HandedOffAsync(instanceUuid, requestId, eventName, cancellationToken))
        {
            return true;
        }
        foreach (var migration in earlier)
        {
            try
            {
                await Migrations.UpdateAsync(new MigrationUpdateRequest { Uuid = migration.Uuid, Status = MigrationStatus.Error, ExpectedStatuses = [firstStatus] },
                    cancellationToken);
            }
            catch (Core.Errors.FerryException)
            {
                // Moved on meanwhile: a compute host has it.
                continue;
            }
            await Placement.MoveAllocationsAsync(migration.Uuid, instanceUuid, cancellationToken);
            Log.TakenOver(_logger, eventName, instanceUuid, migration.Uuid);
        }
        return false;
    }

    /// <summary>
    /// Whether a move task that just arrived is still wanted: the API set <paramref name="expected"/> before casting it,
    /// so a server in any other task_state had its move ended (by <see cref="LostMoveCheck"/> when the cast came too late,
    /// or by a finished earlier delivery) and running it now would move a server no request is waiting on.
    /// </summary>
    public bool IsMoveWanted(Instance instance, TaskState expected, string step)
    {
        if (instance.TaskState == expected)
        {
            return true;
        }
        Log.MoveDropped(_logger, step, instance.Uuid, expected.ToNova(), instance.TaskState.ToNova() ?? "None");
        return false;
    }

    private async Task<bool> HandedOffAsync(string instanceUuid, string requestId, string eventName, CancellationToken cancellationToken)
    {
        foreach (var action in (await Actions.ListActionsAsync(instanceUuid, cancellationToken)).Where(a => a.RequestId == requestId))
        {
            if ((await Actions.ListEventsAsync(action.Id, cancellationToken)).Any(e => e.Event == eventName && e.FinishTime is not null))
            {
                return true;
            }
        }
        return false;
    }

    /// <remarks>Sets the final status of a failed move: it runs to its end whatever became of the caller.</remarks>
    public Task SetMigrationStatusAsync(string migrationUuid, string status) =>
        Migrations.UpdateAsync(new MigrationUpdateRequest { Uuid = migrationUuid, Status = status }, CancellationToken.None);

    public async Task<RequestSpec> BuildRequestSpecAsync(Instance instance, Flavor flavor, CancellationToken cancellationToken)
    {
        // A move schedules by the image the server booted, as kept at boot (Nova's ImageMeta.from_instance), not by
        // what the image says now; a server from before Ferry kept them asks the catalog.
        var imageProperties = ImageSystemMetadata.Properties(instance.SystemMetadata)
            ?? (await Catalog.FindImageAsync(instance.ImageRef, cancellationToken))?.Properties ?? [];
        ServerGroupPolicy? group = null;
        if (instance.ServerGroupUuid is { } groupUuid && await Groups.FindAsync(groupUuid, cancellationToken) is { } row)
        {
            var memberHosts = new List<string>();
            foreach (var member in row.Members.Where(m => m != instance.Uuid))
            {
                if ((await Instances.FindAsync(member, cancellationToken))?.Host is { } memberHost)
                {
                    memberHosts.Add(memberHost);
                }
            }
            group = new ServerGroupPolicy { Uuid = row.Uuid, Policy = row.Policy, MaxServerPerHost = row.MaxServerPerHost ?? 1, MemberHosts = memberHosts };
        }
        return new RequestSpec
        {
            InstanceUuid = instance.Uuid,
            ProjectId = instance.ProjectId,
            UserId = instance.UserId,
            Flavor = flavor,
            ImageProperties = imageProperties,
            IsBfv = instance.VolumeBacked,
            SchedulerHints = instance.SchedulerHints,
            HintedHosts = await Instances.HostsOfHintedInstancesAsync(instance.SchedulerHints, cancellationToken),
            Group = group,
        };
    }

    /// <summary>The amounts an instance of a flavor claims in placement (no root disk for one booted from a volume).</summary>
    public static Dictionary<string, long> Resources(Flavor flavor, bool volumeBacked) => new()
    {
        [ResourceClasses.Vcpu] = flavor.Vcpus,
        [ResourceClasses.MemoryMb] = flavor.MemoryMb,
        [ResourceClasses.DiskGb] = flavor.LocalDiskGb(volumeBacked),
    };

    public ILogger Logger<T>() => Loggers.CreateLogger<T>();
}
