using System.Net;
using System.Text.Json.Nodes;
using Ferry.Core.Domain;
using Ferry.Host;

namespace Ferry.FunctionalTests.Flows;

/// <summary>Four hosts that differ: compute2 runs an older hypervisor, compute3 has little memory, compute4 another hypervisor type.</summary>
public sealed class MixedHostsFixture : FerryFixture
{
    protected override void Configure(FerryHostOptions options) => options.Hosts = 4;

    protected override void Configure(AllInOne ferry) => ferry.ConfigureDriver = d =>
    {
        switch (d.HostName)
        {
            case "compute2": d.HypervisorVersion = 7002000; break;
            case "compute3": d.MemoryMb = 1024; break;
            case "compute4": d.HypervisorType = "other"; break;
        }
    };
}

/// <summary>The conductor's checks on a forced destination (2.30 force=true bypasses the scheduler, not the checks).</summary>
public sealed class PreCheckTests(MixedHostsFixture fixture) : FlowTest<MixedHostsFixture>(fixture)
{
    private async Task<(Instance Instance, Migration Migration)> ForceLiveMigrateAsync(string id, string host)
    {
        var (status, body) = await Admin.ActionAsync(id, new JsonObject
        {
            ["os-migrateLive"] = new JsonObject { ["host"] = host, ["block_migration"] = "auto", ["force"] = true },
        }, "2.30");
        Assert.True(status == HttpStatusCode.Accepted, body?.ToJsonString());
        return await WaitForMoveEndAsync(id);
    }

    [Theory]
    [InlineData("compute2", "newer hypervisor version")]
    [InlineData("compute3", "Lack of memory")]
    [InlineData("compute4", "hypervisor type")]
    public async Task ForcedLiveMigration_DestinationFailsCheck_MigrationErrorAndNothingMoved(string host, string reason)
    {
        var id = await BootAsync("compute1", flavor: "m1.small");

        var (instance, migration) = await ForceLiveMigrateAsync(id, host);

        Assert.Equal((MigrationStatus.Error, "compute1", VmState.Active), (migration.Status, instance.Host, instance.VmState));
        Assert.Contains(reason, LastFault(id));
        await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}");
        await WaitForAsync(id, i => i.VmState == VmState.Deleted, "deleted");
    }

    [Fact]
    public async Task ScheduledLiveMigration_SkipsIncompatibleHosts()
    {
        var id = await BootAsync("compute1", flavor: "m1.small");

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        // compute2 is older, compute3 cannot fit m1.small in placement, compute4 is another type: nowhere to go.
        Assert.Equal((MigrationStatus.Error, "compute1"), (migration.Status, instance.Host));
        await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}");
        await WaitForAsync(id, i => i.VmState == VmState.Deleted, "deleted");
    }

    [Fact]
    public async Task ForcedLiveMigration_CompatibleNewerDestination_Completes()
    {
        var id = await BootAsync("compute2", flavor: "m1.tiny");

        var (instance, migration) = await ForceLiveMigrateAsync(id, "compute1");

        Assert.Equal((MigrationStatus.Completed, "compute1"), (migration.Status, instance.Host));
        await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}");
        await WaitForAsync(id, i => i.VmState == VmState.Deleted, "deleted");
    }
}
