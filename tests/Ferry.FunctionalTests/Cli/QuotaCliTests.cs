using System.Text.Json.Nodes;

namespace Ferry.FunctionalTests.Cli;

/// <summary><c>openstack quota set/show</c> and <c>openstack limits show --absolute</c> against Ferry's os-quota-sets and limits.</summary>
public sealed class QuotaCliTests(CliFixture fixture) : IClassFixture<CliFixture>
{
    [Fact]
    public async Task QuotaSetShowAndLimits_DemoProject_EnforcedOnCreate()
    {
        fixture.RequireOpenStack();
        await fixture.AdminRunAsync("2.latest", "quota", "set", "--cores", "2", "--instances", "3", "--ram", "8192", "demo");

        var shown = await fixture.AdminJsonAsync("2.latest", "quota", "show", "demo");
        Assert.Equal((2, 3, 8192), ((int)shown["cores"]!, (int)shown["instances"]!, (int)shown["ram"]!));
        Assert.Equal("demo", (string?)shown["project_name"]);

        var first = await fixture.JsonAsync(fixture.DemoEnv, "server", "create", "--flavor", "m1.medium", "--image", "ferry-test-guest", "--nic", "none", "--wait", "quota-1");
        Assert.Equal("ACTIVE", (string?)first["status"]);
        var refused = await fixture.RunAsync(fixture.DemoEnv, "server", "create", "--flavor", "m1.tiny", "--image", "ferry-test-guest", "--nic", "none", "quota-2");
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("Quota exceeded for cores: Requested 1, but already used 2 of 2 cores (HTTP 403)", refused.Stderr, StringComparison.Ordinal);

        var limits = (await fixture.JsonAsync(fixture.DemoEnv, "limits", "show", "--absolute")).AsArray();
        int Value(string name) => (int)limits.Single(l => (string?)l!["Name"] == name)!["Value"]!;
        Assert.Equal((2, 3, 8192, 1, 2, 4096), (Value("maxTotalCores"), Value("maxTotalInstances"), Value("maxTotalRAMSize"),
            Value("totalInstancesUsed"), Value("totalCoresUsed"), Value("totalRAMUsed")));
        var servers = (await fixture.JsonAsync(fixture.DemoEnv, "server", "list")).AsArray();
        Assert.Single(servers);
    }
}
