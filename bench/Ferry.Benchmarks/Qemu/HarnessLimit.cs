using Ferry.Virt;

namespace Ferry.Benchmarks.Qemu;

/// <summary>
/// The harness's own bound on one migration, past whatever the plan escalates to: at <c>limit</c> it aborts the
/// migration, and 30 s later cancels <see cref="Token"/> in case the abort is not honoured.
/// </summary>
internal sealed class HarnessLimit : IAsyncDisposable
{
    private readonly CancellationTokenSource _deadline;
    private readonly Timer _abort;
    private volatile bool _timedOut;

    public HarnessLimit(IComputeDriver source, string uuid, TimeSpan limit, CancellationToken cancellationToken)
    {
        _deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _abort = new Timer(_ =>
        {
            _timedOut = true;
            source.AbortLiveMigration(uuid);
            _deadline.CancelAfter(TimeSpan.FromSeconds(30));
        }, null, limit, Timeout.InfiniteTimeSpan);
    }

    public CancellationToken Token => _deadline.Token;

    /// <summary>
    /// One <c>LiveMigrateAsync</c> under a harness limit of <paramref name="limit"/>: its outcome as the reports write it
    /// (completed, failed, timed out, error: …, cancelled), whether it completed, and when it returned on <paramref name="clock"/>.
    /// </summary>
    public static async Task<(string Outcome, bool Completed, double EndMs)> MigrateAsync(IComputeDriver source, GuestSpec guest, LiveMigrationPlan plan,
        IDriverCallbacks callbacks, TimeSpan limit, System.Diagnostics.Stopwatch clock, CancellationToken cancellationToken)
    {
        await using var harness = new HarnessLimit(source, guest.Uuid, limit, cancellationToken);
        LiveMigrationOutcome? outcome = null;
        string? error = null;
        try
        {
            outcome = await source.LiveMigrateAsync(guest, plan, callbacks, harness.Token);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            error = $"{ex.GetType().Name}: {ex.Message}";
        }
        var endMs = clock.Elapsed.TotalMilliseconds;
        await harness.DisposeAsync(); // at once: a late tick must not abort the next migration
        var text = harness.TimedOut ? "timed out" : error is not null ? "error: " + error : outcome switch
        {
            LiveMigrationOutcome.Completed => "completed",
            LiveMigrationOutcome.Failed => "failed",
            _ => "cancelled",
        };
        return (text, text == "completed", endMs);
    }

    public bool TimedOut => _timedOut;

    /// <summary>Stops the timer (call it as soon as the migration returned, so a late tick cannot abort the next one).</summary>
    public async ValueTask DisposeAsync()
    {
        await _abort.DisposeAsync();
        _deadline.Dispose();
    }
}
