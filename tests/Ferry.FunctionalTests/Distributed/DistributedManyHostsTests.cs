using System.Text.Json.Nodes;
using Ferry.FunctionalTests.Cli;

namespace Ferry.FunctionalTests.Distributed;

/// <summary>
/// `ferry distributed --hosts 4 --hosts-per-compute 3`: one `ferry compute` process serves compute1..compute3 and another
/// compute4, each host with its own queue, service row and provider; the real `openstack` client moves a server
/// between two hosts of one process and between processes.
/// </summary>
public sealed class ManyHostsFixture : DistributedFixture
{
    protected override string Name => "dist-many";

    protected override string[] Arguments =>
        ["--hosts", "4", "--hosts-per-compute", "3", "--replicas", "1", "--time-scale", "0",
         "--compute-port", "0", "--placement-port", "0", "--identity-port", "0", "--image-port", "0", "--network-port", "0", "--volume-port", "0"];
}

[Collection(ProcessRestartCollection.Name)]
public sealed class DistributedManyHostsTests(ManyHostsFixture fixture) : IClassFixture<ManyHostsFixture>
{
    [Fact]
    public async Task HostsPerCompute_ThreeHostsInOneProcess_EachReportsItsOwnServiceAndProvider()
    {
        Assert.Equal(["compute1-3", "compute4"], fixture.Children().Keys.Where(k => k.StartsWith("compute", StringComparison.Ordinal)).Order());
        Assert.Contains("2 compute processes for 4 hosts", fixture.ReadyLine, StringComparison.Ordinal);

        var services = (await fixture.JsonAsync("compute", "service", "list", "--service", "nova-compute")).AsArray();
        Assert.Equal(["compute1", "compute2", "compute3", "compute4"], services.Where(s => (string?)s!["State"] == "up").Select(s => (string)s!["Host"]!).Order());
        var providers = (await fixture.JsonAsync("resource", "provider", "list")).AsArray();
        Assert.Equal(["compute1", "compute2", "compute3", "compute4"], providers.Select(p => (string)p!["name"]!).Order());
    }

    [Fact]
    public async Task LiveMigrate_WithinOneProcessAndBetweenProcesses_LandsWhereAsked()
    {
        var created = await fixture.JsonAsync("server", "create", "--flavor", "m1.tiny", "--image", "ferry-test-guest", "--nic", "none",
            "--availability-zone", "nova:compute1", "--wait", "many-a");
        var id = (string)created["id"]!;
        Assert.Equal("ACTIVE", (string?)created["status"]);

        // compute1 → compute2: source and destination agents share one process, its bus connection and its token.
        await fixture.RunAsync("server", "migrate", "--live-migration", "--host", "compute2", "--wait", id);
        Assert.Equal("compute2", await HostOfAsync(id));
        // compute2 → compute4 and back to compute3: across the two processes, both ways.
        await fixture.RunAsync("server", "migrate", "--live-migration", "--host", "compute4", "--wait", id);
        Assert.Equal("compute4", await HostOfAsync(id));
        await fixture.RunAsync("server", "migrate", "--live-migration", "--host", "compute3", "--wait", id);
        Assert.Equal("compute3", await HostOfAsync(id));

        var allocations = (await fixture.JsonAsync("--os-placement-api-version", "1.12", "resource", "provider", "allocation", "show", id)).AsArray();
        var providers = (await fixture.JsonAsync("resource", "provider", "list", "--name", "compute3")).AsArray();
        Assert.Equal((string?)Assert.Single(providers)!["uuid"], (string?)Assert.Single(allocations)!["resource_provider"]);
        await fixture.RunAsync("server", "delete", "--wait", id);
    }

    private async Task<string?> HostOfAsync(string id) => (string?)(await fixture.JsonAsync("server", "show", id))["OS-EXT-SRV-ATTR:host"];
}
