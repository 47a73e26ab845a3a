using System.Text.Json.Nodes;

namespace Ferry.FunctionalTests.Cli;

/// <summary>
/// Service disable/enable, hypervisor and flavor administration, instance actions and the
/// placement view (osc-placement) through <c>openstack -f json</c>.
/// </summary>
public sealed class OperatorCliTests(CliFixture fixture) : IClassFixture<CliFixture>
{
    private const string ComputeVersion = "2.latest";

    private Task<JsonNode> AdminAsync(params string[] args) => fixture.AdminJsonAsync(ComputeVersion, args);

    private Task<CliResult> AdminRunAsync(params string[] args) => fixture.AdminRunAsync(ComputeVersion, args);

    private Task<string> BootAsync(string name, string host) => fixture.BootAsync(name, host);

    [Fact]
    public async Task Disable_enable_service_and_flavor_create()
    {
        fixture.RequireOpenStack();
        await AdminRunAsync("compute", "service", "set", "--disable", "--disable-reason", "cli test", "compute3", "nova-compute");
        var disabled = (await AdminAsync("compute", "service", "list", "--service", "nova-compute")).AsArray();
        Assert.Equal("disabled", (string?)disabled.Single(s => (string?)s!["Host"] == "compute3")!["Status"]);
        Assert.Equal("enabled", (string?)disabled.Single(s => (string?)s!["Host"] == "compute1")!["Status"]);
        await AdminRunAsync("compute", "service", "set", "--enable", "compute3", "nova-compute");
        var enabled = (await AdminAsync("compute", "service", "list", "--service", "nova-compute")).AsArray();
        Assert.All(enabled, s => Assert.Equal("enabled", (string?)s!["Status"]));

        var flavor = await AdminAsync("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1", "cli-flavor");
        Assert.Equal("cli-flavor", (string?)flavor["name"]);
        Assert.Equal(1, (int)flavor["vcpus"]!);
        Assert.Equal(128, (int)flavor["ram"]!);
        Assert.Equal(1, (int)flavor["disk"]!);
        Assert.True((bool)flavor["os-flavor-access:is_public"]!);
        var flavors = (await AdminAsync("flavor", "list")).AsArray();
        Assert.Contains(flavors, f => (string?)f!["Name"] == "cli-flavor" && (int)f["RAM"]! == 128 && (int)f["VCPUs"]! == 1 && (string?)f["ID"] == (string?)flavor["id"]);
    }

    [Fact]
    public async Task Events_allocations_and_provider_usage_follow_a_live_migration()
    {
        fixture.RequireOpenStack();
        var id = await BootAsync("cli-events", "compute1");
        await AdminRunAsync("server", "migrate", "--live-migration", "--host", "compute3", "--wait", id);

        var events = (await AdminAsync("server", "event", "list", id)).AsArray();
        Assert.Contains(events, e => (string?)e!["Action"] == "create");
        var live = Assert.Single(events, e => (string?)e!["Action"] == "live-migration")!;
        Assert.Equal(id, (string?)live["Server ID"]);
        Assert.StartsWith("req-", (string?)live["Request ID"]);

        var providers = (await fixture.JsonAsync(fixture.AdminEnv, "resource", "provider", "list")).AsArray();
        var compute3 = (string)providers.Single(p => (string?)p!["name"] == "compute3")!["uuid"]!;

        var allocations = (await fixture.JsonAsync(fixture.AdminEnv, "--os-placement-api-version", "1.38", "resource", "provider", "allocation", "show", id)).AsArray();
        var allocation = Assert.Single(allocations)!;
        Assert.Equal(compute3, (string?)allocation["resource_provider"]);
        Assert.True((int)allocation["generation"]! > 0);
        var resources = allocation["resources"]!;
        Assert.Equal(1, (int)resources["VCPU"]!);
        Assert.Equal(512, (int)resources["MEMORY_MB"]!);
        Assert.Equal(1, (int)resources["DISK_GB"]!);
        Assert.False(string.IsNullOrEmpty((string?)allocation["project_id"]));
        Assert.False(string.IsNullOrEmpty((string?)allocation["user_id"]));
        // As real Placement prints for consumers created without a type (the reference session shows "unknown").
        Assert.Equal("unknown", allocation["consumer_type"]?.GetValue<string>());

        var usage = (await fixture.JsonAsync(fixture.AdminEnv, "resource", "provider", "usage", "show", compute3)).AsArray();
        var byClass = usage.ToDictionary(u => (string)u!["resource_class"]!, u => (int)u!["usage"]!);
        Assert.True(byClass["VCPU"] >= 1, usage.ToJsonString());
        Assert.True(byClass["MEMORY_MB"] >= 512, usage.ToJsonString());
        Assert.True(byClass["DISK_GB"] >= 1, usage.ToJsonString());
    }

    /// <summary>
    /// OSC resolves the name through <c>GET /os-hypervisors/detail</c>, then lists
    /// <c>GET /os-aggregates</c> to fill the aggregates field; Ferry answers that 404.
    /// </summary>
    [Fact]
    public async Task Hypervisor_show_by_name()
    {
        fixture.RequireOpenStack();
        var hypervisor = await AdminAsync("hypervisor", "show", "compute1");
        Assert.Equal("compute1", (string?)hypervisor["hypervisor_hostname"]);
        Assert.Equal("fake", (string?)hypervisor["hypervisor_type"]);
        Assert.Equal("up", (string?)hypervisor["state"]);
        Assert.Equal("enabled", (string?)hypervisor["status"]);
        Assert.NotNull(hypervisor["id"]);

    }
}
