using System.Net;
using System.Text.Json.Nodes;
using Ferry.Core.Domain;
using Ferry.Host;

namespace Ferry.FunctionalTests.Qemu;

/// <summary>Two QEMU hosts with their own addresses: compute1 on 127.0.0.2, compute2 on 127.0.0.3.</summary>
public sealed class QemuHostAddressFerryFixture : QemuFerryFixture
{
    protected override void Configure(AllInOne ferry) =>
        ferry.ConfigureCompute = o => o.MyIp = o.Host == "compute1" ? "127.0.0.2" : "127.0.0.3";
}

/// <summary>
/// A block live migration and a cold migration between QEMU hosts that each bind only their own address (the
/// driver-level tests check the listening sockets): the addresses travel in the migrate data and the disk info.
/// </summary>
[Collection("qemu")]
[Trait("Requires", "qemu")]
public sealed class QemuHostAddressTests(QemuHostAddressFerryFixture fixture) : QemuFlowTest<QemuHostAddressFerryFixture>(fixture)
{
    [Fact]
    public async Task LiveThenColdMigrate_HostsOnTheirOwnAddresses_BothMovesComplete()
    {
        var id = await BootGuestAsync("compute1");
        var before = await WaitForCounterAsync(id, 0);

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var (moved, live) = await WaitForMoveEndAsync(id);
        Assert.True(live.Status == MigrationStatus.Completed, $"{live.Status}: {LastFault(id)}");
        Assert.Equal("compute2", moved.Host);
        await WaitForCounterAsync(id, before + 10, movedAtCounter: 0);
        AssertRunsOnlyOn(id, "compute2");

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"migrate": {"host": "compute1"}}""")!)).Status);
        var (resized, cold) = await WaitForMoveEndAsync(id, after: live);
        Assert.True(cold.Status == MigrationStatus.Finished, $"{cold.Status}: {LastFault(id)}");
        Assert.Equal(("compute1", "127.0.0.2"), (resized.Host, cold.DestHost));
        Assert.Equal(HttpStatusCode.NoContent, (await Admin.ActionAsync(id, JsonNode.Parse("""{"confirmResize": null}""")!)).Status);
        await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after confirm");
        await WaitForCounterAsync(id, 0);
        AssertRunsOnlyOn(id, "compute1");
    }
}
