using System.Net;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Host;
using Ferry.Virt.Qemu;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Ferry.FunctionalTests.Qemu;

/// <summary>
/// The test guest on an emulated Intel e1000 (hw_vif_model=e1000 on its image): QEMU gets <c>-device e1000</c> on every
/// host, the guest drives it (tools/test-guest/e1000.c) and answers probes, also after a live migration, whose
/// destination must create the same device or the migration stream would not load.
/// </summary>
[Collection("qemu")]
[Trait("Requires", "qemu")]
public sealed class QemuVifModelTests(QemuNetworkFerryFixture fixture, ITestOutputHelper output) : QemuFlowTest<QemuNetworkFerryFixture>(fixture)
{
    private static readonly TimeSpan s_probeInterval = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// Gives the fixture's test guest image these properties (the fixture is this class's alone). A server keeps its
    /// image's properties from boot on, so a later change does not reach it.
    /// </summary>
    private async Task SetTestImagePropertiesAsync(Dictionary<string, string> properties)
    {
        var catalog = Fixture.Ferry.Services.GetRequiredService<CatalogStore>();
        var image = await catalog.FindImageAsync(Seed.TestImageId, CancellationToken.None) ?? throw new InvalidOperationException("no test guest image");
        await catalog.SaveImageAsync(image with { Properties = properties }, CancellationToken.None);
    }

    private async Task<string> ConsoleAsync(string id)
    {
        var (status, body) = await Admin.ActionAsync(id, JsonNode.Parse("""{"os-getConsoleOutput": {"length": 400}}""")!);
        Assert.Equal(HttpStatusCode.OK, status);
        return body!["output"]!.GetValue<string>();
    }

    [Fact]
    public async Task LiveMigrateAndPowerCycle_GuestOnE1000_AnswersOnTheDestinationWithCounterAndChecksumIntact()
    {
        await SetTestImagePropertiesAsync(new() { ["hw_vif_model"] = "e1000" });
        string id;
        try
        {
            id = await BootGuestAsync("compute1", dirtyMiBps: 1, configDrive: true);
        }
        finally
        {
            await SetTestImagePropertiesAsync([]);
        }
        var instance = Instances.Get(id);
        Assert.Equal("e1000", instance.SystemMetadata["image_hw_vif_model"]);
        var vif = Assert.Single(instance.NetworkInfo);
        await using var prober = TestGuestProber.Start(IPAddress.Parse(vif.Ips[0].Address), s_probeInterval, TimeSpan.FromMinutes(3));
        var first = await prober.WaitForReplyAsync(TimeSpan.Zero, TimeSpan.FromSeconds(30), CancellationToken.None);
        AssertChecksumIntact(first);
        // The guest found no virtio-net: it drives the e1000 QEMU was given.
        Assert.Contains(" nic=e1000", await ConsoleAsync(id), StringComparison.Ordinal);

        var movedAt = prober.Elapsed;
        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var (moved, migration) = await WaitForMoveEndAsync(id);
        Assert.Equal((MigrationStatus.Completed, "compute2"), (migration.Status, moved.Host));
        var after = await prober.WaitForReplyAsync(prober.Elapsed, TimeSpan.FromSeconds(15), CancellationToken.None);

        Assert.True(after.Counter > first.Counter, $"the counter went on: {first.Counter} → {after.Counter}");
        // Memory proven from the console (a TCG stale page may take a pass over the region to heal; QemuTestGuest).
        await WaitForCounterAsync(id, after.Counter, movedAtCounter: 0);
        AssertRunsOnlyOn(id, "compute2");
        Assert.DoesNotContain("net restart", await ConsoleAsync(id), StringComparison.Ordinal);
        var (gap, at) = prober.LongestGap(movedAt);
        output.WriteLine($"e1000 live migration: {prober.Sent} probes, {prober.Replies.Count} answers, longest gap {gap.TotalMilliseconds:0} ms at {at.TotalSeconds:0.00} s");
        Assert.True(gap < TimeSpan.FromSeconds(10), $"the guest went unheard for {gap.TotalMilliseconds:0} ms");

        // A power cycle starts a new QEMU on the destination from the spec it builds from the instance: e1000 again.
        var netLinesBefore = CountOf(await ConsoleAsync(id), " nic=e1000");
        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"os-stop": null}""")!)).Status);
        await WaitForAsync(id, i => i.VmState == VmState.Stopped && i.TaskState is null, "STOPPED");
        var stoppedAt = prober.Elapsed;
        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"os-start": null}""")!)).Status);
        await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after start");
        var restarted = await prober.WaitForReplyAsync(stoppedAt, TimeSpan.FromSeconds(30), CancellationToken.None);
        Assert.True(restarted.Counter < after.Counter, $"a fresh boot answers: counter {restarted.Counter} after {after.Counter}");
        AssertChecksumIntact(restarted);
        Assert.True(CountOf(await ConsoleAsync(id), " nic=e1000") > netLinesBefore, "the restarted guest drives an e1000 again");
    }

    private static int CountOf(string text, string what) => (text.Length - text.Replace(what, "", StringComparison.Ordinal).Length) / what.Length;

    private static void AssertChecksumIntact(ProbeReply reply) =>
        Assert.True(reply.Checksum == QemuTestGuest.ExpectedChecksum(reply.ChecksumCounter, QemuTestGuest.DefaultRegionMib, KibPerTick(1)),
            $"the guest's checksum at counter {reply.ChecksumCounter} is {reply.Checksum:x8}, not the closed form");

    private static int KibPerTick(double dirtyMiBps) => (int)Math.Ceiling(dirtyMiBps * 1024 / QemuTestGuest.TicksPerSecond);
}
