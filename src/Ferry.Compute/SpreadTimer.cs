using System.Text;
using System.Threading.Channels;

namespace Ferry.Compute;

/// <summary>
/// A periodic task of one host (heartbeat, power-state sync) whose ticks fall at a stable point of the interval
/// chosen by the host's name, so that 10,000 agents started in the same second do not all report in the same
/// second of every interval (Nova spreads its periodic tasks with a random initial delay for the same reason:
/// periodic_task's run_immediately=False and the service's periodic_fuzzy_delay).
/// </summary>
internal sealed class SpreadTimer : IDisposable
{
    private readonly Channel<DateTimeOffset> _fired = Channel.CreateBounded<DateTimeOffset>(
        new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });
    private readonly ITimer _timer;

    /// <summary>Starts the timer now: its first tick after <see cref="Offset"/>, then one every <paramref name="interval"/>.</summary>
    public SpreadTimer(string host, TimeSpan interval, TimeProvider time)
    {
        Offset = OffsetOf(host, interval);
        // The timer exists from the constructor on, so a tick can neither be missed nor shifted by a slow loop; a tick that
        // falls while the previous one still runs is dropped, as a PeriodicTimer coalesces them.
        _timer = time.CreateTimer(_ => _fired.Writer.TryWrite(time.GetUtcNow()), null, Offset, interval);
    }

    /// <summary>Delay of the first tick after start: the host's stable point in [0, interval).</summary>
    public TimeSpan Offset { get; }

    /// <summary>
    /// Calls <paramref name="tick"/> (with the time it fell due) at every tick until <paramref name="ct"/> is cancelled,
    /// then returns; ticks never overlap.
    /// </summary>
    public async Task RunAsync(Func<DateTimeOffset, CancellationToken, Task> tick, CancellationToken ct)
    {
        try
        {
            await foreach (var due in _fired.Reader.ReadAllAsync(ct))
            {
                await tick(due, ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// The host's stable offset in the interval: FNV-1a of its name scaled to [0, interval). Stable across restarts and
    /// processes (string.GetHashCode is randomized per process), so the distributed shape spreads the same way.
    /// </summary>
    public static TimeSpan OffsetOf(string host, TimeSpan interval)
    {
        var hash = 2166136261u;
        foreach (var b in Encoding.UTF8.GetBytes(host))
        {
            hash = (hash ^ b) * 16777619u;
        }
        // Murmur3's finalizer: FNV alone leaves names that differ in their last digit (compute1, compute2…) close together.
        hash ^= hash >> 16;
        hash *= 0x85ebca6bu;
        hash ^= hash >> 13;
        hash *= 0xc2b2ae35u;
        hash ^= hash >> 16;
        return TimeSpan.FromTicks((long)(hash / (double)(1L << 32) * interval.Ticks));
    }

    public void Dispose() => _timer.Dispose();
}
