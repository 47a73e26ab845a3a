using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Ferry.FunctionalTests.Distributed;

/// <summary>
/// The README's `openstack` session against `./ferry up --distributed`: every role its own process over PostgreSQL and
/// RabbitMQ, the api replicas sharing their ports. Runs alone: it starts a dozen processes of its own.
/// </summary>
[Collection(ProcessRestartCollection.Name)]
public sealed class DistributedCliTests(DistributedFixture fixture) : IClassFixture<DistributedFixture>
{
    [Fact]
    public async Task ServiceList_EveryRoleProcess_ReportsUp()
    {
        var services = (await fixture.JsonAsync("compute", "service", "list")).AsArray();

        var up = services.Where(s => (string?)s!["State"] == "up").Select(s => $"{s!["Binary"]}@{s["Host"]}").ToList();
        Assert.Equal(2, up.Count(s => s.StartsWith("nova-conductor@", StringComparison.Ordinal)));
        Assert.Equal(2, up.Count(s => s.StartsWith("nova-scheduler@", StringComparison.Ordinal)));
        Assert.Contains("nova-compute@compute1", up);
        Assert.Contains("nova-compute@compute2", up);
        Assert.Contains("PostgreSQL 127.0.0.1:", fixture.ReadyLine, StringComparison.Ordinal);
        Assert.Contains("RabbitMQ 127.0.0.1:", fixture.ReadyLine, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Server_BootLiveMigrateColdMigrateConfirmDelete_EachStepLandsWhereAsked()
    {
        var id = await BootAsync("dist-a", "compute1");

        await RunAsync("server", "migrate", "--live-migration", "--host", "compute2", "--wait", id);
        Assert.Equal("compute2", await HostOfAsync(id));

        await RunAsync("--os-compute-api-version", "2.56", "server", "migrate", "--host", "compute1", "--wait", id);
        Assert.Equal("VERIFY_RESIZE", (string?)(await fixture.JsonAsync("server", "show", id))["status"]);
        await RunAsync("server", "resize", "confirm", id);
        await WaitForStatusAsync(id, "ACTIVE");
        Assert.Equal("compute1", await HostOfAsync(id));

        var allocations = (await fixture.JsonAsync("--os-placement-api-version", "1.12", "resource", "provider", "allocation", "show", id)).AsArray();
        var provider = Assert.Single(allocations);
        var providers = (await fixture.JsonAsync("resource", "provider", "list", "--name", "compute1")).AsArray();
        Assert.Equal((string?)Assert.Single(providers)!["uuid"], (string?)provider!["resource_provider"]);

        await RunAsync("server", "delete", "--wait", id);
        Assert.Empty((await fixture.JsonAsync("--os-placement-api-version", "1.12", "resource", "provider", "allocation", "show", id)).AsArray());
    }

    [Fact]
    public async Task Replicas_OneApiAndOneConductorKilled_TheOthersCarryOn()
    {
        var children = fixture.Children();
        var before = await BootAsync("dist-b", "compute1");
        Process.GetProcessById(children["api-1"]).Kill();
        Process.GetProcessById(children["conductor-1"]).Kill();

        // Every request now lands on api-2 (the kernel drops a closed listener from the port), every cast on conductor-2.
        await RunAsync("server", "migrate", "--live-migration", "--host", "compute2", "--wait", before);
        Assert.Equal("compute2", await HostOfAsync(before));
        var after = await BootAsync("dist-c", "compute1");
        await RunAsync("server", "delete", "--wait", before, after);
    }

    private async Task<string> BootAsync(string name, string host)
    {
        var created = await fixture.JsonAsync("server", "create", "--flavor", "m1.tiny", "--image", "ferry-test-guest", "--nic", "none",
            "--availability-zone", $"nova:{host}", "--wait", name);
        Assert.Equal("ACTIVE", (string?)created["status"]);
        return (string)created["id"]!;
    }

    private async Task RunAsync(params string[] args)
    {
        var result = await fixture.OpenStackAsync(args);
        Assert.True(result.ExitCode == 0, result.ToString());
    }

    private async Task<string?> HostOfAsync(string id) => (string?)(await fixture.JsonAsync("server", "show", id))["OS-EXT-SRV-ATTR:host"];

    private async Task WaitForStatusAsync(string id, string status)
    {
        for (var i = 0; i < 300; i++)
        {
            if ((string?)(await fixture.JsonAsync("server", "show", id))["status"] == status)
            {
                return;
            }
            await Task.Delay(200);
        }
        Assert.Fail($"server {id} never reached {status}");
    }
}
