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

    public bool TimedOut => _timedOut;

    /// <summary>Stops the timer (call it as soon as the migration returned, so a late tick cannot abort the next one).</summary>
    public async ValueTask DisposeAsync()
    {
        await _abort.DisposeAsync();
        _deadline.Dispose();
    }
}
