using System.Text.Json.Nodes;

namespace Ferry.FunctionalTests.Cli;

/// <summary>
/// <c>openstack quota set/show</c> and <c>openstack limits show --absolute</c> against os-quota-sets and limits;
/// <c>openstack resource class …</c> and <c>openstack trait …</c> (osc-placement) against placement.
/// </summary>
public sealed class QuotaAndPlacementCatalogCliTests(CliFixture fixture) : IClassFixture<CliFixture>
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

    [Fact]
    public async Task ResourceClassAndTraitCommands_CreateListSetDelete()
    {
        fixture.RequireOpenStack();
        var env = fixture.AdminEnv.Append(new("OS_PLACEMENT_API_VERSION", "1.7")).ToList();

        var classes = (await fixture.JsonAsync(env, "resource", "class", "list")).AsArray().Select(c => (string)c!["name"]!).ToList();
        Assert.Equal(["VCPU", "MEMORY_MB", "DISK_GB"], classes.Take(3));
        Assert.Equal(0, (await fixture.RunAsync(env, "resource", "class", "create", "CUSTOM_CLI_GPU")).ExitCode);
        Assert.Equal("CUSTOM_CLI_GPU", (string?)(await fixture.JsonAsync(env, "resource", "class", "show", "CUSTOM_CLI_GPU"))["name"]);
        Assert.Contains("CUSTOM_CLI_GPU", (await fixture.JsonAsync(env, "resource", "class", "list")).AsArray().Select(c => (string)c!["name"]!));

        var traits = (await fixture.JsonAsync(env, "trait", "list")).AsArray().Select(t => (string)t!["name"]!).ToList();
        Assert.Contains("COMPUTE_STATUS_DISABLED", traits);
        Assert.Equal(0, (await fixture.RunAsync(env, "trait", "create", "CUSTOM_CLI_FAST")).ExitCode);
        var provider = (string)(await fixture.JsonAsync(env, "resource", "provider", "list")).AsArray()[0]!["uuid"]!;
        var set = (await fixture.JsonAsync(env, "resource", "provider", "trait", "set", "--trait", "CUSTOM_CLI_FAST", "--trait", "HW_CPU_X86_AVX2", provider)).AsArray();
        Assert.Equal(["CUSTOM_CLI_FAST", "HW_CPU_X86_AVX2"], set.Select(t => (string)t!["name"]!).Order(StringComparer.Ordinal));
        var refused = await fixture.RunAsync(env, "trait", "delete", "CUSTOM_CLI_FAST");
        Assert.Contains("The trait CUSTOM_CLI_FAST is in use by a resource provider. (HTTP 409)", refused.Stderr, StringComparison.Ordinal);

        Assert.Equal(0, (await fixture.RunAsync(env, "resource", "provider", "trait", "delete", provider)).ExitCode);
        Assert.Equal(0, (await fixture.RunAsync(env, "trait", "delete", "CUSTOM_CLI_FAST")).ExitCode);
        Assert.Equal(0, (await fixture.RunAsync(env, "resource", "class", "delete", "CUSTOM_CLI_GPU")).ExitCode);
        Assert.DoesNotContain("CUSTOM_CLI_FAST", (await fixture.JsonAsync(env, "trait", "list")).AsArray().Select(t => (string)t!["name"]!));
    }
}
