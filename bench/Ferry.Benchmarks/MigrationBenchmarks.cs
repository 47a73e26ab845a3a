using System.Diagnostics;
using System.Net;
using Ferry.Core.Domain;

namespace Ferry.Benchmarks;

/// <summary>Latency of single moves and throughput of many at once, through the REST API of a running Ferry (either shape).</summary>
internal static class MigrationBenchmarks
{
    private static readonly TimeSpan s_moveLimit = TimeSpan.FromSeconds(20);

    /// <summary>
    /// Live migration API call → ACTIVE on the destination (host is the destination, task_state none),
    /// one server moving between compute1 and compute2, <paramref name="warmup"/> unmeasured moves first.
    /// Between moves (untimed) the migration record is also waited for to be completed.
    /// </summary>
    public static async Task<List<double>> LiveMigrationLatencyAsync(IBenchFerry ferry, int warmup, int measured, TimeSpan budget)
    {
        var (id, _) = (await ferry.BootManyAsync(["compute1"]))[0];
        return await Poll.OnDedicatedThread(() =>
        {
            var samples = new List<double>(measured);
            var host = "compute1";
            var started = Stopwatch.GetTimestamp();
            for (var i = 0; i < warmup + measured && Stopwatch.GetElapsedTime(started) < budget; i++)
            {
                var destination = host == "compute1" ? "compute2" : "compute1";
                var t0 = Stopwatch.GetTimestamp();
                ferry.Action(id, InProcessFerry.LiveMigrateBody(destination), HttpStatusCode.Accepted);
                var t1 = Poll.SpinUntil(() => ferry.Instances.Find(id) is { TaskState: null, VmState: VmState.Active } inst && inst.Host == destination,
                    ferry.LatencyPoll, s_moveLimit, $"{id} ACTIVE on {destination}");
                if (i >= warmup)
                {
                    samples.Add(Stats.Ms(t1 - t0));
                }
                Poll.SpinUntil(() => ferry.NewestMigration(id) is { Status: MigrationStatus.Completed }, TimeSpan.FromMilliseconds(1), s_moveLimit, "migration completed");
                host = destination;
            }
            return samples;
        });
    }

    /// <summary>
    /// Cold migrate + confirm: POST migrate → VERIFY_RESIZE on the destination → POST confirmResize (204)
    /// → ACTIVE on the destination with the migration confirmed. The whole span is one sample.
    /// </summary>
    public static async Task<List<double>> ColdMigrateConfirmLatencyAsync(IBenchFerry ferry, int warmup, int measured, TimeSpan budget)
    {
        var (id, _) = (await ferry.BootManyAsync(["compute1"]))[0];
        return await Poll.OnDedicatedThread(() =>
        {
            var samples = new List<double>(measured);
            var host = "compute1";
            var started = Stopwatch.GetTimestamp();
            for (var i = 0; i < warmup + measured && Stopwatch.GetElapsedTime(started) < budget; i++)
            {
                var destination = host == "compute1" ? "compute2" : "compute1";
                var t0 = Stopwatch.GetTimestamp();
                ferry.Action(id, InProcessFerry.ColdMigrateBody(destination), HttpStatusCode.Accepted);
                // The migration record must say `finished` too: Ferry sets VERIFY_RESIZE just before it (Nova the
                // other way round), and a confirm in between is refused with 400 "Instance has not been resized".
                Poll.SpinUntil(() => ferry.Instances.Find(id) is { TaskState: null, VmState: VmState.Resized } inst && inst.Host == destination
                        && ferry.NewestMigration(id) is { Status: MigrationStatus.Finished },
                    ferry.LatencyPoll, s_moveLimit, $"{id} VERIFY_RESIZE on {destination}");
                ferry.Action(id, InProcessFerry.ConfirmBody, HttpStatusCode.NoContent);
                var t1 = Poll.SpinUntil(() => ferry.Instances.Find(id) is { TaskState: null, VmState: VmState.Active } inst && inst.Host == destination
                        && ferry.NewestMigration(id) is { Status: MigrationStatus.Confirmed },
                    ferry.LatencyPoll, s_moveLimit, $"{id} ACTIVE on {destination} after confirm");
                if (i >= warmup)
                {
                    samples.Add(Stats.Ms(t1 - t0));
                }
                host = destination;
            }
            return samples;
        });
    }

    /// <summary>
    /// <paramref name="servers"/> servers spread over every host, all live-migrated at once to the next
    /// host (computeN → computeN+1, the last to compute1), <paramref name="rounds"/> times. Each round gives
    /// migrations per second from the first API call to the moment every server is ACTIVE on its destination.
    /// </summary>
    public static async Task<List<(double PerSecond, double WallMs)>> ConcurrentLiveMigrationsAsync(IBenchFerry ferry, int servers, int rounds, TimeSpan limit)
    {
        var hosts = ferry.HostNames.ToArray();
        var booted = await ferry.BootManyAsync([.. Enumerable.Range(0, servers).Select(i => hosts[i % hosts.Length])]);
        var hostOf = booted.ToDictionary(b => b.Id, b => b.Host);
        var results = new List<(double, double)>(rounds);
        for (var round = 0; round < rounds; round++)
        {
            var destinationOf = hostOf.ToDictionary(b => b.Key, b => hosts[(Array.IndexOf(hosts, b.Value) + 1) % hosts.Length]);
            var t0 = Stopwatch.GetTimestamp();
            await Task.WhenAll(destinationOf.Select(b => ferry.ActionAsync(b.Key, InProcessFerry.LiveMigrateBody(b.Value), HttpStatusCode.Accepted)));
            var finished = 0L;
            var done = 0;
            try
            {
                await Poll.UntilAsync(() =>
                {
                    done = ferry.Instances.List().Count(i => i.TaskState is null && i.VmState == VmState.Active
                        && destinationOf.TryGetValue(i.Uuid, out var d) && d == i.Host);
                    if (done < servers)
                    {
                        return false;
                    }
                    finished = Stopwatch.GetTimestamp();
                    return true;
                }, TimeSpan.FromMilliseconds(servers <= 20 ? 2 : 20), limit, $"{servers} concurrent live migrations"); // reading 240 rows costs CPU: look less often
            }
            catch (TimeoutException ex)
            {
                // Say how far it got: slow, or stuck (which statuses the round's migrations are in).
                var statuses = ferry.Migrations.List(new()).GroupBy(m => m.Status).Select(g => $"{g.Count()} {g.Key}");
                throw new TimeoutException($"{ex.Message} (round {round + 1}): {done} of {servers} ACTIVE on their destinations; migrations {string.Join(", ", statuses)}", ex);
            }
            var wallMs = Stats.Ms(finished - t0);
            results.Add((servers / (wallMs / 1000.0), wallMs));
            // Untimed: every migration record final before the next round.
            await Poll.UntilAsync(() => ferry.Migrations.ListUnfinished().Count == 0, TimeSpan.FromMilliseconds(10), limit, "migrations final");
            var failed = ferry.Migrations.List(new()).Count(m => m.Status is MigrationStatus.Error or MigrationStatus.Failed);
            if (failed > 0)
            {
                throw new InvalidOperationException($"{failed} migrations failed");
            }
            hostOf = destinationOf;
        }
        return results;
    }
}
