using System.Threading.Channels;
using Ferry.Compute;
using Microsoft.Extensions.Time.Testing;

namespace Ferry.Tests.Compute;

/// <summary>Heartbeats and power syncs of many hosts fall at each host's own stable point of the interval.</summary>
public sealed class SpreadTimerTests
{
    private static readonly TimeSpan s_interval = TimeSpan.FromSeconds(10);

    [Fact]
    public void OffsetOf_SameHostTwice_SameOffsetInsideTheInterval()
    {
        var first = SpreadTimer.OffsetOf("compute42", s_interval);

        Assert.Equal(first, SpreadTimer.OffsetOf("compute42", s_interval));
        Assert.InRange(first, TimeSpan.Zero, s_interval - TimeSpan.FromTicks(1));
    }

    [Fact]
    public void OffsetOf_TenThousandHostsNamedInSequence_EverySecondOfTheIntervalGetsAboutATenth()
    {
        var perSecond = Enumerable.Range(1, 10_000)
            .GroupBy(i => (int)SpreadTimer.OffsetOf($"compute{i}", s_interval).TotalSeconds)
            .ToDictionary(g => g.Key, g => g.Count());

        Assert.Equal(Enumerable.Range(0, 10), perSecond.Keys.Order());
        // 1,000 each when even; a uniform hash stays within a few standard deviations (~30).
        Assert.All(perSecond.Values, count => Assert.InRange(count, 850, 1_150));
    }

    [Fact]
    public async Task RunAsync_FakeTime_FirstTickAtTheHostsOffsetThenOncePerInterval()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 5, 0, 0, 0, TimeSpan.Zero));
        var start = time.GetUtcNow();
        using var timer = new SpreadTimer("compute7", s_interval, time);
        var ticks = Channel.CreateUnbounded<DateTimeOffset>();
        using var stop = new CancellationTokenSource();
        var loop = timer.RunAsync((due, _) => ticks.Writer.WriteAsync(due).AsTask(), stop.Token);
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30)); // a bound, not a timed assertion
        var ct = bound.Token;

        time.Advance(timer.Offset - TimeSpan.FromTicks(1));
        Assert.False(ticks.Reader.TryRead(out _), "no tick before the host's offset");
        time.Advance(TimeSpan.FromTicks(1));
        Assert.Equal(start + timer.Offset, await ticks.Reader.ReadAsync(ct));
        time.Advance(s_interval);
        Assert.Equal(start + timer.Offset + s_interval, await ticks.Reader.ReadAsync(ct));

        await stop.CancelAsync();
        await loop;
        Assert.Equal(SpreadTimer.OffsetOf("compute7", s_interval), timer.Offset);
    }

    [Fact]
    public async Task RunAsync_TickStillRunningWhenTheNextFallsDue_TicksNeverOverlap()
    {
        var time = new FakeTimeProvider();
        using var timer = new SpreadTimer("compute1", s_interval, time);
        var release = new TaskCompletionSource();
        var running = 0;
        var maxRunning = 0;
        var calls = Channel.CreateUnbounded<int>();
        using var stop = new CancellationTokenSource();
        var loop = timer.RunAsync(async (_, _) =>
        {
            maxRunning = Math.Max(maxRunning, Interlocked.Increment(ref running));
            await calls.Writer.WriteAsync(0);
            await release.Task;
            Interlocked.Decrement(ref running);
        }, stop.Token);
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30)); // a bound, not a timed assertion
        var ct = bound.Token;

        time.Advance(timer.Offset);
        await calls.Reader.ReadAsync(ct);
        time.Advance(s_interval * 3); // three more fall due while the first runs: one is kept
        release.SetResult();
        await calls.Reader.ReadAsync(ct);

        await stop.CancelAsync();
        await loop;
        Assert.Equal(1, maxRunning);
        Assert.False(calls.Reader.TryRead(out _), "the ticks due meanwhile coalesce into one");
    }
}
