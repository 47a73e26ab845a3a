using Ferry.Core.Errors;

namespace Ferry.Virt.Fake;

// The live migration monitor: iterative pre-copy on a simulated clock, following
// nova/virt/libvirt/migration.py (downtime steps, completion timeout, force-complete) and the model in
// docs/reference/live-migration.md §1 (round i sends what round i-1 dirtied).
public sealed partial class FakeDriver
{
    private async Task<LiveMigrationOutcome> RunPreCopyAsync(
        GuestSpec guest, LiveMigrationPlan plan, IDriverCallbacks callbacks, MigrationControl migration, CancellationToken cancellationToken)
    {
        long memoryBytes = (long)guest.MemoryMb << 20;
        long diskBytes = plan.BlockMigration ? BlockMigrationDiskBytes(guest) : 0;
        double bandwidth = BandwidthBytesPerSecond(plan);
        double baseDirtyRate = DirtyRateMiBps(guest) * MiB;

        // Nova sizes both schedules by the data to move (RAM + migrated disks).
        double dataGiB = Math.Max(1d, (memoryBytes + diskBytes) / GiB);
        double completionTimeout = plan.CompletionTimeoutSecondsPerGiB > 0 ? plan.CompletionTimeoutSecondsPerGiB * dataGiB : 0;
        var downtime = new DowntimeSchedule(plan, dataGiB);

        double clock = 0;              // simulated seconds since the copy started
        double remaining = memoryBytes; // memory still to send at the start of the round
        long memoryProcessed = 0;
        double throttle = 0;           // auto-converge: fraction of the dirty rate taken away
        bool paused = false;           // force-complete without post-copy pauses the guest
        bool timeoutFired = false;

        for (int iteration = 1; ; iteration++)
        {
            var wake = migration.WakeTask;
            if (migration.AbortRequested)
            {
                return LiveMigrationOutcome.Cancelled;
            }
            await Faults.DelayAsync(FakeSteps.LiveMigrationRound, cancellationToken);
            if (Faults.ShouldFail(FakeSteps.LiveMigrationRound))
            {
                LogRoundFailed(guest.Uuid, iteration);
                return LiveMigrationOutcome.Failed;
            }

            // One pre-copy round: the disk (first round only) then every page dirtied during the last round.
            double toSend = remaining + (iteration == 1 ? diskBytes : 0);
            double roundSeconds = toSend / bandwidth;
            await SleepAsync(roundSeconds, wake, cancellationToken);
            if (migration.AbortRequested)
            {
                return LiveMigrationOutcome.Cancelled;
            }
            clock += roundSeconds;
            memoryProcessed += (long)remaining;
            double dirtyRate = paused ? 0 : baseDirtyRate * (1 - throttle);
            remaining = Math.Min(memoryBytes, dirtyRate * roundSeconds);
            long expectedDowntimeMs = (long)Math.Ceiling(remaining / bandwidth * 1000);

            await callbacks.MigrationProgressAsync(guest.Uuid, new MigrationProgress
            {
                MemoryTotalBytes = memoryBytes,
                MemoryProcessedBytes = memoryProcessed,
                MemoryRemainingBytes = (long)remaining,
                DiskTotalBytes = diskBytes,
                DiskProcessedBytes = diskBytes,
                DiskRemainingBytes = 0,
                DirtyRateBytesPerSecond = (long)dirtyRate,
                Iteration = iteration,
                ExpectedDowntimeMs = expectedDowntimeMs,
            }, cancellationToken);
            LogRound(guest.Uuid, iteration, clock, (long)remaining, expectedDowntimeMs);

            if (migration.AbortRequested)
            {
                return LiveMigrationOutcome.Cancelled;
            }

            // Converged: stop the guest and send the rest within the downtime limit.
            if (expectedDowntimeMs <= downtime.LimitMsAt(TimeSpan.FromSeconds(clock)))
            {
                await SleepAsync(remaining / bandwidth, wake: null, cancellationToken);
                return LiveMigrationOutcome.Completed;
            }

            if (completionTimeout > 0 && clock >= completionTimeout && !timeoutFired)
            {
                timeoutFired = true;
                LogCompletionTimeout(guest.Uuid, clock, plan.TimeoutAction);
                if (plan.TimeoutAction == CompletionTimeoutAction.Abort)
                {
                    return migration.TryAbort() ? LiveMigrationOutcome.Cancelled : LiveMigrationOutcome.Completed;
                }
                migration.TryForceComplete();
            }

            if (migration.ForceRequested)
            {
                if (plan.PermitPostCopy && migration.TryEnterPostCopy())
                {
                    await callbacks.MigrationSwitchedToPostCopyAsync(guest.Uuid, cancellationToken);
                    State.TryUpdate(guest.Uuid, g => g with { PowerState = GuestPowerState.Paused });
                    // Every page still missing crosses once, at bandwidth, while the guest runs on the destination.
                    long missing = (long)remaining;
                    int attempts = 0; // resume attempts since the stream last moved
                    for (int chunk = 1; chunk <= PostCopyChunks; chunk++)
                    {
                        await Faults.DelayAsync(FakeSteps.PostCopyStream, cancellationToken); // a delay holds the guest in post-copy
                        while (Faults.ShouldFail(FakeSteps.PostCopyStream))
                        {
                            LogPostCopyStreamBroke(guest.Uuid, plan.MigrationUuid, missing);
                            attempts = await ResumePostCopyAsync(guest, plan, callbacks, attempts, cancellationToken);
                        }
                        attempts = 0;
                        long bytes = chunk == PostCopyChunks ? missing : (long)remaining / PostCopyChunks;
                        await SleepAsync(bytes / bandwidth, wake: null, cancellationToken);
                        clock += bytes / bandwidth;
                        memoryProcessed += bytes;
                        missing -= bytes;
                        await callbacks.MigrationProgressAsync(guest.Uuid, new MigrationProgress
                        {
                            MemoryTotalBytes = memoryBytes,
                            MemoryProcessedBytes = memoryProcessed,
                            MemoryRemainingBytes = missing,
                            DiskTotalBytes = diskBytes,
                            DiskProcessedBytes = diskBytes,
                            Iteration = iteration + 1,
                            PostCopy = true,
                        }, cancellationToken);
                    }
                    return LiveMigrationOutcome.Completed;
                }
                if (migration.AbortRequested)
                {
                    return LiveMigrationOutcome.Cancelled;
                }
                if (!paused)
                {
                    // Nova's force-complete without post-copy: suspend the guest so the next round converges.
                    paused = true;
                    State.TryUpdate(guest.Uuid, g => g with { PowerState = GuestPowerState.Paused });
                }
            }

            if (plan.PermitAutoConverge && iteration >= 2)
            {
                throttle = Math.Min(AutoConvergeMax, throttle + AutoConvergeStep);
            }

            if (_options.TimeScale == 0 && iteration >= MaxRoundsWithoutTime)
            {
                LogRoundCapReached(guest.Uuid, iteration);
                return LiveMigrationOutcome.Failed;
            }
        }
    }

    /// <summary>
    /// The post-copy stream broke: asks the destination to listen again (QEMU's migrate-recover) until it answers
    /// with an address naming it and the guest, then returns so the caller resumes sending and checks the stream
    /// again. Gives up once <see cref="LiveMigrationPlan.PostCopyRecoveryAttempts"/> attempts were made since
    /// the stream last moved: the source copy stays paused and the destination's copy stays, as neither holds
    /// the whole memory.
    /// </summary>
    /// <returns>The attempts made since the stream last moved, this one included.</returns>
    private async Task<int> ResumePostCopyAsync(
        GuestSpec guest, LiveMigrationPlan plan, IDriverCallbacks callbacks, int attempts, CancellationToken cancellationToken)
    {
        while (attempts < plan.PostCopyRecoveryAttempts)
        {
            attempts++;
            await SleepAsync(PostCopyResume.DelaySecondsBefore(attempts), wake: null, cancellationToken);
            string address;
            try
            {
                address = await callbacks.RecoverPostCopyAsync(guest.Uuid, cancellationToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogPostCopyResumeFailed(guest.Uuid, plan.MigrationUuid, attempts, plan.PostCopyRecoveryAttempts, ex.Message);
                continue;
            }
            if (!NamesIncomingGuest(address, plan.DestHost, guest.Uuid))
            {
                LogPostCopyResumeFailed(guest.Uuid, plan.MigrationUuid, attempts, plan.PostCopyRecoveryAttempts,
                    $"the destination answered {address}, which does not name {guest.Uuid} on {plan.DestHost}");
                continue;
            }
            LogPostCopyResuming(guest.Uuid, plan.MigrationUuid, attempts, plan.PostCopyRecoveryAttempts, address);
            return attempts;
        }
        LogPostCopyGaveUp(guest.Uuid, plan.MigrationUuid, attempts, _options.HostName, plan.DestHost);
        var tried = attempts == 0 ? "resuming it is disabled" : $"{attempts} resume attempts in a row failed";
        throw new LiveMigrationFailedException(
            $"the stream of migration {plan.MigrationUuid} broke during post-copy and {tried}; the memory of {guest.Uuid} is split " +
            $"between {_options.HostName} and {plan.DestHost}, so both copies are kept for the operator.");
    }

    /// <summary>True when <paramref name="address"/> is the fake address of <paramref name="uuid"/> on <paramref name="destHost"/>.</summary>
    private static bool NamesIncomingGuest(string? address, string destHost, string uuid) =>
        Uri.TryCreate(address, UriKind.Absolute, out var uri)
        && uri.Scheme == "fake"
        && string.Equals(uri.Host, destHost, StringComparison.OrdinalIgnoreCase)
        && uri.AbsolutePath == "/" + uuid;

    /// <summary>The plan's cap or the link, whichever is lower; 0 on both means infinite.</summary>
    private double BandwidthBytesPerSecond(LiveMigrationPlan plan)
    {
        long link = _options.LinkBandwidthMiBps;
        long cap = plan.BandwidthMiBps;
        long mibps = (link, cap) switch
        {
            (<= 0, <= 0) => 0,
            (<= 0, _) => cap,
            (_, <= 0) => link,
            _ => Math.Min(link, cap),
        };
        return mibps <= 0 ? double.PositiveInfinity : mibps * MiB;
    }

    /// <summary>
    /// Sleeps <paramref name="simulatedSeconds"/> × TimeScale of real time, waking early on an abort or
    /// force-complete. With TimeScale 0 it only yields, so requests from other threads are still seen.
    /// </summary>
    private async Task SleepAsync(double simulatedSeconds, Task? wake, CancellationToken cancellationToken)
    {
        double realSeconds = simulatedSeconds * _options.TimeScale;
        if (!(realSeconds > 0) || double.IsInfinity(realSeconds))
        {
            await Task.Yield();
            return;
        }
        var delay = TimeSpan.FromSeconds(Math.Min(realSeconds, TimeSpan.FromHours(1).TotalSeconds));
        if (wake is null)
        {
            await Task.Delay(delay, _timeProvider, cancellationToken);
            return;
        }
        using var delayCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var sleep = Task.Delay(delay, _timeProvider, delayCts.Token);
        await Task.WhenAny(sleep, wake);
        await delayCts.CancelAsync();
        cancellationToken.ThrowIfCancellationRequested();
    }
}
