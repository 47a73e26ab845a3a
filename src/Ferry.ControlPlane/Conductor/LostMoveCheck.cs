using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Rpc.Conductor;

namespace Ferry.ControlPlane.Conductor;

/// <summary>
/// A move an API process accepted but never handed to a conductor: the API set the task_state (and started the action)
/// and died before its cast reached the bus. No one would ever run or end that move, so after
/// <see cref="ControlPlaneOptions.MoveStartTimeout"/> with no conductor event on its action the task_state is taken back
/// (compare-and-swap), an evacuation's migration record ends in error, and the action gets the conductor's event as
/// failed with the reason. A cast that was only late and arrives afterwards finds the task_state gone and is dropped
/// (<see cref="ConductorContext.IsMoveWanted"/>). Nova has no such check: there such a server stays in its task_state until
/// an admin resets it.
/// </summary>
public sealed partial class LostMoveCheck(ConductorContext context) : PeriodicCheck(context.Options, context.Time)
{
    public const string Details = "No conductor took this request before the move start timeout (the API service that accepted it may have stopped): the move never started.";

    /// <summary>What the API sets for each move, the actions it starts, and the event the conductor records first.</summary>
    private static readonly Dictionary<TaskState, (string[] Actions, string ConductorEvent)> s_moves = new()
    {
        [TaskState.Migrating] = (["live-migration"], "conductor_live_migrate_instance"),
        [TaskState.ResizePrep] = (["migrate", "resize"], "conductor_migrate_server"),
        [TaskState.Rebuilding] = (["evacuate"], "rebuild_server"),
    };

    /// <summary>One pass; returns the uuids of the instances whose lost move was ended.</summary>
    public async Task<List<string>> RunAsync(CancellationToken cancellationToken)
    {
        var ended = new List<string>();
        var timeout = context.Options.MoveStartTimeout;
        if (timeout <= TimeSpan.Zero)
        {
            return ended;
        }
        var before = context.Time.GetUtcNow() - timeout;
        foreach (var instance in await context.Instances.ListInTaskStatesAsync(s_moves.Keys, cancellationToken))
        {
            var (actionNames, conductorEvent) = s_moves[instance.TaskState!.Value];
            var action = (await context.Actions.ListActionsAsync(instance.Uuid, cancellationToken)).Where(a => actionNames.Contains(a.Action)).MaxBy(a => a.Id);
            // No action yet: the API died between the task_state and the action; the task_state's write is the start.
            var startedAt = action is null ? instance.UpdatedAt : DateTimeOffset.Parse(action.StartTime, System.Globalization.CultureInfo.InvariantCulture);
            if (startedAt > before || (action is not null && (await context.Actions.ListEventsAsync(action.Id, cancellationToken)).Any(e => e.Event == conductorEvent)))
            {
                continue;
            }
            try
            {
                await context.Instances.UpdateAsync(new InstanceUpdateRequest
                {
                    Uuid = instance.Uuid, SetTaskState = true, TaskState = null, ExpectedTaskStates = [instance.TaskState],
                }, cancellationToken);
            }
            catch (FerryException)
            {
                continue; // a conductor took it meanwhile, or the server was deleted
            }
            if (instance.TaskState == TaskState.Rebuilding)
            {
                foreach (var migration in await context.Migrations.ListAsync(new Persistence.MigrationFilter(InstanceUuid: instance.Uuid, Status: MigrationStatus.Accepted, MigrationType: MigrationType.Evacuation), cancellationToken))
                {
                    try
                    {
                        await context.Migrations.UpdateAsync(new MigrationUpdateRequest { Uuid = migration.Uuid, Status = MigrationStatus.Error, ExpectedStatuses = [MigrationStatus.Accepted] }, cancellationToken);
                    }
                    catch (FerryException)
                    {
                        // A conductor took it after all.
                    }
                }
            }
            await context.Actions.RecordEventAsync(instance.Uuid, action?.RequestId, conductorEvent, ConductorContext.ConductorHost, true, true, Details,
                cancellationToken: CancellationToken.None);
            Log.Ended(context.Logger<LostMoveCheck>(), instance.Uuid, instance.TaskState.Value.ToNova()!, action?.RequestId ?? "no action", timeout);
            ended.Add(instance.Uuid);
        }
        return ended;
    }

    protected override Task RunOnceAsync(CancellationToken cancellationToken) => RunAsync(cancellationToken);

    protected override void LogFailure(Exception ex) => Log.CheckFailed(context.Logger<LostMoveCheck>(), ex);
}
