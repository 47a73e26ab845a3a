using System.Diagnostics;

namespace Ferry.Benchmarks;

/// <summary>Bounded waits. Every wait has a time limit; none runs forever.</summary>
internal static class Poll
{
    /// <summary>
    /// Checks <paramref name="condition"/> about every <paramref name="interval"/> on the calling thread
    /// (a dedicated thread: it yields the core between checks, never sleeps a whole millisecond).
    /// Returns the timestamp at which the condition was first seen true.
    /// </summary>
    public static long SpinUntil(Func<bool> condition, TimeSpan interval, TimeSpan limit, string what)
    {
        var start = Stopwatch.GetTimestamp();
        var step = (long)(interval.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            if (condition())
            {
                return Stopwatch.GetTimestamp();
            }
            var checkedAt = Stopwatch.GetTimestamp();
            if (Stopwatch.GetElapsedTime(start, checkedAt) > limit)
            {
                throw new TimeoutException($"Waited {limit.TotalSeconds:0.#} s for {what}");
            }
            while (Stopwatch.GetTimestamp() - checkedAt < step)
            {
                Thread.Yield();
            }
        }
    }

    /// <summary>Asynchronous wait for long things (boots, many migrations): checks every <paramref name="interval"/>.</summary>
    public static async Task UntilAsync(Func<bool> condition, TimeSpan interval, TimeSpan limit, string what)
    {
        var start = Stopwatch.GetTimestamp();
        while (!condition())
        {
            if (Stopwatch.GetElapsedTime(start) > limit)
            {
                throw new TimeoutException($"Waited {limit.TotalSeconds:0.#} s for {what}");
            }
            await Task.Delay(interval);
        }
    }

    /// <summary>Runs <paramref name="body"/> on a thread of its own, so tight polling never starves the thread pool.</summary>
    public static Task<T> OnDedicatedThread<T>(Func<T> body)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                done.SetResult(body());
            }
            catch (Exception ex)
            {
                done.SetException(ex);
            }
        })
        { IsBackground = true, Name = "bench-driver" };
        thread.Start();
        return done.Task;
    }
}
