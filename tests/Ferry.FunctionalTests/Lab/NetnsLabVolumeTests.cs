using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Ferry.Virt.Qemu;
using Xunit.Abstractions;

namespace Ferry.FunctionalTests.Lab;

/// <summary>
/// Volumes between namespace hosts: the volume service's qemu-storage-daemon exports each volume over NBD on the
/// controller's address, and each host's QEMU opens the export across its link. A guest booted from a volume moves its
/// memory only, and its attachment follows it; a destination that cannot reach the export refuses the guest in
/// pre_live_migration, leaving nothing behind, while the guest runs on with its volume on the source.
/// </summary>
[Collection("qemu")]
[Trait("Requires", "qemu")]
public sealed class NetnsLabVolumeTests(NetnsLabFixture fixture, ITestOutputHelper output) : IClassFixture<NetnsLabFixture>, IAsyncLifetime
{
    private static readonly TimeSpan s_probeInterval = TimeSpan.FromMilliseconds(10);
    private readonly LabSession _lab = new(fixture);

    private NovaClient Admin => fixture.Admin;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _lab.DisposeAsync();

    [Fact]
    public async Task LiveMigrate_BootFromVolumeAcrossTheLink_OnlyMemoryCrossesAndTheAttachmentFollows()
    {
        // 16 MiB written over a 40 Mbit/s link: a few seconds of copy, so the move is seen running more than once.
        const int regionMib = 16;
        var (id, address, volumeId) = await _lab.BootFromVolumeAsync("compute1", regionMib);
        await using var prober = TestGuestProber.Start(address, s_probeInterval, TimeSpan.FromMinutes(4));
        var first = await prober.WaitForReplyAsync(TimeSpan.Zero, TimeSpan.FromSeconds(60), CancellationToken.None);
        LabSession.AssertIntact(first, regionMib);
        await _lab.AssertAttachedOnlyOnAsync(volumeId, id, "compute1");

        var movedAt = prober.Elapsed;
        var samples = new List<JsonNode>();
        await fixture.Lab.ShapeLinkAsync(2, 40, CancellationToken.None);
        try
        {
            var (status, body) = await Admin.ActionAsync(id, new JsonObject { ["os-migrateLive"] = new JsonObject { ["host"] = "compute2", ["block_migration"] = "auto" } });
            Assert.True(status == HttpStatusCode.Accepted, $"live migrate: {(int)status} {body?.ToJsonString()}");
            // Disk bytes show only while the move runs (GET /servers/{id}/migrations lists the ones in progress).
            JsonNode? migration = null;
            await LabSession.WaitAsync(async () =>
            {
                var (_, running) = await Admin.GetAsync($"servers/{id}/migrations", "2.80");
                samples.AddRange(running?["migrations"]?.AsArray().OfType<JsonNode>().Where(m => (long?)m["memory_processed_bytes"] > 0).Select(m => m.DeepClone()) ?? []);
                migration = (await _lab.MigrationsAsync(id)).FirstOrDefault();
                return migration is not null && LabSession.IsFinal(migration);
            }, () => $"the move to end ({migration?.ToJsonString()})", TimeSpan.FromMinutes(2));
            Assert.Equal("completed", (string?)migration!["status"]);
        }
        finally
        {
            await fixture.Lab.ShapeLinkAsync(2, NetnsLabFixture.LinkMbit, CancellationToken.None);
        }
        var server = await _lab.WaitForServerAsync(id, s => LabSession.TaskState(s) is null, "task_state cleared");
        var after = await prober.WaitForReplyAsync(prober.Elapsed, TimeSpan.FromSeconds(20), CancellationToken.None);

        Assert.Equal("compute2", (string?)server["OS-EXT-SRV-ATTR:host"]);
        Assert.True(samples.Count > 0, "the move was never seen running");
        Assert.All(samples, s => Assert.True((long?)s["disk_total_bytes"] is null or 0 && (long?)s["disk_processed_bytes"] is null or 0,
            $"disk bytes crossed the link: {s.ToJsonString()}"));
        Assert.True(after.Counter > first.Counter, $"the counter went on: {first.Counter} → {after.Counter}");
        await _lab.WaitForIntactConsoleAsync(id, after.Counter, regionMib);
        await _lab.AssertRunsOnlyOnAsync(id, "compute2");
        await _lab.AssertAttachedOnlyOnAsync(volumeId, id, "compute2");
        var (gap, at) = prober.LongestGap(movedAt);
        output.WriteLine($"boot-from-volume live migration over 40 Mbit/s: seen running {samples.Count} times, memory up to " +
            $"{samples.Max(s => (long?)s["memory_processed_bytes"] ?? 0) >> 20} MiB, disk {samples.Max(s => (long?)s["disk_total_bytes"] ?? 0)} bytes; " +
            $"{prober.Replies.Count}/{prober.Sent} answers, longest gap {gap.TotalMilliseconds:0} ms at {at.TotalSeconds:0.00} s");
        Assert.True(gap < TimeSpan.FromSeconds(10), $"the guest went unheard for {gap.TotalMilliseconds:0} ms");
    }

    [Fact]
    public async Task LiveMigrate_DestinationCannotReachTheVolumeExport_FailsInPreLiveMigrationAndTheGuestKeepsItsVolumeOnTheSource()
    {
        var (id, address) = await _lab.BootAsync("compute1");
        var volumeId = await _lab.CreateVolumeAsync();
        await _lab.AttachVolumeAsync(id, volumeId);
        await _lab.AssertAttachedOnlyOnAsync(volumeId, id, "compute1");
        var connection = (await _lab.AttachmentsAsync(volumeId)).Single()["connection_info"]!;
        var exportPort = (int)connection["port"]!;
        Assert.Equal(fixture.Lab.ControllerAddress, (string?)connection["host"]);
        await using var prober = TestGuestProber.Start(address, s_probeInterval, TimeSpan.FromMinutes(4));
        var first = await prober.WaitForReplyAsync(TimeSpan.Zero, TimeSpan.FromSeconds(60), CancellationToken.None);

        // compute2 can no longer reach the storage daemon's NBD port, and only that: its agent's RPC and API traffic,
        // and the migration stream's port, are untouched.
        JsonNode migration;
        var watch = Stopwatch.StartNew();
        await fixture.Lab.SetPortBlockedAsync(2, exportPort, blocked: true, CancellationToken.None);
        try
        {
            migration = await _lab.MoveAsync(id, new JsonObject { ["os-migrateLive"] = new JsonObject { ["host"] = "compute2", ["block_migration"] = "auto" } });
        }
        finally
        {
            await fixture.Lab.SetPortBlockedAsync(2, exportPort, blocked: false, CancellationToken.None);
        }
        var failedIn = watch.Elapsed;
        var events = await EventsOfLastActionAsync(id);
        output.WriteLine($"export {connection["host"]}:{exportPort} unreachable from compute2: migration {(string?)migration["status"]} after {failedIn.TotalSeconds:0.0} s; " +
            $"events: {events.ToJsonString()}");

        Assert.Equal("failed", (string?)migration["status"]);
        var preLiveMigration = events.AsArray().Single(e => (string?)e!["event"] == "compute_pre_live_migration")!;
        Assert.Equal("Error", (string?)preLiveMigration["result"]);
        Assert.Equal("compute2", (string?)preLiveMigration["host"]);
        Assert.Contains($"the export at {fixture.Lab.ControllerAddress}:{exportPort} is not reachable from there", (string?)preLiveMigration["details"], StringComparison.Ordinal);
        var server = await _lab.WaitForServerAsync(id, s => LabSession.TaskState(s) is null, "task_state cleared");
        Assert.Equal(("ACTIVE", "compute1"), ((string?)server["status"], (string?)server["OS-EXT-SRV-ATTR:host"]));
        await _lab.AssertRunsOnlyOnAsync(id, "compute1");
        await _lab.AssertAttachedOnlyOnAsync(volumeId, id, "compute1");
        Assert.False(Directory.Exists(Path.Combine(fixture.DataDirectory, "instances", "compute2", id)), "the destination kept the guest's directory");
        var after = await prober.WaitForReplyAsync(prober.Elapsed, TimeSpan.FromSeconds(20), CancellationToken.None);
        Assert.True(after.Counter > first.Counter, $"the counter went on: {first.Counter} → {after.Counter}");
        await _lab.AssertTapsMatchGuestsAsync();

        // Nothing left on compute2 stands in the way: with the export in reach again, the same move goes through.
        migration = await _lab.MoveAsync(id, new JsonObject { ["os-migrateLive"] = new JsonObject { ["host"] = "compute2", ["block_migration"] = "auto" } });
        Assert.Equal("completed", (string?)migration["status"]);
        await _lab.AssertRunsOnlyOnAsync(id, "compute2");
        await _lab.AssertAttachedOnlyOnAsync(volumeId, id, "compute2");
        after = await prober.WaitForReplyAsync(prober.Elapsed, TimeSpan.FromSeconds(20), CancellationToken.None);
        await _lab.WaitForIntactConsoleAsync(id, after.Counter);
    }

    /// <summary>The events of the server's latest action (its live migration), with each one's host and details (2.84, admin).</summary>
    private async Task<JsonNode> EventsOfLastActionAsync(string id)
    {
        var (_, actions) = await Admin.GetAsync($"servers/{id}/os-instance-actions", "2.84");
        var requestId = (string)actions!["instanceActions"]!.AsArray().First(a => (string?)a!["action"] == "live-migration")!["request_id"]!;
        var (_, action) = await Admin.GetAsync($"servers/{id}/os-instance-actions/{requestId}", "2.84");
        return action!["instanceAction"]!["events"]!;
    }
}
