using Ferry.Virt;

namespace Ferry.Benchmarks.Qemu;

/// <summary>The driver's up-calls during one migration: keeps the last progress sample and when post-copy began.</summary>
internal sealed class ProgressRecorder(System.Diagnostics.Stopwatch clock, IComputeDriver destination) : IDriverCallbacks
{
    private MigrationProgress? _last;
    private int _samples;
    private long _postCopyAtTicks = -1;

    public MigrationProgress? Last => Volatile.Read(ref _last);

    public int Samples => Volatile.Read(ref _samples);

    /// <summary>Milliseconds on the cell's clock when the driver reported the switch to post-copy; null if it never did.</summary>
    public double? PostCopyAtMs => Interlocked.Read(ref _postCopyAtTicks) is var t and >= 0 ? t * 1000.0 / System.Diagnostics.Stopwatch.Frequency : null;

    public ValueTask MigrationProgressAsync(string instanceUuid, MigrationProgress progress, CancellationToken cancellationToken)
    {
        Volatile.Write(ref _last, progress);
        Interlocked.Increment(ref _samples);
        if (progress.PostCopy)
        {
            Interlocked.CompareExchange(ref _postCopyAtTicks, clock.ElapsedTicks, -1);
        }
        return ValueTask.CompletedTask;
    }

    public ValueTask MigrationSwitchedToPostCopyAsync(string instanceUuid, CancellationToken cancellationToken)
    {
        Interlocked.CompareExchange(ref _postCopyAtTicks, clock.ElapsedTicks, -1);
        return ValueTask.CompletedTask;
    }

    /// <summary>Both hosts live in this process: the destination driver is asked directly.</summary>
    public async ValueTask<string> RecoverPostCopyAsync(string instanceUuid, CancellationToken cancellationToken) =>
        await destination.RecoverPostCopyAtDestinationAsync(instanceUuid, cancellationToken);
}
