using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Ferry.FunctionalTests.Distributed;

/// <summary>
/// What the fault tests read of the distributed shape from outside, as an operator would: servers and migrations
/// through the compute API, usages through placement, and the fake hypervisors' state from each compute host's guest
/// definitions on disk. <see cref="AssertQuietAndConsistentAsync"/> is the distributed form of <see cref="Invariants"/>.
/// </summary>
public sealed class DistributedState(DistributedFaultFixture fixture)
{
    private static readonly string[] s_finalStatuses = ["completed", "error", "failed", "cancelled", "confirmed", "reverted", "done"];

    private NovaClient Admin => fixture.Admin;

    public async Task<JsonArray> ServersAsync()
    {
        var (status, body) = await Admin.GetAsync("servers/detail?all_tenants=1&limit=1000");
        Assert.True(status == HttpStatusCode.OK, $"servers: {(int)status} {body?.ToJsonString()}");
        return body!["servers"]!.AsArray();
    }

    public async Task<JsonNode> ServerAsync(string id) => await Admin.GetServerAsync(id);

    /// <summary>The instance's migrations, newest first.</summary>
    public async Task<List<JsonNode>> MigrationsAsync(string? instance = null)
    {
        var (status, body) = await Admin.GetAsync(instance is null ? "os-migrations" : $"os-migrations?instance_uuid={instance}", "2.80");
        Assert.True(status == HttpStatusCode.OK, $"os-migrations: {(int)status} {body?.ToJsonString()}");
        return [.. body!["migrations"]!.AsArray().Select(m => m!).OrderByDescending(m => (int)m["id"]!)];
    }

    /// <summary>Polls the server until <paramref name="condition"/> holds; fails naming what it waited for.</summary>
    public async Task<JsonNode> WaitForServerAsync(string id, Func<JsonNode, bool> condition, string what, TimeSpan? limit = null)
    {
        var deadline = DateTime.UtcNow + (limit ?? TimeSpan.FromSeconds(60));
        JsonNode? server = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                var (status, body) = await Admin.GetAsync($"servers/{id}");
                server = status == HttpStatusCode.OK ? body!["server"] : server;
                if (server is not null && condition(server))
                {
                    return server;
                }
            }
            catch (HttpRequestException)
            {
                // A replica going away mid-request: ask again.
            }
            await Task.Delay(50);
        }
        Assert.Fail($"Waiting for {what}: server {id} is {Describe(server)}; migrations {string.Join("; ", (await MigrationsAsync(id)).Select(DescribeMigration))}");
        return null!;
    }

    /// <summary>Polls the instance's newest migration until <paramref name="condition"/> holds.</summary>
    public async Task<JsonNode> WaitForMigrationAsync(string id, Func<JsonNode, bool> condition, string what, TimeSpan? limit = null)
    {
        var deadline = DateTime.UtcNow + (limit ?? TimeSpan.FromSeconds(60));
        JsonNode? newest = null;
        while (DateTime.UtcNow < deadline)
        {
            newest = (await MigrationsAsync(id)).FirstOrDefault();
            if (newest is not null && condition(newest))
            {
                return newest;
            }
            await Task.Delay(20);
        }
        Assert.Fail($"Waiting for {what}: newest migration of {id} is {(newest is null ? "none" : DescribeMigration(newest))}");
        return null!;
    }

    /// <summary>Confirms every unconfirmed resize and deletes every server, waiting until they are gone.</summary>
    public async Task DeleteAllServersAsync()
    {
        var servers = await ServersAsync();
        foreach (var server in servers.Where(s => Status(s!) == "VERIFY_RESIZE"))
        {
            await Admin.ActionAsync((string)server!["id"]!, JsonNode.Parse("""{"confirmResize": null}""")!);
        }
        foreach (var server in servers)
        {
            await Admin.SendAsync(HttpMethod.Delete, $"servers/{server!["id"]}");
        }
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while ((await ServersAsync()).Count > 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }
    }

    public static string Status(JsonNode server) => (string)server["status"]!;

    public static string? TaskState(JsonNode server) => (string?)server["OS-EXT-STS:task_state"];

    public static string? Host(JsonNode server) => (string?)server["OS-EXT-SRV-ATTR:host"];

    public static string Describe(JsonNode? server) => server is null ? "unknown" : $"{Status(server)} task_state {TaskState(server) ?? "-"} host {Host(server) ?? "-"}";

    public static string DescribeMigration(JsonNode m) => $"{m["id"]} {m["migration_type"]} {m["status"]} {m["source_compute"]}→{m["dest_compute"]}";

    public static bool IsFinal(JsonNode migration) => s_finalStatuses.Contains((string)migration["status"]!);

    /// <summary>
    /// Waits until no server has a task_state and every migration is final, then checks, per compute host: placement's
    /// usage equals the flavors of the servers there; each ACTIVE server's guest runs on its host and nowhere else; no
    /// host defines a guest the database does not place there.
    /// </summary>
    public async Task AssertQuietAndConsistentAsync(TimeSpan? limit = null)
    {
        var deadline = DateTime.UtcNow + (limit ?? TimeSpan.FromSeconds(60));
        JsonArray servers;
        while (true)
        {
            servers = await ServersAsync();
            var busy = servers.Where(s => TaskState(s!) is not null).Select(s => $"{s!["id"]} {Describe(s)}")
                .Concat((await MigrationsAsync()).Where(m => !IsFinal(m)).Select(DescribeMigration)).ToList();
            if (busy.Count == 0)
            {
                break;
            }
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail("Not quiet: " + string.Join("; ", busy));
            }
            await Task.Delay(100);
        }
        await AssertPlacementMatchesAsync(servers);
        AssertGuestsMatch(servers);
    }

    private async Task AssertPlacementMatchesAsync(JsonArray servers)
    {
        foreach (var (host, uuid) in await ProvidersAsync())
        {
            var expected = new Dictionary<string, long> { ["VCPU"] = 0, ["MEMORY_MB"] = 0, ["DISK_GB"] = 0 };
            foreach (var server in servers.Where(s => Host(s!) == host))
            {
                var flavor = server!["flavor"]!;
                expected["VCPU"] += (long)flavor["vcpus"]!;
                expected["MEMORY_MB"] += (long)flavor["ram"]!;
                expected["DISK_GB"] += (long)flavor["disk"]!;
            }
            var usages = await UsagesAsync(uuid);
            foreach (var (rc, amount) in expected)
            {
                Assert.True(usages.GetValueOrDefault(rc) == amount, $"{host} {rc}: placement says {usages.GetValueOrDefault(rc)}, the servers there hold {amount}");
            }
        }
    }

    /// <summary>Compute hosts' resource providers: name → uuid.</summary>
    public async Task<Dictionary<string, string>> ProvidersAsync()
    {
        var providers = await PlacementGetAsync("resource_providers");
        return providers["resource_providers"]!.AsArray().ToDictionary(p => (string)p!["name"]!, p => (string)p!["uuid"]!);
    }

    public async Task<Dictionary<string, long>> UsagesAsync(string provider) =>
        (await PlacementGetAsync($"resource_providers/{provider}/usages"))["usages"]!.AsObject().ToDictionary(u => u.Key, u => (long)u.Value!);

    public async Task<JsonNode> PlacementGetAsync(string path)
    {
        using var response = await fixture.Placement.GetAsync(path);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"placement GET {path}: {(int)response.StatusCode} {text}");
        return JsonNode.Parse(text)!;
    }

    /// <summary>The guests compute host <paramref name="host"/> defines, with their power state, from its definition files.</summary>
    public Dictionary<string, string> GuestsOn(string host)
    {
        var directory = fixture.GuestDirectory(host);
        var guests = new Dictionary<string, string>();
        if (!Directory.Exists(directory))
        {
            return guests;
        }
        foreach (var file in Directory.EnumerateFiles(directory, "*.json"))
        {
            var name = Path.GetFileNameWithoutExtension(file);
            if (name.EndsWith("_resize", StringComparison.Ordinal))
            {
                continue;
            }
            using var document = JsonDocument.Parse(File.ReadAllText(file));
            var power = document.RootElement.EnumerateObject().First(p => p.Name.Equals("power_state", StringComparison.OrdinalIgnoreCase)
                || p.Name.Equals("PowerState", StringComparison.Ordinal)).Value.ToString();
            guests[name] = power;
        }
        return guests;
    }

    private void AssertGuestsMatch(JsonArray servers)
    {
        var byId = servers.ToDictionary(s => (string)s!["id"]!, s => s!);
        var hosts = Enumerable.Range(1, fixture.HostCount).Select(i => $"compute{i}").ToList();
        var defined = hosts.ToDictionary(h => h, GuestsOn);
        foreach (var (id, server) in byId.Where(s => Status(s.Value) == "ACTIVE"))
        {
            var running = hosts.Where(h => defined[h].TryGetValue(id, out var power) && IsRunning(power)).ToList();
            Assert.True(running.SequenceEqual([Host(server)!]), $"server {id} on {Host(server)} runs on [{string.Join(", ", running)}]");
        }
        foreach (var (host, guests) in defined)
        {
            foreach (var (id, power) in guests)
            {
                Assert.True(byId.TryGetValue(id, out var server) && Host(server) == host,
                    $"{host} defines guest {id} ({power}) but the database places it on {(server is null ? "no host (deleted)" : Host(server))}");
            }
        }
    }

    private static bool IsRunning(string power) => power is "Running" or "running" or "1";
}
