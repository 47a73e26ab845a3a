using System.Collections.Concurrent;
using Ferry.Compute.Observability;
using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Rpc.Compute;
using Ferry.Core.Rpc.Conductor;
using Ferry.Virt;

namespace Ferry.Compute;

/// <summary>
/// The source's part of a live migration (KubeVirt's migration-source; Nova's _do_live_migration,
/// _post_live_migration and _rollback_live_migration). Outgoing migrations beyond the host's limit
/// wait as `queued`. The guest is never running in two places: the source copy stays paused after
/// the copy completes until the destination has taken over, and is resumed only if the destination
/// provably dropped its copy.
/// </summary>
public sealed partial class LiveMigrationSource(ComputeContext context)
{
    private const int SourceCleanupAttempts = 3;
    private const string EventName = "compute_live_migration";

    private readonly SemaphoreSlim? _slots = context.Options.MaxConcurrentLiveMigrations > 0
        ? new SemaphoreSlim(context.Options.MaxConcurrentLiveMigrations)
        : null;
    private readonly ConcurrentDictionary<string, Outgoing> _outgoing = new();

    /// <summary>Source-side answers for the destination's check (a nested call).</summary>
    public Task<LiveMigrateData> CheckCanLiveMigrateSourceAsync(CheckCanLiveMigrateSourceRequest request, CancellationToken ct) =>
        context.RunEventAsync(request.Instance, request.RequestId, "compute_check_can_live_migrate_source",
            () => Task.FromResult(LiveMigrationChecks.Decide(context, request.Instance, request.Data)), ct);

    public async Task LiveMigrationAsync(LiveMigrationRequest request, CancellationToken ct)
    {
        // The first step is a compare-and-swap: a cast RabbitMQ delivers again to this agent after it was killed mid-move
        // finds the move already ended by start-up recovery (or a conductor that took it over), and is dropped.
        try
        {
            await context.Conductor.UpdateMigrationAsync(new MigrationUpdateRequest
            {
                Uuid = request.Migration.Uuid,
                Status = MigrationStatus.Queued,
                ExpectedStatuses = [MigrationStatus.Accepted],
            }, ct);
        }
        catch (InvalidMigrationStateException)
        {
            var now = await context.Conductor.GetMigrationAsync(request.Migration.Uuid, ct);
            context.LogStaleRequest(EventName, request.Instance.Uuid, request.Migration.Uuid, $"migration {now.Status}");
            return;
        }
        var outgoing = new Outgoing(request);
        _outgoing[request.Instance.Uuid] = outgoing;
        try
        {
            await context.RunEventAsync(request.Instance, request.Migration, request.RequestId, EventName, () => MigrateAsync(outgoing, ct), ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Already recorded as a fault; the flow below has put the world back.
        }
        finally
        {
            _outgoing.TryRemove(new KeyValuePair<string, Outgoing>(request.Instance.Uuid, outgoing));
        }
    }

    /// <summary>
    /// Start-up, under a post-copy migration the hypervisor carried on while the agent was down. The guest already runs
    /// on the destination and part of its memory may be only here, so nothing is rolled back: the driver's monitor takes
    /// the migration over (progress, stream recovery) and the move ends as it would have: finished, or handed to the
    /// operator with both copies kept.
    /// </summary>
    public async Task ReattachPostCopyAsync(Instance instance, Migration migration, string dest, bool sharedInstancePath, CancellationToken ct)
    {
        var data = new LiveMigrateData { DestHost = dest, IsSharedInstancePath = sharedInstancePath };
        var outgoing = new Outgoing(new LiveMigrationRequest(instance, migration, dest, data, RequestId: null)) { PostCopy = true };
        _outgoing[instance.Uuid] = outgoing;
        try
        {
            // The outcome can only be Completed: anything else after the switch is handed to the operator inside.
            await RunDriverMigrationAsync(outgoing, data, ct);
            await PostAsync(outgoing, data, ct);
            // Closes the event the agent opened before it restarted (null request: the instance's latest action).
            await context.Conductor.RecordActionEventAsync(new ActionEventRequest(instance.Uuid, null, EventName, context.Host, true, false, null), ct);
        }
        catch (FaultRecordedException)
        {
            // Recorded, and the instance is where the operator can see it.
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            await context.RecordFaultAsync(instance.Uuid, null, EventName, ex, ct);
        }
        finally
        {
            _outgoing.TryRemove(new KeyValuePair<string, Outgoing>(instance.Uuid, outgoing));
        }
    }

    public Task AbortAsync(LiveMigrationAbortRequest request, CancellationToken ct) =>
        context.RunEventAsync(request.Instance, request.RequestId, "compute_live_migration_abort", () =>
        {
            if (_outgoing.TryGetValue(request.Instance.Uuid, out var outgoing) && outgoing.Request.Migration.Id == request.MigrationId)
            {
                outgoing.Abort.TrySetResult();
            }
            return Task.CompletedTask;
        }, ct);

    public Task ForceCompleteAsync(InstanceRequest request, CancellationToken ct) =>
        context.RunEventAsync(request.Instance, request.RequestId, "compute_live_migration_force_complete", () =>
        {
            if (!_outgoing.TryGetValue(request.Instance.Uuid, out var outgoing))
            {
                throw new InvalidOperationException($"No active live migration for instance {request.Instance.Uuid}");
            }
            outgoing.ForceComplete.TrySetResult();
            return Task.CompletedTask;
        }, ct);

    private async Task MigrateAsync(Outgoing outgoing, CancellationToken ct)
    {
        var request = outgoing.Request;
        var instance = request.Instance;
        var migration = request.Migration;
        if (_slots is not null)
        {
            var slot = _slots.WaitAsync(ct);
            if (await Task.WhenAny(slot, outgoing.Abort.Task) != slot)
            {
                _ = slot.ContinueWith(t => { if (t.IsCompletedSuccessfully) { _slots.Release(); } }, TaskScheduler.Default);
                await RollbackAsync(outgoing, MigrationStatus.Cancelled, destinationPrepared: false, ct);
                return;
            }
        }
        try
        {
            await context.SetMigrationStatusAsync(migration.Uuid, MigrationStatus.Preparing, ct);
            LiveMigrateData data;
            try
            {
                // The source decides how many streams carry the memory; both ends must set them up alike.
                var prepare = request.Data with { ParallelConnections = PermitPostCopy(request) ? 1 : Math.Max(1, context.Options.LiveMigrationParallelConnections) };
                data = await context.Compute.PreLiveMigrationAsync(request.Dest, new PreLiveMigrationRequest(instance, migration, prepare, request.RequestId), ct);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                await RollbackAsync(outgoing, MigrationStatus.Failed, destinationPrepared: true, ct, cause: ex);
                throw new FaultRecordedException(ex);
            }
            if (outgoing.Abort.Task.IsCompleted)
            {
                await RollbackAsync(outgoing, MigrationStatus.Cancelled, destinationPrepared: true, ct);
                return;
            }
            await context.SetMigrationStatusAsync(migration.Uuid, MigrationStatus.Running, ct);
            var outcome = await RunDriverMigrationAsync(outgoing, data, ct);
            switch (outcome)
            {
                case LiveMigrationOutcome.Completed:
                    await PostAsync(outgoing, data, ct);
                    break;
                case LiveMigrationOutcome.Cancelled:
                    await RollbackAsync(outgoing, MigrationStatus.Cancelled, destinationPrepared: true, ct);
                    break;
                default:
                    var failure = new Core.Errors.LiveMigrationFailedException($"the hypervisor reported failure migrating {instance.Uuid} to {request.Dest}");
                    await RollbackAsync(outgoing, MigrationStatus.Failed, destinationPrepared: true, ct, cause: failure);
                    throw new FaultRecordedException(failure);
            }
        }
        finally
        {
            _slots?.Release();
        }
    }

    /// <summary>Nova drops post-copy for paused guests: there is nothing running to switch.</summary>
    private bool PermitPostCopy(LiveMigrationRequest request) =>
        context.Options.LiveMigrationPermitPostCopy && request.Instance.VmState != VmState.Paused;

    /// <summary>Runs the driver's migration while relaying abort and force-complete requests to it.</summary>
    private async Task<LiveMigrationOutcome> RunDriverMigrationAsync(Outgoing outgoing, LiveMigrateData data, CancellationToken ct)
    {
        var request = outgoing.Request;
        var plan = new LiveMigrationPlan
        {
            MigrationUuid = request.Migration.Uuid,
            DestHost = request.Dest,
            IncomingUri = data.IncomingUri,
            DestAddress = data.DestAddress,
            BlockMigration = data.BlockMigration ?? false,
            BandwidthMiBps = context.Options.LiveMigrationBandwidthMiBps,
            DowntimeMs = context.Options.LiveMigrationDowntimeMs,
            DowntimeSteps = context.Options.LiveMigrationDowntimeSteps,
            DowntimeDelaySecondsPerGiB = context.Options.LiveMigrationDowntimeDelaySecondsPerGiB,
            CompletionTimeoutSecondsPerGiB = context.Options.LiveMigrationCompletionTimeoutSecondsPerGiB,
            TimeoutAction = context.Options.LiveMigrationTimeoutAction,
            PermitPostCopy = PermitPostCopy(request),
            PermitAutoConverge = context.Options.LiveMigrationPermitAutoConverge,
            ParallelConnections = data.ParallelConnections,
            PostCopyRecoveryAttempts = context.Options.LiveMigrationPostCopyRecoveryAttempts,
            PostCopyStallSeconds = context.Options.LiveMigrationPostCopyStallSeconds,
        };
        var callbacks = new ProgressReporter(context, outgoing);
        using var progressMetrics = LiveMigrationMetrics.Track(request.Instance.Uuid, request.Migration.Uuid);
        var guest = ComputeContext.GuestFor(request.Instance);
        Task<LiveMigrationOutcome> migrate;
        try
        {
            // A migration already in post-copy was started before an agent restart: the driver takes it over.
            migrate = outgoing.PostCopy
                ? context.Driver.ReattachLiveMigrationAsync(guest, plan, callbacks, ct)
                : context.Driver.LiveMigrateAsync(guest, plan, callbacks, ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            migrate = Task.FromException<LiveMigrationOutcome>(ex);
        }
        var aborted = false;
        var forced = false;
        while (!migrate.IsCompleted)
        {
            var pending = new List<Task> { migrate };
            if (!aborted) { pending.Add(outgoing.Abort.Task); }
            if (!forced) { pending.Add(outgoing.ForceComplete.Task); }
            await Task.WhenAny(pending);
            if (migrate.IsCompleted)
            {
                break;
            }
            // The driver may not have registered the migration yet: keep asking until it takes it.
            if (!aborted && outgoing.Abort.Task.IsCompleted)
            {
                aborted = context.Driver.AbortLiveMigration(guest.Uuid) || outgoing.PostCopy;
            }
            if (!forced && outgoing.ForceComplete.Task.IsCompleted)
            {
                forced = context.Driver.ForceCompleteLiveMigration(guest.Uuid);
            }
            if ((!aborted && outgoing.Abort.Task.IsCompleted) || (!forced && outgoing.ForceComplete.Task.IsCompleted))
            {
                await Task.WhenAny(migrate, Task.Delay(TimeSpan.FromMilliseconds(5), context.Time, ct));
            }
        }
        try
        {
            var outcome = await migrate;
            if (outcome != LiveMigrationOutcome.Completed && outgoing.PostCopy)
            {
                throw new Core.Errors.LiveMigrationFailedException(
                    $"the hypervisor on {context.Host} reports live migration {request.Migration.Uuid} {outcome.ToString().ToLowerInvariant()} after the " +
                    $"switch to post-copy; the guest's memory may be split between {context.Host} and {request.Dest}, so both copies are kept");
            }
            return outcome;
        }
        catch (Exception ex) when (ex is not OperationCanceledException && outgoing.PostCopy)
        {
            await HandSplitGuestToOperatorAsync(outgoing, ex, ct);
            throw new FaultRecordedException(ex);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // A broken monitor must not leave a copy job running behind our back (Nova bug 1905944).
            context.Driver.AbortLiveMigration(guest.Uuid);
            await RollbackAsync(outgoing, MigrationStatus.Error, destinationPrepared: true, ct, cause: ex);
            throw new FaultRecordedException(ex);
        }
    }

    /// <summary>
    /// After the switch to post-copy the guest's memory is split between both hosts, or (once it completed) only the
    /// destination's is current: rolling back would destroy the copy that runs the guest and resuming ours would run a
    /// stale one. Both copies stay as they are (each still holds its placement claim) and the operator decides, as in Nova.
    /// </summary>
    private async Task HandSplitGuestToOperatorAsync(Outgoing outgoing, Exception cause, CancellationToken ct)
    {
        var request = outgoing.Request;
        await context.RecordFaultAsync(request.Instance.Uuid, request.RequestId, EventName, cause, ct);
        // The migration ends first: whoever sees the instance leave its task state finds the move already final.
        await context.TryAsync("migration error", request.Instance.Uuid, () => context.SetMigrationStatusAsync(request.Migration.Uuid, MigrationStatus.Error, ct));
        await context.TryAsync("error out", request.Instance.Uuid, () => context.UpdateInstanceAsync(new InstanceUpdateRequest
        {
            Uuid = request.Instance.Uuid,
            VmState = VmState.Error,
            SetTaskState = true,
            TaskState = null,
        }, ct));
    }

    /// <summary>The copy completed: the destination takes over, then the paused source copy goes.</summary>
    private async Task PostAsync(Outgoing outgoing, LiveMigrateData data, CancellationToken ct)
    {
        var request = outgoing.Request;
        var instance = request.Instance;
        try
        {
            // Switch-over: the destination's port bindings become the active ones (Nova's migrate_instance_start).
            await context.Networks.ActivateAsync(instance, request.Dest, ct);
            await context.Compute.PostLiveMigrationAtDestinationAsync(request.Dest,
                new PostLiveMigrationAtDestinationRequest(instance, request.Migration, request.RequestId, data.DestinationVolumes), ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException && outgoing.PostCopy)
        {
            // The destination has run the guest since the switch: our memory is stale, so neither rollback applies.
            var failure = new Core.Errors.LiveMigrationFailedException(
                $"post-copy live migration {request.Migration.Uuid} completed but {request.Dest} did not take the guest over ({ex.Message}); " +
                $"its copy is the current one and the one on {context.Host} is stale, so both are kept");
            await HandSplitGuestToOperatorAsync(outgoing, failure, ct);
            throw new FaultRecordedException(failure);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The destination did not take over. Resume the source only once the destination copy is gone.
            var destinationGone = false;
            try
            {
                await context.Compute.RollbackLiveMigrationAtDestinationAsync(request.Dest,
                    new RollbackLiveMigrationAtDestinationRequest(instance, request.Migration, !data.IsSharedInstancePath, request.RequestId), ct);
                destinationGone = true;
            }
            catch (Exception inner) when (inner is not OperationCanceledException)
            {
                await context.RecordFaultAsync(instance.Uuid, request.RequestId, "compute_rollback_live_migration_at_destination", inner, ct);
            }
            if (destinationGone)
            {
                // The guest runs here again: so do its ports (the destination deleted its bindings).
                await context.TryAsync("activate port bindings here", instance.Uuid, () => context.Networks.ActivateAsync(instance, context.Host, CancellationToken.None));
                await context.Driver.PowerOnAsync(instance.Uuid, ct);
                await RollbackAsync(outgoing, MigrationStatus.Failed, destinationPrepared: false, ct, cause: ex);
            }
            else
            {
                await context.RecordFaultAsync(instance.Uuid, request.RequestId, EventName, ex, ct);
                // Neither copy may run: the operator decides (the fault says why). The migration ends first, as above.
                await context.TryAsync("migration error", instance.Uuid, () => context.SetMigrationStatusAsync(request.Migration.Uuid, MigrationStatus.Error, ct));
                await context.TryAsync("error out", instance.Uuid, () => context.UpdateInstanceAsync(new InstanceUpdateRequest
                {
                    Uuid = instance.Uuid,
                    VmState = VmState.Error,
                    SetTaskState = true,
                    TaskState = null,
                    PowerState = PowerState.Paused,
                }, ct));
            }
            throw new FaultRecordedException(ex);
        }
        // The source copy is paused and the destination runs the guest: removing the copy may be
        // retried freely, and a copy that will not go stays paused, never running.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await context.Driver.PostLiveMigrationAtSourceAsync(ComputeContext.GuestFor(instance), data.IsSharedInstancePath, ct);
                break;
            }
            catch (Exception ex) when (ex is not OperationCanceledException && attempt < SourceCleanupAttempts)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(10 * attempt), context.Time, ct);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                await context.RecordFaultAsync(instance.Uuid, request.RequestId, "compute_post_live_migration_at_source", ex, ct);
                break;
            }
        }
        // The source's bindings, inactive since the switch-over (Nova's setup_networks_on_host teardown).
        await context.TryAsync("delete port bindings", instance.Uuid, () => context.Networks.DeleteBindingsAsync(instance, context.Host, ct));
        // This host's volume attachments, replaced by the destination's (Nova's old_vol_attachment_ids).
        await context.TryAsync("delete volume attachments", instance.Uuid, () => context.Volumes.DeleteReplacedAsync(instance, data.DestinationVolumes, ct));
        await context.Placement.DeleteAllocationsAsync(request.Migration.Uuid, ct);
        await context.SetMigrationStatusAsync(request.Migration.Uuid, MigrationStatus.Completed, ct);
    }

    /// <summary>Puts the world back: allocations to the instance, destination cleaned, source running, task cleared.</summary>
    private async Task RollbackAsync(Outgoing outgoing, string status, bool destinationPrepared, CancellationToken ct, Exception? cause = null)
    {
        var request = outgoing.Request;
        var instance = request.Instance;
        await context.TryAsync("revert allocations", instance.Uuid, () => context.Placement.MoveAllocationsAsync(request.Migration.Uuid, instance.Uuid, ct));
        RollbackLiveMigrationAtDestinationReply? destination = null;
        if (destinationPrepared)
        {
            await context.TryAsync("rollback at destination", instance.Uuid, async () => destination = await context.Compute.RollbackLiveMigrationAtDestinationAsync(request.Dest,
                new RollbackLiveMigrationAtDestinationRequest(instance, request.Migration, !request.Data.IsSharedInstancePath, request.RequestId), ct));
        }
        if (cause is not null)
        {
            // Recorded before anything turns final, so whoever sees the final status also sees why; the destination's
            // QEMU dying is often the why, and only that host can read its last words.
            await context.RecordFaultAsync(instance.Uuid, request.RequestId, EventName, WithDestinationExit(cause, request.Dest, destination), ct);
        }
        var power = context.PowerStateOf(instance.Uuid);
        await context.TryAsync("reset task state", instance.Uuid, () => context.UpdateInstanceAsync(new InstanceUpdateRequest
        {
            Uuid = instance.Uuid,
            SetTaskState = true,
            TaskState = null,
            Progress = 0,
            PowerState = power,
            // The source's guest died under the migration: SHUTOFF now, as the power-state sync would make it later.
            VmState = power is PowerState.Shutdown or PowerState.Crashed ? VmState.Stopped : null,
            ExpectedTaskStates = [TaskState.Migrating],
        }, ct));
        await context.TryAsync("migration status", instance.Uuid, () => context.SetMigrationStatusAsync(request.Migration.Uuid, status, ct));
    }

    /// <summary>The cause, completed with what the destination said of its incoming copy's hypervisor dying on its own.</summary>
    private static Exception WithDestinationExit(Exception cause, string dest, RollbackLiveMigrationAtDestinationReply? destination)
    {
        if (destination?.GuestExit is not { } exit)
        {
            return cause;
        }
        var own = cause is Core.Errors.FerryException { Details: { } d } ? d + "\n" : "";
        return new Core.Errors.LiveMigrationFailedException($"{cause.Message.Replace("Live migration failed: ", "", StringComparison.Ordinal)}; on {dest}: {exit}")
        {
            Details = own + (destination.GuestExitDetails ?? ""),
        };
    }

    private sealed class Outgoing(LiveMigrationRequest request)
    {
        public LiveMigrationRequest Request { get; } = request;
        /// <summary>Set at the switch to post-copy: from then on the guest runs on the destination and nothing rolls back.</summary>
        public bool PostCopy { get; set; }
        public TaskCompletionSource Abort { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource ForceComplete { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Feeds the driver's monitor samples into the migration record, at most once per interval.</summary>
    private sealed class ProgressReporter(ComputeContext context, Outgoing outgoing) : IDriverCallbacks
    {
        private readonly LiveMigrationRequest _request = outgoing.Request;
        private long _lastWriteTicks;

        public async ValueTask MigrationProgressAsync(string uuid, MigrationProgress progress, CancellationToken cancellationToken)
        {
            LiveMigrationMetrics.Sample(_request.Migration.Uuid, progress);
            var now = context.Time.GetTimestamp();
            var last = Interlocked.Read(ref _lastWriteTicks);
            var done = progress.MemoryRemainingBytes == 0 && progress.DiskRemainingBytes == 0;
            if (last != 0 && !done && context.Time.GetElapsedTime(last, now) < context.Options.MigrationProgressInterval)
            {
                return;
            }
            Interlocked.Exchange(ref _lastWriteTicks, now);
            var total = progress.MemoryTotalBytes + progress.DiskTotalBytes;
            var remaining = progress.MemoryRemainingBytes + progress.DiskRemainingBytes;
            var percent = total == 0 ? 0 : (int)(100 - remaining * 100 / total);
            // Two rows, neither read to write the other: both calls at once (the last sample is on every move's critical path).
            var migration = context.Conductor.UpdateMigrationAsync(new MigrationUpdateRequest
            {
                Uuid = _request.Migration.Uuid,
                MemoryTotal = progress.MemoryTotalBytes,
                MemoryProcessed = progress.MemoryProcessedBytes,
                MemoryRemaining = progress.MemoryRemainingBytes,
                DiskTotal = progress.DiskTotalBytes,
                DiskProcessed = progress.DiskProcessedBytes,
                DiskRemaining = progress.DiskRemainingBytes,
            }, cancellationToken);
            var instance = context.Conductor.UpdateInstanceAsync(new InstanceUpdateRequest
            {
                Uuid = _request.Instance.Uuid,
                Progress = percent,
            }, cancellationToken);
            await Task.WhenAll(migration, instance);
            Log.Progress(context.Logger, _request.Instance.Uuid, _request.Migration.Uuid, context.Host, _request.Dest, percent, remaining >> 20);
        }

        public async ValueTask MigrationSwitchedToPostCopyAsync(string uuid, CancellationToken cancellationToken)
        {
            outgoing.PostCopy = true;
            await context.SetMigrationStatusAsync(_request.Migration.Uuid, MigrationStatus.RunningPostCopy, cancellationToken);
            // The guest runs on the destination from now on: so does its network (Nova activates the destination's
            // bindings on the post-copy event). The completion activates again, harmlessly, if this one failed.
            await context.TryAsync("activate port bindings", uuid, () => context.Networks.ActivateAsync(_request.Instance, _request.Dest, cancellationToken));
        }

        public async ValueTask<string> RecoverPostCopyAsync(string uuid, CancellationToken cancellationToken)
        {
            var reply = await context.Compute.RecoverPostCopyAtDestinationAsync(_request.Dest,
                new RecoverPostCopyAtDestinationRequest(_request.Instance, _request.Migration, _request.RequestId), cancellationToken);
            return reply.IncomingUri;
        }
    }
}
