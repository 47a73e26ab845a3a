using System.Text.Json.Nodes;

namespace Ferry.FunctionalTests.Cli;

/// <summary>
/// Forcing a stopped compute2 down, <c>nova evacuate</c>, restarting the agent and <c>--up</c>,
/// on a Ferry of its own so compute2 going away does not disturb the other CLI tests.
/// </summary>
public sealed class EvacuateCliTests(CliFixture fixture) : IClassFixture<CliFixture>
{
    private const string ComputeVersion = "2.latest";

    private Task<JsonNode> AdminAsync(params string[] args) => fixture.AdminJsonAsync(ComputeVersion, args);

    private Task<CliResult> AdminRunAsync(params string[] args) => fixture.AdminRunAsync(ComputeVersion, args);

    private Task<string> BootAsync(string name, string host) => fixture.BootAsync(name, host);

    [Fact]
    public async Task Force_down_evacuate_with_nova_then_restart_and_up()
    {
        fixture.RequireOpenStackAndNova();
        var id = await BootAsync("cli-evacuate", "compute2");
        await fixture.StopComputeAsync("compute2");
        try
        {
            await AdminRunAsync("compute", "service", "set", "--down", "compute2", "nova-compute");
            var services = (await AdminAsync("compute", "service", "list", "--service", "nova-compute")).AsArray();
            Assert.Equal("down", (string?)services.Single(s => (string?)s!["Host"] == "compute2")!["State"]);
            Assert.All(services.Where(s => (string?)s!["Host"] != "compute2"), s => Assert.Equal("up", (string?)s!["State"]));

            var evacuate = await fixture.NovaAsync(fixture.AdminEnv, "evacuate", id);
            Assert.True(evacuate.ExitCode == 0, evacuate.ToString());
            var server = await CliPolling.UntilAsync(() => AdminAsync("server", "show", id),
                s => (string?)s["status"] == "ACTIVE" && s["OS-EXT-STS:task_state"] is null && (string?)s["OS-EXT-SRV-ATTR:host"] != "compute2",
                "the evacuation to finish");
            Assert.Contains((string?)server["OS-EXT-SRV-ATTR:host"], new[] { "compute1", "compute3" });
            var evacuation = Assert.Single((await AdminAsync("server", "migration", "list", "--server", id)).AsArray())!;
            Assert.Equal("evacuation", (string?)evacuation["Type"]);
            Assert.Equal("done", (string?)evacuation["Status"]);
            Assert.Equal("compute2", (string?)evacuation["Source Compute"]);
            Assert.Equal((string?)server["OS-EXT-SRV-ATTR:host"], (string?)evacuation["Dest Compute"]);
        }
        finally
        {
            await fixture.StartComputeAsync("compute2");
        }
        var completed = await CliPolling.UntilAsync(() => AdminAsync("server", "migration", "list", "--server", id),
            list => (string?)list.AsArray().Single()!["Status"] == "completed", "the restarted agent to complete the evacuation");
        Assert.Equal("evacuation", (string?)completed.AsArray().Single()!["Type"]);

        await AdminRunAsync("compute", "service", "set", "--up", "compute2", "nova-compute");
        var up = await CliPolling.UntilAsync(() => AdminAsync("compute", "service", "list", "--service", "nova-compute"),
            list => list.AsArray().All(s => (string?)s!["State"] == "up"), "compute2 to be up");
        Assert.Equal(3, up.AsArray().Count);
    }
}
