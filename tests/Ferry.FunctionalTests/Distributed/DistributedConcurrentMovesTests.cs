using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Ferry.FunctionalTests.Distributed;

/// <summary>
/// Issue 10's "many live migrations at once with no error" as a test of the distributed shape (the bench's
/// <c>concurrent240</c> measures it): PostgreSQL, RabbitMQ, two replicas of api, conductor and scheduler, and six fake
/// hosts served by two `ferry compute` processes (three hosts each, so the shape stays small on a 2-core machine), moves
/// taking no real time and no per-host limit on outgoing live migrations (<c>--max-concurrent-live-migrations 0</c>, as
/// the bench sets it).
/// </summary>
public sealed class ConcurrentMovesFixture() : DistributedFaultFixture(hosts: 6, hostsPerCompute: 3, new Dictionary<string, string>
{
    ["FERRY_TIMESCALE"] = "0",
    ["FERRY_LIVEMIGRATION__MAXCONCURRENT"] = "0",
});

[Collection(ProcessRestartCollection.Name)]
public sealed class DistributedConcurrentMovesTests(ConcurrentMovesFixture fixture, ITestOutputHelper output) : IClassFixture<ConcurrentMovesFixture>, IAsyncLifetime
{
    private const int Servers = 120;
    private static readonly TimeSpan s_limit = TimeSpan.FromMinutes(5);
    private readonly DistributedState _state = new(fixture);

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => _state.DeleteAllServersAsync();

    [Fact]
    public async Task LiveMigrate_120AtOnceThroughTwoApiReplicas_EveryMoveCompletesOnAnotherHost()
    {
        var hosts = Enumerable.Range(1, fixture.HostCount).Select(i => $"compute{i}").ToArray();
        var sourceOf = await BootSpreadAsync(hosts);

        // Every request at once: half through api-a, half through api-b; every other one names its destination (the next
        // host), the rest leave it to the schedulers.
        using var a = fixture.AdminOf("api-a");
        using var b = fixture.AdminOf("api-b");
        var ids = sourceOf.Keys.ToArray();
        var namedDestination = new Dictionary<string, string>();
        for (var i = 0; i < ids.Length; i += 2)
        {
            namedDestination[ids[i]] = hosts[(Array.IndexOf(hosts, sourceOf[ids[i]]) + 1) % hosts.Length];
        }
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var requests = ids.Select(async (id, i) =>
        {
            await start.Task;
            var body = new JsonObject { ["os-migrateLive"] = new JsonObject { ["host"] = namedDestination.GetValueOrDefault(id), ["block_migration"] = "auto" } };
            var (status, reply) = await (i % 4 < 2 ? a : b).ActionAsync(id, body);
            Assert.True(status == HttpStatusCode.Accepted, $"live migration of {id} ({(i % 4 < 2 ? "api-a" : "api-b")}): {(int)status} {reply?.ToJsonString()}");
        }).ToList();
        var clock = Stopwatch.StartNew();
        start.SetResult();
        await Task.WhenAll(requests);
        var accepted = clock.Elapsed;

        var servers = await WaitForMovesAsync(sourceOf);
        var done = clock.Elapsed;
        output.WriteLine($"{Servers} live migrations at once on {hosts.Length} hosts: accepted in {accepted.TotalSeconds:F1} s, " +
            $"all completed in {done.TotalSeconds:F1} s ({Servers / done.TotalSeconds:F1}/s)");

        var migrations = (await _state.MigrationsAsync()).Where(m => sourceOf.ContainsKey((string)m["instance_uuid"]!)).ToList();
        Assert.Equal(Servers, migrations.Count);
        Assert.All(migrations, m => Assert.True((string?)m["status"] == "completed" && (string?)m["migration_type"] == "live-migration", DistributedState.DescribeMigration(m)));
        var providers = await _state.ProvidersAsync();
        foreach (var (id, source) in sourceOf)
        {
            var server = servers[id];
            var host = DistributedState.Host(server);
            Assert.True(DistributedState.Status(server) == "ACTIVE" && DistributedState.TaskState(server) is null && host is not null && host != source,
                $"server {id} from {source}: {DistributedState.Describe(server)}");
            if (namedDestination.TryGetValue(id, out var named))
            {
                Assert.Equal(named, host);
            }
            var migration = migrations.Single(m => (string)m["instance_uuid"]! == id);
            Assert.Equal((source, host), ((string?)migration["source_compute"], (string?)migration["dest_compute"]));
            // The source's allocation (held by the migration) is gone and the server's is on its new host alone.
            var allocations = (await _state.PlacementGetAsync($"allocations/{id}"))["allocations"]!.AsObject();
            Assert.Equal([providers[host!]], allocations.Select(p => p.Key));
            Assert.Empty((await _state.PlacementGetAsync($"allocations/{migration["uuid"]}"))["allocations"]!.AsObject());
        }
        // Usages equal what the servers hold, per host, and each guest runs on its host only.
        await _state.AssertQuietAndConsistentAsync();
    }

    /// <summary>Boots <see cref="Servers"/> small servers, all at once, round-robin over <paramref name="hosts"/>; returns id → host.</summary>
    private async Task<Dictionary<string, string>> BootSpreadAsync(string[] hosts)
    {
        var boots = Enumerable.Range(0, Servers).Select(async i =>
        {
            var host = hosts[i % hosts.Length];
            var (status, body) = await fixture.Admin.PostAsync("servers", new JsonObject
            {
                ["server"] = new JsonObject
                {
                    ["name"] = $"crowd-{i}",
                    ["imageRef"] = "ferry-test-guest",
                    ["flavorRef"] = "m1.tiny",
                    ["networks"] = "none",
                    ["availability_zone"] = $"nova:{host}",
                },
            });
            Assert.True(status == HttpStatusCode.Accepted, $"boot {i} on {host}: {(int)status} {body?.ToJsonString()}");
            return ((string)body!["server"]!["id"]!, host);
        });
        var booted = (await Task.WhenAll(boots)).ToDictionary(b => b.Item1, b => b.host);
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var servers = await _state.ServersAsync();
            var ready = servers.Where(s => booted.ContainsKey((string)s!["id"]!) && DistributedState.Status(s!) == "ACTIVE" && DistributedState.TaskState(s!) is null).ToList();
            if (ready.Count == Servers)
            {
                Assert.All(ready, s => Assert.Equal(booted[(string)s!["id"]!], DistributedState.Host(s!)));
                return booted;
            }
            Assert.True(deadline.Elapsed < s_limit, $"boots not done after {deadline.Elapsed.TotalSeconds:F0} s: " +
                string.Join(", ", servers.GroupBy(s => $"{DistributedState.Status(s!)}/{DistributedState.TaskState(s!) ?? "-"}").Select(g => $"{g.Count()} {g.Key}")));
            await Task.Delay(250);
        }
    }

    /// <summary>Waits until every server has a final migration and no task_state; fails listing what is stuck.</summary>
    private async Task<Dictionary<string, JsonNode>> WaitForMovesAsync(Dictionary<string, string> sourceOf)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            var servers = (await _state.ServersAsync()).Where(s => sourceOf.ContainsKey((string)s!["id"]!)).ToDictionary(s => (string)s!["id"]!, s => s!);
            var migrations = (await _state.MigrationsAsync()).Where(m => sourceOf.ContainsKey((string)m["instance_uuid"]!)).ToList();
            var unfinished = migrations.Where(m => !DistributedState.IsFinal(m)).ToList();
            var busy = servers.Values.Where(s => DistributedState.TaskState(s) is not null).ToList();
            if (migrations.Count == Servers && unfinished.Count == 0 && busy.Count == 0)
            {
                return servers;
            }
            if (waited.Elapsed > s_limit)
            {
                Assert.Fail($"after {waited.Elapsed.TotalSeconds:F0} s, {migrations.Count} of {Servers} migrations exist; by status: " +
                    string.Join(", ", migrations.GroupBy(m => (string)m["status"]!).Select(g => $"{g.Count()} {g.Key}")) +
                    $"; stuck: {string.Join("; ", unfinished.Take(20).Select(DistributedState.DescribeMigration))}" +
                    $"; servers with a task_state: {string.Join("; ", busy.Take(20).Select(s => $"{s["id"]} {DistributedState.Describe(s)}"))}");
            }
            await Task.Delay(250);
        }
    }
}
