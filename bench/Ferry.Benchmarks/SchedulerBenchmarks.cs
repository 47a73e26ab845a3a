using System.Diagnostics;

namespace Ferry.Benchmarks;

/// <summary>select_destinations timed call by call; each claim is released after the call, outside the timed span.</summary>
internal static class SchedulerBenchmarks
{
    public static async Task<(List<double> Samples, double SetupMs)> SelectDestinationsAsync(int hosts, int instances, int warmup, int measured, TimeSpan budget)
    {
        var setup = Stopwatch.StartNew();
        using var world = new SchedulerWorld(hosts, instances);
        var setupMs = setup.Elapsed.TotalMilliseconds;
        var samples = new List<double>(measured);
        var started = Stopwatch.GetTimestamp();
        for (var i = 0; i < warmup + measured && Stopwatch.GetElapsedTime(started) < budget; i++)
        {
            var spec = world.NextSpec();
            var t0 = Stopwatch.GetTimestamp();
            var selections = await world.Scheduler.SelectDestinationsAsync(spec, numAlternates: 2, CancellationToken.None);
            var t1 = Stopwatch.GetTimestamp();
            if (selections.Count != 3)
            {
                throw new InvalidOperationException($"expected a host and two alternates, got {selections.Count}");
            }
            world.Placement.DeleteAllocations(spec.InstanceUuid);
            if (i >= warmup)
            {
                samples.Add(Stats.Ms(t1 - t0));
            }
        }
        return (samples, setupMs);
    }
}
