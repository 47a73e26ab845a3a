using System.Diagnostics;
using Ferry.Benchmarks;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Ferry.FunctionalTests.Scale;

/// <summary>
/// Issue 10's bounded scale test: an all-in-one of 2,000 fake hosts and 20,000 instances (seeded by
/// <see cref="ScaleWorld"/>, as the 10,000 / 100,000 benchmark does) starts, every host reports up, heartbeats spread over
/// their interval, live and cold moves succeed among them, and a restart on the same data directory is ready with every
/// instance still in place. Times go to the test output (BENCHMARKS.md has the full-size figures), never into an assertion.
/// </summary>
[Collection(ProcessRestartCollection.Name)]
public sealed class ScaleTests(ITestOutputHelper output)
{
    private const int Hosts = 2_000;
    private const int InstanceCount = 20_000;
    private static readonly TimeSpan s_reportInterval = TimeSpan.FromSeconds(4);

    [Fact]
    public async Task AllInOne_2000HostsAnd20000Instances_StartsSpreadsHeartbeatsMovesAndRestarts()
    {
        // In memory when the machine has a tmpfs: 20,000 guests' files written and deleted are the disk's time, not Ferry's.
        var dataDirectory = Directory.Exists("/dev/shm") ? Directory.CreateDirectory(Path.Combine("/dev/shm", $"ferry-scale-{Guid.NewGuid():N}")).FullName : null;
        await using var ferry = new RestartableFerry(o =>
        {
            o.Hosts = Hosts;
            o.ReportInterval = s_reportInterval;
        }, dataDirectory);
        var clock = Stopwatch.StartNew();
        await ferry.StartAsync();
        output.WriteLine($"start, {Hosts} hosts, empty data directory: {clock.ElapsedMilliseconds} ms");
        Assert.Equal(Hosts, ferry.Ferry.Computes.Values.Count(c => c.IsRunning));
        AssertEveryComputeUp(ferry);

        var seeded = await ScaleWorld.SeedAsync(ferry.Ferry, InstanceCount, CancellationToken.None);
        output.WriteLine($"seeded {seeded.Instances} instances on {seeded.InstancesByHost.Count} hosts: {seeded.Elapsed.TotalMilliseconds:0} ms");
        Assert.Equal(Hosts, seeded.InstancesByHost.Count);

        // One interval of every host's periodic heartbeat once the seeding is over: each at its own point of the interval, not
        // all in one moment (uniform: a tenth of the hosts per tenth of the interval; all at once: every host in one). First a
        // round that lets the ticks held up behind the seeding's writes go out (on a loaded machine they all leave together
        // the moment the database is free), then the round that is measured: each host back at its own point.
        await WaitForHeartbeatsAfterAsync(ferry, DateTimeOffset.UtcNow);
        var quietFrom = DateTimeOffset.UtcNow;
        var heartbeats = await WaitForHeartbeatsAfterAsync(ferry, quietFrom);
        var tenths = heartbeats.GroupBy(t => (int)((t - quietFrom).Ticks % s_reportInterval.Ticks * 10 / s_reportInterval.Ticks)).ToDictionary(g => g.Key, g => g.Count());
        output.WriteLine($"heartbeats per tenth of the {s_reportInterval.TotalSeconds:0} s interval: {string.Join(", ", Enumerable.Range(0, 10).Select(i => tenths.GetValueOrDefault(i)))}");
        Assert.True(tenths.Count >= 8 && tenths.Values.Max() <= Hosts / 3,
            $"heartbeats bunched: per tenth of the interval {string.Join(", ", Enumerable.Range(0, 10).Select(i => tenths.GetValueOrDefault(i)))}");

        // A few moves among 2,000 hosts: two live migrations (scheduled), one cold migration confirmed.
        clock.Restart();
        var live = seeded.InstancesByHost["compute17"][0];
        var live2 = seeded.InstancesByHost["compute1999"][1];
        var cold = seeded.InstancesByHost["compute1000"][2];
        foreach (var id in new[] { live, live2 })
        {
            var from = ferry.Instances.Get(id).Host;
            var moved = await ferry.ActAsync(id, """{"os-migrateLive": {"host": null, "block_migration": "auto"}}""",
                i => i.TaskState is null && i.Host != from, "the live migration's end");
            Assert.Equal(VmState.Active, moved.VmState);
        }
        var coldFrom = ferry.Instances.Get(cold).Host;
        var resized = await ferry.ActAsync(cold, """{"migrate": null}""", i => i.TaskState is null && i.VmState == VmState.Resized, "VERIFY_RESIZE");
        Assert.NotEqual(coldFrom, resized.Host);
        var confirmed = await ferry.ActAsync(cold, """{"confirmResize": null}""", i => i.TaskState is null && i.VmState == VmState.Active, "the confirm");
        Assert.Equal(resized.Host, confirmed.Host);
        output.WriteLine($"2 live migrations + 1 cold migration and confirm: {clock.ElapsedMilliseconds} ms");
        await AssertConsistentAsync(ferry, "before the restart");

        // Stopped as Ctrl-C stops it, started again on the same data directory: start-up recovery and power sync of every host.
        clock.Restart();
        await ferry.StopAsync();
        output.WriteLine($"stop, {Hosts} hosts: {clock.ElapsedMilliseconds} ms");
        clock.Restart();
        await ferry.StartAsync();
        output.WriteLine($"restart, {Hosts} hosts with {InstanceCount} instances: {clock.ElapsedMilliseconds} ms");
        AssertEveryComputeUp(ferry);
        var instances = ferry.Instances.List();
        Assert.Equal(InstanceCount, instances.Count);
        Assert.All(instances, i => Assert.True(i.VmState == VmState.Active && i.PowerState == PowerState.Running && i.TaskState is null,
            $"{i.Uuid} on {i.Host}: {i.VmState}/{i.PowerState}/{i.TaskState} after the restart"));
        await AssertConsistentAsync(ferry, "after the restart");
        clock.Restart();
        await ferry.DisposeAsync();
        output.WriteLine($"stop and delete the data directory: {clock.ElapsedMilliseconds} ms");
    }

    private async Task AssertConsistentAsync(RestartableFerry ferry, string when)
    {
        var clock = Stopwatch.StartNew();
        await Invariants.AssertQuietAndConsistentAsync(ferry.Ferry, TimeSpan.FromSeconds(60));
        output.WriteLine($"invariants {when}: {clock.ElapsedMilliseconds} ms");
    }

    private static void AssertEveryComputeUp(RestartableFerry ferry)
    {
        var services = ferry.Ferry.Services.GetRequiredService<ServiceStore>().List(binary: "nova-compute");
        var now = DateTimeOffset.UtcNow;
        var down = services.Where(s => !s.IsUp(now, TimeSpan.FromSeconds(60))).Select(s => s.Host).ToList();
        Assert.True(services.Count == Hosts && down.Count == 0, $"{services.Count} compute services, down: {string.Join(", ", down.Take(20))}");
    }

    /// <summary>Each compute service's last heartbeat, once all of them are later than <paramref name="after"/> (bounded wait).</summary>
    private static async Task<List<DateTimeOffset>> WaitForHeartbeatsAfterAsync(RestartableFerry ferry, DateTimeOffset after)
    {
        var store = ferry.Ferry.Services.GetRequiredService<ServiceStore>();
        var deadline = DateTime.UtcNow + s_reportInterval * 10;
        while (true)
        {
            var seen = store.List(binary: "nova-compute").Select(s => s.LastSeenUp ?? DateTimeOffset.MinValue).ToList();
            if (seen.All(t => t > after))
            {
                return seen;
            }
            Assert.True(DateTime.UtcNow < deadline, $"{seen.Count(t => t <= after)} of {seen.Count} compute services had no heartbeat after {after:HH:mm:ss.fff}");
            await Task.Delay(200);
        }
    }
}
