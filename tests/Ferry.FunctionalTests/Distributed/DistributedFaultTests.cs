using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Ferry.Host.Distributed;
using Ferry.Virt.Fake;

namespace Ferry.FunctionalTests.Distributed;

/// <summary>
/// Issue 10's faults and replica races in the distributed shape, with real processes: each test breaks one piece
/// (PostgreSQL, RabbitMQ, an api, conductor or compute process) in the middle of a move, or races two replicas, and
/// ends with the system quiet and consistent (<see cref="DistributedState.AssertQuietAndConsistentAsync"/>) and a
/// further move succeeding. They share one fixture and put back what they broke; they run alone (a dozen processes).
/// </summary>
[Collection(ProcessRestartCollection.Name)]
public sealed class DistributedFaultTests(DistributedFaultFixture fixture) : IClassFixture<DistributedFaultFixture>, IAsyncLifetime
{
    private readonly DistributedState _state = new(fixture);

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        fixture.DisarmCrash();
        fixture.Release();
        try
        {
            await _state.AssertQuietAndConsistentAsync();
        }
        finally
        {
            // A failed test leaves nothing for the next: every server confirmed and deleted.
            await _state.DeleteAllServersAsync();
        }
    }

    [Fact]
    public async Task LiveMigrate_SameServerThroughTwoApiReplicas_OneAcceptedOneConflict()
    {
        using var a = fixture.AdminOf("api-a");
        using var b = fixture.AdminOf("api-b");
        var id = await BootAsync("compute1");
        for (var round = 0; round < 5; round++)
        {
            var host = Host(await fixture.Admin.GetServerAsync(id));
            var dest = host == "compute1" ? "compute2" : "compute1";
            using var start = new SemaphoreSlim(0, 2);
            var first = SendAfterAsync(start, a, id, LiveMigrateBody(dest));
            var second = SendAfterAsync(start, b, id, LiveMigrateBody(dest));
            start.Release(2);
            var results = await Task.WhenAll(first, second);

            var statuses = results.Select(r => r.Status).Order().ToList();
            Assert.True(statuses.SequenceEqual([HttpStatusCode.Accepted, HttpStatusCode.Conflict]),
                $"round {round}: {string.Join(", ", results.Select(r => $"{(int)r.Status} {r.Body?.ToJsonString()}"))}");
            var conflict = results.Single(r => r.Status == HttpStatusCode.Conflict).Body!;
            // Nova's two 409s: the state check saw the other move (InstanceInvalidState), or the compare-and-swap lost to it.
            Assert.Equal(409, (int)conflict["conflictingRequest"]!["code"]!);
            var migration = await _state.WaitForMigrationAsync(id, DistributedState.IsFinal, "the accepted move to end");
            Assert.Equal("completed", (string)migration["status"]!);
            Assert.Equal(dest, Host(await _state.WaitForServerAsync(id, s => TaskState(s) is null, "task_state cleared")));
        }
        Assert.Equal(5, (await _state.MigrationsAsync(id)).Count);
        await DeleteAsync(id);
    }

    [Fact]
    public async Task LiveMigrate_BrokerDown_ApiReplicaAnswers503WithinItsWait()
    {
        var id = await BootAsync("compute1");
        using var api = fixture.AdminOf("api-a");
        await fixture.Launcher.RabbitMq.StopAsync();
        try
        {
            var watch = Stopwatch.StartNew();
            var (status, body) = await api.ActionAsync(id, LiveMigrateBody("compute2"));
            watch.Stop();

            Assert.True(status == HttpStatusCode.ServiceUnavailable, $"{(int)status} {body?.ToJsonString()}");
            Assert.Equal(503, (int)body!["serviceUnavailable"]!["code"]!);
            // An api process waits FerryHostOptions.ApiUnavailableWait (5 s) for the broker, not the 30 s the agents wait.
            Assert.InRange(watch.Elapsed, TimeSpan.FromSeconds(4), TimeSpan.FromSeconds(15));
        }
        finally
        {
            await fixture.Launcher.RabbitMq.StartAgainAsync();
        }
        var server = await fixture.Admin.GetServerAsync(id);
        Assert.Equal(("ACTIVE", null, "compute1"), (Status(server), TaskState(server), Host(server)));
        Assert.Empty(await _state.MigrationsAsync(id));

        // Every process reconnects by itself: the same request through the same replica now moves the server.
        await RetryUntilAcceptedAsync(api, id, LiveMigrateBody("compute2"));
        Assert.Equal("completed", (string)(await _state.WaitForMigrationAsync(id, DistributedState.IsFinal, "the move after the broker came back"))["status"]!);
        await DeleteAsync(id);
    }

    [Fact]
    public async Task LiveMigrate_PostgresRestartedMidMove_MoveCompletesAndApiAnswered503Meanwhile()
    {
        var id = await BootAsync("compute1", "m1.medium");
        using var api = fixture.AdminOf("api-a");
        Assert.Equal(HttpStatusCode.Accepted, (await fixture.Admin.ActionAsync(id, LiveMigrateBody("compute2"))).Status);
        await _state.WaitForMigrationAsync(id, m => (string?)m["status"] == "running", "running");

        await RestartPostgresAsync(api, id);

        var migration = await _state.WaitForMigrationAsync(id, DistributedState.IsFinal, "the move to end after PostgreSQL came back");
        Assert.Equal("completed", (string)migration["status"]!);
        Assert.Equal("compute2", Host(await _state.WaitForServerAsync(id, s => TaskState(s) is null, "task_state cleared")));
        await _state.AssertQuietAndConsistentAsync();
        await LiveMigrateAndWaitAsync(id, "compute1");
        await DeleteAsync(id);
    }

    [Fact]
    public async Task MigrateAndConfirm_PostgresRestartedMidMove_MoveFinishesAndApiAnswered503Meanwhile()
    {
        var id = await BootAsync("compute1");
        using var api = fixture.AdminOf("api-b");
        // The source holds its disk copy until PostgreSQL is down; the rest of the move then runs into the outage.
        fixture.Hold(FakeSteps.MigrateDiskAndPowerOff);
        Assert.Equal(HttpStatusCode.Accepted, (await fixture.Admin.ActionAsync(id, JsonNode.Parse("""{"migrate": {"host": "compute3"}}""")!)).Status);
        await fixture.WaitHeldAsync();

        await RestartPostgresAsync(api, id, whileDown: fixture.Release);

        var migration = await _state.WaitForMigrationAsync(id, m => (string?)m["status"] == "finished", "finished after PostgreSQL came back");
        var resized = await _state.WaitForServerAsync(id, s => Status(s) == "VERIFY_RESIZE", "VERIFY_RESIZE");
        Assert.Equal("compute3", Host(resized));
        Assert.Equal(HttpStatusCode.NoContent, (await fixture.Admin.ActionAsync(id, JsonNode.Parse("""{"confirmResize": null}""")!)).Status);
        await _state.WaitForMigrationAsync(id, m => (string?)m["status"] == "confirmed", "confirmed");
        // As in Nova, the compute marks the migration confirmed before it sets the server back to ACTIVE.
        await _state.WaitForServerAsync(id, s => Status(s) == "ACTIVE", "ACTIVE after the confirm");
        await _state.AssertQuietAndConsistentAsync();
        Assert.Equal((int)migration["id"]!, (int)(await _state.MigrationsAsync(id))[0]["id"]!);
        await LiveMigrateAndWaitAsync(id, "compute1");
        await DeleteAsync(id);
    }

    [Fact]
    public async Task LiveMigrate_ApiReplicaThatAcceptedItKilled_MoveCompletesThroughTheOthers()
    {
        var id = await BootAsync("compute1", "m1.medium");
        using (var api = fixture.AdminOf("api-a"))
        {
            Assert.Equal(HttpStatusCode.Accepted, (await api.ActionAsync(id, LiveMigrateBody("compute2"))).Status);
        }
        await _state.WaitForMigrationAsync(id, m => (string?)m["status"] is "running" or "completed", "running");
        await fixture.KillAsync("api-a");

        // The accepting replica's part ended with its cast: the conductor and the hosts finish the move without it.
        var migration = await _state.WaitForMigrationAsync(id, DistributedState.IsFinal, "the move to end without api-a");
        Assert.Equal("completed", (string)migration["status"]!);
        await fixture.RestartAsync("api-a");
        await _state.AssertQuietAndConsistentAsync();
        using (var api = fixture.AdminOf("api-a"))
        {
            Assert.Equal(HttpStatusCode.Accepted, (await api.ActionAsync(id, LiveMigrateBody("compute1"))).Status);
        }
        Assert.Equal("completed", (string)(await _state.WaitForMigrationAsync(id, m => (int)m["id"]! > (int)migration["id"]! && DistributedState.IsFinal(m),
            "the next move"))["status"]!);
        await DeleteAsync(id);
    }

    [Fact]
    public async Task LiveMigrate_ConductorKilledMidTask_OtherConductorRunsItAgainToTheEnd()
    {
        var id = await BootAsync("compute1");
        // Only conductor-1 consumes the conductor queue while the move arrives; the destination is frozen, so the
        // task waits in its call check_can_live_migrate_destination when conductor-1 dies.
        await fixture.KillAsync("conductor-2");
        await fixture.SignalAsync("compute2", "STOP");
        try
        {
            Assert.Equal(HttpStatusCode.Accepted, (await fixture.Admin.ActionAsync(id, LiveMigrateBody("compute2"))).Status);
            await WaitForAllocationOnAsync(id, "compute2");
            await fixture.RestartAsync("conductor-2");
            await fixture.KillAsync("conductor-1");
        }
        finally
        {
            await fixture.SignalAsync("compute2", "CONT");
        }

        // conductor-2 gets the unacknowledged message: it rolls back what conductor-1 began and runs the task again.
        var migrations = await WaitForMigrationsAsync(id, 2);
        Assert.Equal(("completed", "error"), ((string)migrations[0]["status"]!, (string)migrations[1]["status"]!));
        Assert.Equal("compute2", Host(await _state.WaitForServerAsync(id, s => TaskState(s) is null, "task_state cleared")));
        await fixture.RestartAsync("conductor-1");
        await _state.AssertQuietAndConsistentAsync();
        await LiveMigrateAndWaitAsync(id, "compute1");
        await DeleteAsync(id);
    }

    [Fact]
    public async Task LiveMigrate_SourceComputeKilledMidCopyAndStartedAgain_RolledBackOnSource()
    {
        var id = await BootAsync("compute1", "m1.medium");
        fixture.ArmCrash(FakeSteps.LiveMigrationRound);
        Assert.Equal(HttpStatusCode.Accepted, (await fixture.Admin.ActionAsync(id, LiveMigrateBody("compute2"))).Status);
        await WaitForExitAsync("compute1");
        fixture.DisarmCrash();
        await fixture.RestartAsync("compute1");

        // Start-up recovery on the source: destination cleaned, allocations back to the instance, guest resumed.
        var migration = await _state.WaitForMigrationAsync(id, DistributedState.IsFinal, "the move to end after the source came back");
        Assert.Equal("error", (string)migration["status"]!);
        var server = await _state.WaitForServerAsync(id, s => TaskState(s) is null, "task_state cleared");
        Assert.Equal(("ACTIVE", "compute1"), (Status(server), Host(server)));
        // The live_migration cast the killed agent never acknowledged comes back to it, after recovery ended the move: dropped.
        await WaitForLogAsync("compute1", $"compute_live_migration of instance {id} (migration {migration["uuid"]}) on compute1: not run");
        await _state.AssertQuietAndConsistentAsync();
        await LiveMigrateAndWaitAsync(id, "compute2");
        await DeleteAsync(id);
    }

    [Fact]
    public async Task Migrate_DestinationComputeKilledAtFinishAndStartedAgain_BackOnSource()
    {
        var id = await BootAsync("compute1");
        fixture.ArmCrash(FakeSteps.FinishMigration);
        Assert.Equal(HttpStatusCode.Accepted, (await fixture.Admin.ActionAsync(id, JsonNode.Parse("""{"migrate": {"host": "compute3"}}""")!)).Status);
        await WaitForExitAsync("compute3");
        fixture.DisarmCrash();
        await fixture.RestartAsync("compute3");

        // Start-up recovery on the destination: its copy dropped, the kept source copy runs again on compute1.
        var migration = await _state.WaitForMigrationAsync(id, DistributedState.IsFinal, "the move to end after the destination came back");
        Assert.Equal("error", (string)migration["status"]!);
        var server = await _state.WaitForServerAsync(id, s => TaskState(s) is null, "task_state cleared");
        Assert.Equal(("ACTIVE", "compute1"), (Status(server), Host(server)));
        // The finish_resize cast the killed agent never acknowledged comes back to it, after recovery ended the move: dropped.
        await WaitForLogAsync("compute3", $"compute_finish_resize of instance {id} (migration {migration["uuid"]}) on compute3: not run");
        await _state.AssertQuietAndConsistentAsync();
        await LiveMigrateAndWaitAsync(id, "compute3");
        await DeleteAsync(id);
    }

    [Fact]
    public async Task Boot_200AtOnceThroughTwoSchedulers_NoProviderOverCommitted()
    {
        const int Count = 200;
        const int RamMb = 8192;
        var (created, flavor) = await fixture.Admin.PostAsync("flavors", new JsonObject
        {
            ["flavor"] = new JsonObject { ["name"] = "fault.big", ["id"] = "fault-big", ["ram"] = RamMb, ["vcpus"] = 1, ["disk"] = 1 },
        });
        Assert.True(created == HttpStatusCode.OK, $"flavor: {(int)created} {flavor?.ToJsonString()}");
        var providers = await _state.ProvidersAsync();
        var fits = 0L;
        foreach (var provider in providers.Values)
        {
            var memory = (await _state.PlacementGetAsync($"resource_providers/{provider}/inventories"))["inventories"]!["MEMORY_MB"]!;
            fits += (long)(((long)memory["total"]! - (long)memory["reserved"]!) * (double)memory["allocation_ratio"]!) / RamMb;
        }
        Assert.InRange(fits, 1, Count - 1);

        // Every boot at once, spread over both api replicas by the shared port; both schedulers take select_destinations calls.
        var boots = Enumerable.Range(0, Count).Select(async i =>
        {
            var (status, body) = await fixture.Admin.PostAsync("servers", new JsonObject
            {
                ["server"] = new JsonObject { ["name"] = $"crowd-{i}", ["imageRef"] = "ferry-test-guest", ["flavorRef"] = "fault-big", ["networks"] = "none" },
            });
            Assert.True(status == HttpStatusCode.Accepted, $"boot {i}: {(int)status} {body?.ToJsonString()}");
            return (string)body!["server"]!["id"]!;
        });
        Assert.Equal(Count, (await Task.WhenAll(boots)).Distinct().Count());

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(120);
        JsonArray servers;
        while (true)
        {
            servers = await _state.ServersAsync();
            if (servers.Count == Count && servers.All(s => Status(s!) is "ACTIVE" or "ERROR" && TaskState(s!) is null))
            {
                break;
            }
            Assert.True(DateTime.UtcNow < deadline, $"boots not done: {string.Join(", ", servers.GroupBy(s => $"{Status(s!)}/{TaskState(s!)}").Select(g => $"{g.Key} {g.Count()}"))}");
            await Task.Delay(200);
        }
        foreach (var provider in providers)
        {
            var usage = await _state.UsagesAsync(provider.Value);
            var inventories = (await _state.PlacementGetAsync($"resource_providers/{provider.Value}/inventories"))["inventories"]!.AsObject();
            foreach (var (rc, inventory) in inventories)
            {
                var capacity = ((long)inventory!["total"]! - (long)inventory["reserved"]!) * (double)inventory["allocation_ratio"]!;
                Assert.True(usage.GetValueOrDefault(rc) <= capacity, $"{provider.Key} {rc}: {usage.GetValueOrDefault(rc)} used of {capacity}");
            }
        }
        var active = servers.Where(s => Status(s!) == "ACTIVE").ToList();
        var failed = servers.Where(s => Status(s!) == "ERROR").ToList();
        Assert.InRange(active.Count, 1, (int)fits);
        Assert.Equal(Count, active.Count + failed.Count);
        foreach (var server in failed)
        {
            Assert.Contains("No valid host", (string?)server!["fault"]?["message"] ?? "(no fault)", StringComparison.Ordinal);
            Assert.Null(Host(server));
            Assert.Empty((await _state.PlacementGetAsync($"allocations/{server["id"]}"))["allocations"]!.AsObject());
        }
        // Both scheduler processes took select_destinations calls: each turned some boots away.
        foreach (var scheduler in new[] { "scheduler-1", "scheduler-2" })
        {
            Assert.Contains(fixture.LogLines(scheduler), l => l.Contains("Got no allocation candidates", StringComparison.Ordinal)
                || l.Contains("Could not claim any", StringComparison.Ordinal));
        }
        // Usages equal exactly what the ACTIVE servers hold: no allocation leaked by a lost race.
        await _state.AssertQuietAndConsistentAsync();
        await _state.DeleteAllServersAsync();
        foreach (var provider in providers)
        {
            Assert.True((await _state.UsagesAsync(provider.Value)).GetValueOrDefault("MEMORY_MB") == 0, $"{provider.Key} still holds memory after every delete");
        }
    }

    private async Task WaitForLogAsync(string name, string text)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!fixture.LogLines(name).Any(l => l.Contains(text, StringComparison.Ordinal)))
        {
            Assert.True(DateTime.UtcNow < deadline, $"{name} never logged \"{text}\":\n{fixture.LogTail(name)}");
            await Task.Delay(50);
        }
    }

    private async Task WaitForExitAsync(string name)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!fixture.Child(name).HasExited)
        {
            Assert.True(DateTime.UtcNow < deadline, $"{name} never reached its crash point:\n{fixture.LogTail(name)}");
            await Task.Delay(25);
        }
    }

    private async Task WaitForAllocationOnAsync(string id, string host)
    {
        var provider = (await _state.ProvidersAsync())[host];
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!(await _state.PlacementGetAsync($"allocations/{id}"))["allocations"]!.AsObject().ContainsKey(provider))
        {
            Assert.True(DateTime.UtcNow < deadline, $"{id} never got a claim on {host}");
            await Task.Delay(25);
        }
    }

    /// <summary>Waits until the instance has <paramref name="count"/> migrations, all final; newest first.</summary>
    private async Task<List<JsonNode>> WaitForMigrationsAsync(string id, int count)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (true)
        {
            var migrations = await _state.MigrationsAsync(id);
            if (migrations.Count >= count && migrations.All(DistributedState.IsFinal))
            {
                return migrations;
            }
            Assert.True(DateTime.UtcNow < deadline, $"migrations of {id}: {string.Join("; ", migrations.Select(DistributedState.DescribeMigration))}");
            await Task.Delay(50);
        }
    }

    /// <summary>
    /// Stops PostgreSQL (fast shutdown, as `systemctl restart` does), checks that an api replica answers a read with
    /// Nova's 503 within its bounded wait, and starts the server again on the same data directory and port.
    /// </summary>
    private async Task RestartPostgresAsync(NovaClient api, string id, Action? whileDown = null)
    {
        var postgres = fixture.Launcher.Postgres;
        postgres.Stop();
        try
        {
            whileDown?.Invoke();
            var watch = Stopwatch.StartNew();
            var (status, body) = await api.GetAsync($"servers/{id}");
            watch.Stop();
            Assert.True(status == HttpStatusCode.ServiceUnavailable, $"GET server while PostgreSQL is down: {(int)status} {body?.ToJsonString()}");
            Assert.Equal(503, (int)body!["serviceUnavailable"]!["code"]!);
            Assert.Contains("Cannot reach the database", (string)body["serviceUnavailable"]!["message"]!, StringComparison.Ordinal);
            Assert.InRange(watch.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(15));
        }
        finally
        {
            LocalPostgres.Start(postgres.Directory, postgres.Port);
        }
    }

    private async Task LiveMigrateAndWaitAsync(string id, string dest)
    {
        var before = (await _state.MigrationsAsync(id)).Select(m => (int)m["id"]!).DefaultIfEmpty(0).Max();
        var (status, body) = await fixture.Admin.ActionAsync(id, LiveMigrateBody(dest));
        Assert.True(status == HttpStatusCode.Accepted, $"live migrate: {(int)status} {body?.ToJsonString()}");
        var migration = await _state.WaitForMigrationAsync(id, m => (int)m["id"]! > before && DistributedState.IsFinal(m), "the next move to end");
        Assert.Equal("completed", (string)migration["status"]!);
        Assert.Equal(dest, Host(await _state.WaitForServerAsync(id, s => TaskState(s) is null, "task_state cleared")));
    }

    private static async Task RetryUntilAcceptedAsync(NovaClient api, string id, JsonNode body)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            var (status, response) = await api.ActionAsync(id, body);
            if (status == HttpStatusCode.Accepted)
            {
                return;
            }
            Assert.True(status == HttpStatusCode.ServiceUnavailable && DateTime.UtcNow < deadline, $"{(int)status} {response?.ToJsonString()}");
            await Task.Delay(200);
        }
    }

    private static async Task<(HttpStatusCode Status, JsonNode? Body)> SendAfterAsync(SemaphoreSlim start, NovaClient client, string id, JsonNode body)
    {
        await start.WaitAsync();
        return await client.ActionAsync(id, body);
    }

    private static JsonNode LiveMigrateBody(string? host) =>
        new JsonObject { ["os-migrateLive"] = new JsonObject { ["host"] = host, ["block_migration"] = "auto" } };

    private async Task<string> BootAsync(string host, string flavor = "m1.tiny", NovaClient? client = null)
    {
        var request = new JsonObject
        {
            ["server"] = new JsonObject
            {
                ["name"] = "fault",
                ["imageRef"] = "ferry-test-guest",
                ["flavorRef"] = flavor,
                ["networks"] = "none",
                ["availability_zone"] = $"nova:{host}",
            },
        };
        var (status, body) = await (client ?? fixture.Admin).PostAsync("servers", request);
        Assert.True(status == HttpStatusCode.Accepted, $"boot: {(int)status} {body?.ToJsonString()}");
        var id = (string)body!["server"]!["id"]!;
        await _state.WaitForServerAsync(id, s => Status(s) == "ACTIVE" && TaskState(s) is null, "ACTIVE after boot");
        return id;
    }

    private async Task DeleteAsync(string id)
    {
        var (status, body) = await fixture.Admin.SendAsync(HttpMethod.Delete, $"servers/{id}");
        Assert.True(status == HttpStatusCode.NoContent, $"delete: {(int)status} {body?.ToJsonString()}");
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while ((await fixture.Admin.GetAsync($"servers/{id}")).Status != HttpStatusCode.NotFound)
        {
            Assert.True(DateTime.UtcNow < deadline, $"server {id} not deleted");
            await Task.Delay(50);
        }
    }

    private static string Status(JsonNode server) => DistributedState.Status(server);

    private static string? TaskState(JsonNode server) => DistributedState.TaskState(server);

    private static string? Host(JsonNode server) => DistributedState.Host(server);
}
