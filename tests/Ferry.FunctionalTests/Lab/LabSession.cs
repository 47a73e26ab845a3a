using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Ferry.Virt.Qemu;

namespace Ferry.FunctionalTests.Lab;

/// <summary>
/// What a lab test does through the APIs, as an operator would: boot a guest with a port and a config drive, move it
/// and wait for the move's end, prove its memory from its console, find its QEMU processes, and at the end check that
/// ports, taps and servers agree on every host before deleting the servers it booted and the volumes it made.
/// </summary>
public sealed class LabSession(NetnsLabFixture fixture) : IAsyncDisposable
{
    private const int KibPerTick = 11; // 1 MiB/s, the test guest's rate here
    private readonly List<string> _servers = [];
    private readonly List<string> _volumes = [];

    private NovaClient Admin => fixture.Admin;

    public async ValueTask DisposeAsync()
    {
        try
        {
            await AssertTapsMatchGuestsAsync();
        }
        finally
        {
            foreach (var id in _servers)
            {
                await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}");
            }
            foreach (var id in _servers)
            {
                await WaitAsync(async () => (await Admin.GetAsync($"servers/{id}")).Status == HttpStatusCode.NotFound, $"{id} deleted");
            }
            // A server's delete lets go of its volumes (they are available again); then they go too.
            foreach (var id in _volumes)
            {
                await WaitAsync(async () => (string?)(await VolumeAsync(id))?["status"] is null or "available" or "error", $"volume {id} let go");
                using var response = await fixture.Volume.DeleteAsync($"volumes/{id}");
                Assert.True(response.StatusCode is HttpStatusCode.Accepted or HttpStatusCode.NotFound,
                    $"volume delete: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                await WaitAsync(async () => await VolumeAsync(id) is null, $"volume {id} deleted");
            }
        }
    }

    public Task<(string Id, IPAddress Address)> BootAsync(string host, int regionMib = QemuTestGuest.DefaultRegionMib) =>
        BootAsync(host, regionMib, rootVolume: null);

    /// <summary>A guest booted from a new volume made from the test image: its root disk is the storage daemon's export (/dev/vda).</summary>
    public async Task<(string Id, IPAddress Address, string VolumeId)> BootFromVolumeAsync(string host, int regionMib = QemuTestGuest.DefaultRegionMib)
    {
        var volumeId = await CreateVolumeAsync(Ferry.Host.Seed.TestImageId);
        var (id, address) = await BootAsync(host, regionMib, volumeId);
        return (id, address, volumeId);
    }

    private async Task<(string Id, IPAddress Address)> BootAsync(string host, int regionMib, string? rootVolume)
    {
        var server = new JsonObject
        {
            ["name"] = "lab",
            ["imageRef"] = rootVolume is null ? "ferry-test-guest" : "",
            ["flavorRef"] = "m1.nano",
            ["networks"] = "auto",
            ["config_drive"] = true,
            ["availability_zone"] = $"nova:{host}",
            ["metadata"] = new JsonObject
            {
                [QemuTestGuest.DirtyRateMetadataKey] = "1",
                [QemuTestGuest.RegionMetadataKey] = regionMib.ToString(System.Globalization.CultureInfo.InvariantCulture),
            },
        };
        if (rootVolume is not null)
        {
            server["block_device_mapping_v2"] = new JsonArray(new JsonObject
            {
                ["boot_index"] = 0,
                ["uuid"] = rootVolume,
                ["source_type"] = "volume",
                ["destination_type"] = "volume",
            });
        }
        var (status, body) = await Admin.PostAsync("servers", new JsonObject { ["server"] = server });
        Assert.True(status == HttpStatusCode.Accepted, $"boot: {(int)status} {body?.ToJsonString()}");
        var id = (string)body!["server"]!["id"]!;
        _servers.Add(id);
        var booted = await WaitForServerAsync(id, s => (string?)s["status"] is "ACTIVE" or "ERROR" && TaskState(s) is null, "ACTIVE after boot", TimeSpan.FromMinutes(2));
        Assert.True((string?)booted["status"] == "ACTIVE", $"boot: {booted.ToJsonString()}");
        var address = (string)booted["addresses"]!["private"]![0]!["addr"]!;
        return (id, IPAddress.Parse(address));
    }

    /// <summary>A 1 GiB volume (made from <paramref name="imageRef"/>, or blank), once it is available; deleted at the end.</summary>
    public async Task<string> CreateVolumeAsync(string? imageRef = null)
    {
        var volume = new JsonObject { ["size"] = 1, ["name"] = "lab" };
        if (imageRef is not null)
        {
            volume["imageRef"] = imageRef;
        }
        using var response = await fixture.Volume.PostAsync("volumes", JsonContent(new JsonObject { ["volume"] = volume }));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"volume create: {(int)response.StatusCode} {text}");
        var id = (string)JsonNode.Parse(text)!["volume"]!["id"]!;
        _volumes.Add(id);
        JsonNode? last = null;
        await WaitAsync(async () => (string?)(last = await VolumeAsync(id))?["status"] == "available", () => $"volume {id} available ({last?.ToJsonString()})", TimeSpan.FromMinutes(2));
        return id;
    }

    /// <summary>The volume as the volume API shows it to an admin (its attachments with their hosts), or null when it is gone.</summary>
    public async Task<JsonNode?> VolumeAsync(string volumeId)
    {
        using var response = await fixture.Volume.GetAsync($"volumes/{volumeId}");
        var text = await response.Content.ReadAsStringAsync();
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"volume {volumeId}: {(int)response.StatusCode} {text}");
        return JsonNode.Parse(text)!["volume"];
    }

    /// <summary>Every attachment of the volume, whatever its status, with its connection info.</summary>
    public async Task<List<JsonNode>> AttachmentsAsync(string volumeId)
    {
        var text = await fixture.Volume.GetStringAsync($"attachments/detail?volume_id={volumeId}");
        return [.. JsonNode.Parse(text)!["attachments"]!.AsArray().Select(a => a!)];
    }

    /// <summary>Attaches the volume through the compute API (os-volume_attachments) and waits until it is in-use.</summary>
    public async Task AttachVolumeAsync(string serverId, string volumeId)
    {
        var (status, body) = await Admin.PostAsync($"servers/{serverId}/os-volume_attachments",
            new JsonObject { ["volumeAttachment"] = new JsonObject { ["volumeId"] = volumeId } });
        Assert.True(status == HttpStatusCode.OK, $"attach: {(int)status} {body?.ToJsonString()}");
        JsonNode? last = null;
        await WaitAsync(async () => (string?)(last = await VolumeAsync(volumeId))?["status"] == "in-use", () => $"volume {volumeId} in-use ({last?.ToJsonString()})");
    }

    /// <summary>The volume is in-use by the server through exactly one attachment, attached, of <paramref name="host"/>.</summary>
    public async Task AssertAttachedOnlyOnAsync(string volumeId, string serverId, string host)
    {
        JsonNode? volume = null;
        List<JsonNode> attachments = [];
        await WaitAsync(async () =>
        {
            volume = await VolumeAsync(volumeId);
            attachments = await AttachmentsAsync(volumeId);
            return (string?)volume?["status"] == "in-use" && attachments.Count == 1 && (string?)attachments[0]["status"] == "attached"
                && volume!["attachments"]!.AsArray() is [{ } seen] && (string?)seen["host_name"] == host && (string?)seen["server_id"] == serverId;
        }, () => $"volume {volumeId} in-use by {serverId} on {host} only (volume: {volume?.ToJsonString()}; attachments: {string.Join(", ", attachments.Select(a => a.ToJsonString()))})",
            TimeSpan.FromSeconds(30));
    }

    private static StringContent JsonContent(JsonNode body) => new(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json");

    /// <summary>Starts a move and waits for its migration record to reach a final status (or <c>finished</c> for a resize), and the task to clear.</summary>
    public async Task<JsonNode> MoveAsync(string id, JsonObject action, HttpStatusCode expected = HttpStatusCode.Accepted)
    {
        var before = (await MigrationsAsync(id)).Select(m => (int)m["id"]!).DefaultIfEmpty(0).Max();
        var (status, body) = await Admin.ActionAsync(id, action);
        Assert.True(status == expected, $"{action.First().Key}: {(int)status} {body?.ToJsonString()}");
        JsonNode? migration = null;
        await WaitAsync(async () =>
        {
            migration = (await MigrationsAsync(id)).FirstOrDefault(m => (int)m["id"]! > before);
            return migration is not null && IsFinal(migration);
        }, "the move to end", TimeSpan.FromMinutes(3));
        await WaitForServerAsync(id, s => TaskState(s) is null, "task_state cleared");
        return migration!;
    }

    public async Task<JsonNode> WaitForFinalMigrationAsync(string id, TimeSpan limit)
    {
        JsonNode? migration = null;
        await WaitAsync(async () => (migration = (await MigrationsAsync(id)).FirstOrDefault()) is { } m && IsFinal(m), "the move to end", limit);
        return migration!;
    }

    public static bool IsFinal(JsonNode migration) =>
        (string?)migration["status"] is "completed" or "error" or "failed" or "cancelled" or "confirmed" or "reverted" or "done" or "finished";

    public async Task<List<JsonNode>> MigrationsAsync(string id)
    {
        var (status, body) = await Admin.GetAsync($"os-migrations?instance_uuid={id}", "2.80");
        Assert.True(status == HttpStatusCode.OK, $"os-migrations: {(int)status} {body?.ToJsonString()}");
        return [.. body!["migrations"]!.AsArray().Select(m => m!).OrderByDescending(m => (int)m["id"]!)];
    }

    public async Task<JsonNode> WaitForServerAsync(string id, Func<JsonNode, bool> condition, string what, TimeSpan? limit = null)
    {
        JsonNode? server = null;
        await WaitAsync(async () =>
        {
            var (status, body) = await Admin.GetAsync($"servers/{id}", "2.95");
            server = status == HttpStatusCode.OK ? body!["server"] : server;
            return server is not null && condition(server);
        }, () => $"{what} (server: {server?.ToJsonString()})", limit);
        return server!;
    }

    public static string? TaskState(JsonNode server) => (string?)server["OS-EXT-STS:task_state"];

    public static Task WaitAsync(Func<Task<bool>> condition, string what, TimeSpan? limit = null) => WaitAsync(condition, () => what, limit);

    /// <summary>Polls until the condition holds; <paramref name="what"/> is read at the end, so it can tell the last state seen.</summary>
    public static async Task WaitAsync(Func<Task<bool>> condition, Func<string> what, TimeSpan? limit = null)
    {
        var deadline = DateTime.UtcNow + (limit ?? TimeSpan.FromSeconds(90));
        while (!await condition())
        {
            if (DateTime.UtcNow >= deadline)
            {
                Assert.Fail($"waited in vain for {what()}");
            }
            await Task.Delay(100);
        }
    }

    /// <summary>
    /// Waits until the guest's console (through the API, as an operator reads it) shows a counter above
    /// <paramref name="above"/> with every line the closed form, allowing what QemuTestGuest.CheckIntegrity allows a
    /// guest that crossed a live migration under TCG (a stale page that heals within one pass over its region).
    /// </summary>
    public async Task WaitForIntactConsoleAsync(string id, long above, int regionMib = QemuTestGuest.DefaultRegionMib)
    {
        var limit = TimeSpan.FromSeconds(60 + QemuTestGuest.HealingTicks(regionMib, KibPerTick) / (double)QemuTestGuest.TicksPerSecond);
        var verdict = (QemuTestGuest.Integrity.Healing, (string?)"no line yet");
        await WaitAsync(async () =>
        {
            var (status, body) = await Admin.ActionAsync(id, JsonNode.Parse("""{"os-getConsoleOutput": {"length": 400}}""")!);
            Assert.True(status == HttpStatusCode.OK, $"console: {(int)status} {body?.ToJsonString()}");
            var log = (string)body!["output"]!;
            verdict = QemuTestGuest.CheckIntegrity(log, regionMib, KibPerTick, tolerateStalePage: true, movedAtCounter: 0);
            Assert.True(verdict.Item1 != QemuTestGuest.Integrity.Lost, $"{verdict.Item2}: {log}");
            var samples = QemuTestGuest.ParseSamples(log);
            return verdict.Item1 == QemuTestGuest.Integrity.Intact && samples.Count > 0 && samples[^1].Counter > above;
        }, () => $"an intact counter above {above} ({verdict.Item2})", limit);
    }

    public static void AssertIntact(ProbeReply reply, int regionMib = QemuTestGuest.DefaultRegionMib) =>
        Assert.True(reply.Checksum == QemuTestGuest.ExpectedChecksum(reply.ChecksumCounter, regionMib, KibPerTick),
            $"the guest's checksum at counter {reply.ChecksumCounter} is {reply.Checksum:x8}, not the closed form");

    public async Task AssertRunsOnlyOnAsync(string id, string host)
    {
        // The source's copy ends a moment after the move is reported: give it a few seconds.
        IReadOnlyList<(int Pid, string Host)> processes = [];
        await WaitAsync(() => Task.FromResult((processes = fixture.QemuProcessesOf(id)).Count == 1),
            () => $"one QEMU of {id} (running: {string.Join(", ", processes.Select(p => $"{p.Pid} on {p.Host}"))})", TimeSpan.FromSeconds(20));
        Assert.Equal(host, processes[0].Host);
        var provider = (await fixture.ProvidersAsync())[host];
        JsonObject allocations = [];
        await WaitAsync(async () => (allocations = await fixture.AllocationsAsync(id)).Count == 1 && allocations.ContainsKey(provider),
            () => $"the allocations of {id} on {host} only ({provider}): {allocations.ToJsonString()}", TimeSpan.FromSeconds(20));
    }

    /// <summary>
    /// Every server's port is bound to the host that runs it, and every tap in a host's namespace is on its bridge and
    /// serves a port bound to that host whose server runs there (and each such port has its tap).
    /// </summary>
    public async Task AssertTapsMatchGuestsAsync()
    {
        var (status, body) = await Admin.GetAsync("servers/detail?all_tenants=1", "2.95");
        Assert.Equal(HttpStatusCode.OK, status);
        var ports = JsonNode.Parse(await fixture.Network.GetStringAsync("ports"));
        var problems = new List<string>();
        foreach (var port in ports!["ports"]!.AsArray().Where(p => ((string?)p!["device_owner"] ?? "").StartsWith("compute:", StringComparison.Ordinal)))
        {
            var server = body!["servers"]!.AsArray().FirstOrDefault(s => (string?)s!["id"] == (string?)port!["device_id"]);
            if (server is null || (string?)port!["binding:host_id"] != (string?)server["OS-EXT-SRV-ATTR:host"])
            {
                problems.Add($"port {(string?)port!["id"]} is bound to {(string?)port["binding:host_id"]}, its server {(string?)port["device_id"]} runs on {(string?)server?["OS-EXT-SRV-ATTR:host"] ?? "no host"}");
            }
        }
        for (var host = 1; host <= fixture.Lab.Hosts; host++)
        {
            var name = $"compute{host}";
            var expected = ports!["ports"]!.AsArray()
                .Where(p => (string?)p!["binding:host_id"] == name && body!["servers"]!.AsArray().Any(s => (string?)s!["id"] == (string?)p["device_id"] && (string?)s["OS-EXT-SRV-ATTR:host"] == name))
                .Select(p => "tap" + ((string)p!["id"]!)[..11]).ToHashSet();
            foreach (var (tap, bridge) in await fixture.TapsOfAsync(host))
            {
                if (!expected.Remove(tap) || bridge != "ferrybr0")
                {
                    problems.Add($"{name}: tap {tap} (on {bridge ?? "no bridge"}) serves no guest of {name}");
                }
            }
            problems.AddRange(expected.Select(t => $"{name}: no tap {t} for a guest it runs"));
        }
        Assert.True(problems.Count == 0, string.Join("; ", problems));
    }
}
