using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Ferry.FunctionalTests.Cli;

/// <summary>
/// Replays the commands of <c>/work/shared/reference/nova-cli-session.txt</c> (OSC 6.0 against Nova 26.2.2)
/// with the real <c>openstack</c> CLI and pins the exact columns and keys, in order, that real Nova produced,
/// plus the value shapes (null vs "", int vs string, float ratios). Compute at 2.latest and Placement at
/// 1.39, as the reference session's clouds.yaml. Each test returns at once when the binary is missing.
/// </summary>
public sealed partial class ReferenceSessionCliTests(SlowCliFixture fixture) : IClassFixture<SlowCliFixture>
{
    private const string ComputeVersion = "2.latest";
    private const string PlacementVersion = "1.39";

    private static readonly string[] s_serviceColumns = ["ID", "Binary", "Host", "Zone", "Status", "State", "Updated At"];
    private static readonly string[] s_hypervisorColumns = ["ID", "Hypervisor Hostname", "Hypervisor Type", "Host IP", "State"];
    private static readonly string[] s_providerColumns = ["uuid", "name", "generation", "root_provider_uuid", "parent_provider_uuid"];
    private static readonly string[] s_allocationColumns = ["resource_provider", "generation", "resources", "project_id", "user_id", "consumer_type"];
    private static readonly string[] s_usageColumns = ["resource_class", "usage"];
    private static readonly string[] s_inventoryColumns = ["resource_class", "allocation_ratio", "min_unit", "max_unit", "reserved", "step_size", "total", "used"];

    private static readonly string[] s_migrationListColumns =
    [
        "Id", "UUID", "Source Node", "Dest Node", "Source Compute", "Dest Compute", "Dest Host", "Status", "Server UUID",
        "Old Flavor", "New Flavor", "Type", "Created At", "Updated At",
    ];

    private static readonly string[] s_migrationShowKeys =
    [
        "ID", "Server UUID", "Status", "Source Compute", "Source Node", "Dest Compute", "Dest Host", "Dest Node",
        "Memory Total Bytes", "Memory Processed Bytes", "Memory Remaining Bytes", "Disk Total Bytes", "Disk Processed Bytes",
        "Disk Remaining Bytes", "Created At", "Updated At", "UUID", "User ID", "Project ID",
    ];

    private static readonly string[] s_serverShowKeys =
    [
        "OS-DCF:diskConfig", "OS-EXT-AZ:availability_zone", "OS-EXT-SRV-ATTR:host", "OS-EXT-SRV-ATTR:hostname",
        "OS-EXT-SRV-ATTR:hypervisor_hostname", "OS-EXT-SRV-ATTR:instance_name", "OS-EXT-SRV-ATTR:kernel_id",
        "OS-EXT-SRV-ATTR:launch_index", "OS-EXT-SRV-ATTR:ramdisk_id", "OS-EXT-SRV-ATTR:reservation_id",
        "OS-EXT-SRV-ATTR:root_device_name", "OS-EXT-SRV-ATTR:user_data", "OS-EXT-STS:power_state", "OS-EXT-STS:task_state",
        "OS-EXT-STS:vm_state", "OS-SRV-USG:launched_at", "OS-SRV-USG:terminated_at", "accessIPv4", "accessIPv6", "addresses",
        "config_drive", "created", "description", "flavor", "hostId", "host_status", "id", "image", "key_name", "locked",
        "locked_reason", "name", "progress", "project_id", "properties", "server_groups", "status", "tags",
        "trusted_image_certificates", "updated", "user_id", "volumes_attached",
    ];

    private static readonly string[] s_serverListLongColumns =
    [
        "ID", "Name", "Status", "Task State", "Power State", "Networks", "Image Name", "Image ID", "Flavor",
        "Availability Zone", "Host", "Properties", "Host Status",
    ];

    private static readonly string[] s_stateColumns =
        ["OS-EXT-SRV-ATTR:host", "OS-EXT-SRV-ATTR:hypervisor_hostname", "OS-EXT-STS:task_state", "OS-EXT-STS:vm_state", "OS-EXT-STS:power_state", "status"];

    private Task<JsonNode> AdminAsync(params string[] args) => fixture.AdminJsonAsync(ComputeVersion, args);

    private Task<CliResult> AdminRunAsync(params string[] args) => fixture.AdminRunAsync(ComputeVersion, args);

    private Task<JsonNode> PlacementAsync(params string[] args) =>
        fixture.JsonAsync(fixture.AdminEnv, ["--os-placement-api-version", PlacementVersion, .. args]);

    private static IEnumerable<string> Keys(JsonNode? node) => node!.AsObject().Select(p => p.Key);

    private static void AssertColumns(string[] expected, JsonNode rows)
    {
        Assert.NotEmpty(rows.AsArray());
        Assert.All(rows.AsArray(), row => Assert.Equal(expected, Keys(row)));
    }

    private async Task<JsonNode> StateAsync(string server) =>
        await AdminAsync(["server", "show", server, .. s_stateColumns.SelectMany(c => new[] { "-c", c })]);

    [Fact]
    public async Task Inventory_listings_have_the_reference_columns()
    {
        fixture.RequireOpenStack();
        AssertColumns(s_serviceColumns, await AdminAsync("compute", "service", "list"));
        AssertColumns(s_serviceColumns, await AdminAsync("compute", "service", "list", "--service", "nova-compute"));
        AssertColumns(s_hypervisorColumns, await AdminAsync("hypervisor", "list"));
        var providers = await PlacementAsync("resource", "provider", "list");
        AssertColumns(s_providerColumns, providers);
        Assert.All(providers.AsArray(), p => Assert.Null(p!["parent_provider_uuid"]));

        var rp = (string)providers.AsArray().First()!["uuid"]!;
        AssertColumns(s_usageColumns, await PlacementAsync("resource", "provider", "usage", "show", rp));
        var inventory = await fixture.RunAsync(fixture.AdminEnv, "--os-placement-api-version", PlacementVersion,
            "resource", "provider", "inventory", "list", rp, "-f", "json");
        Assert.True(inventory.ExitCode == 0, inventory.ToString());
        AssertColumns(s_inventoryColumns, JsonNode.Parse(inventory.Stdout)!);
        // Placement's ratios are Python floats: osc prints 16.0 / 1.0, never 16 / 1.
        Assert.All(AllocationRatio().Matches(inventory.Stdout), m => Assert.Contains('.', m.Groups[1].Value));
        Assert.Equal(3, AllocationRatio().Matches(inventory.Stdout).Count);
    }

    [Fact]
    public async Task Boot_show_allocations_and_migrations_have_the_reference_keys()
    {
        fixture.RequireOpenStack();
        var created = await AdminAsync("server", "create", "--flavor", "m1.tiny", "--image", "ferry-test-guest", "--nic", "none",
            "--host", "compute1", "--wait", "ref-a", "-c", "id", "-c", "status", "-c", "OS-EXT-SRV-ATTR:host");
        Assert.Equal(["OS-EXT-SRV-ATTR:host", "id", "status"], Keys(created));
        Assert.Equal("compute1", (string?)created["OS-EXT-SRV-ATTR:host"]);
        var id = (string)created["id"]!;

        var shown = await AdminAsync("server", "show", id);
        Assert.Equal(s_serverShowKeys, Keys(shown));
        Assert.Equal(["vcpus", "ram", "disk", "ephemeral", "swap", "original_name", "extra_specs"], Keys(shown["flavor"]));
        Assert.Equal("", (string?)shown["OS-EXT-SRV-ATTR:kernel_id"]);
        Assert.Equal("", (string?)shown["accessIPv4"]);
        Assert.Equal("", (string?)shown["config_drive"]);
        Assert.Null(shown["OS-EXT-SRV-ATTR:user_data"]);
        Assert.Null(shown["OS-SRV-USG:terminated_at"]);
        Assert.Null(shown["description"]);
        Assert.Null(shown["key_name"]);
        Assert.Null(shown["trusted_image_certificates"]);
        Assert.Equal(1, (int)shown["OS-EXT-STS:power_state"]!);
        Assert.Equal(0, (int)shown["OS-EXT-SRV-ATTR:launch_index"]!);
        Assert.Equal(0, (int)shown["progress"]!);
        Assert.False((bool)shown["locked"]!);
        Assert.Empty(shown["addresses"]!.AsObject());
        Assert.Empty(shown["volumes_attached"]!.AsArray());
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", (string)shown["created"]!);
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$", (string)shown["OS-SRV-USG:launched_at"]!);
        Assert.Matches(@"^ferry-test-guest \([0-9a-f-]{36}\)$", (string)shown["image"]!);
        Assert.Equal("UP", (string?)shown["host_status"]);

        var allocation = await PlacementAsync("resource", "provider", "allocation", "show", id);
        AssertColumns(s_allocationColumns, allocation);
        Assert.Equal("unknown", (string?)allocation[0]!["consumer_type"]);
        Assert.Equal(["DISK_GB", "MEMORY_MB", "VCPU"], Keys(allocation[0]!["resources"]));

        Assert.Equal("Complete", (await AdminRunAsync("server", "migrate", "--live-migration", "--host", "compute2", "--wait", id)).Stdout.Trim());
        var afterLive = await StateAsync(id);
        Assert.Equal(s_stateColumns.Order(StringComparer.Ordinal), Keys(afterLive));
        Assert.Equal(("compute2", "active", "ACTIVE"), ((string?)afterLive["OS-EXT-SRV-ATTR:host"], (string?)afterLive["OS-EXT-STS:vm_state"], (string?)afterLive["status"]));
        Assert.Null(afterLive["OS-EXT-STS:task_state"]);
        var live = await AdminAsync("server", "migration", "list", "--server", id, "--type", "live-migration");
        AssertColumns(s_migrationListColumns, live);
        Assert.Null(live[0]!["Dest Host"]);
        Assert.Equal(1, (int)live[0]!["Old Flavor"]!);
        Assert.Equal(("completed", "live-migration"), ((string?)live[0]!["Status"], (string?)live[0]!["Type"]));
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$", (string)live[0]!["Created At"]!);

        await AdminRunAsync("server", "migrate", "--host", "compute1", "--wait", id);
        var resized = await StateAsync(id);
        Assert.Equal(("compute1", "resized", "VERIFY_RESIZE"), ((string?)resized["OS-EXT-SRV-ATTR:host"], (string?)resized["OS-EXT-STS:vm_state"], (string?)resized["status"]));
        var cold = await AdminAsync("server", "migration", "list", "--server", id, "--type", "cold-migration");
        AssertColumns(s_migrationListColumns, cold);
        Assert.Equal("migration", (string?)cold[0]!["Type"]);
        Assert.NotNull((string?)cold[0]!["Dest Host"]);
        AssertColumns(s_allocationColumns, await PlacementAsync("resource", "provider", "allocation", "show", (string)cold[0]!["UUID"]!));
        var confirm = await AdminRunAsync("server", "migration", "confirm", id);
        Assert.Equal("", confirm.Stdout);
        var confirmed = await CliPolling.UntilAsync(() => AdminAsync("server", "migration", "list", "--server", id, "--type", "cold-migration"),
            list => (string?)list[0]!["Status"] == "confirmed", "the cold migration to be confirmed");
        AssertColumns(s_migrationListColumns, confirmed);

        var servers = await AdminAsync("server", "list", "--long");
        AssertColumns(s_serverListLongColumns, servers);
        var row = servers.AsArray().Single(s => (string?)s!["ID"] == id)!;
        Assert.Null(row["Task State"]);
        Assert.Equal(1, (int)row["Power State"]!);
        Assert.Equal(("ferry-test-guest", "nova", "UP"), ((string?)row["Image Name"], (string?)row["Availability Zone"], (string?)row["Host Status"]));
    }

    [Fact]
    public async Task Running_live_migration_show_has_the_reference_keys()
    {
        fixture.RequireOpenStack();
        var created = await AdminAsync("server", "create", "--flavor", "m1.tiny", "--image", "ferry-test-guest", "--nic", "none",
            "--availability-zone", "nova:compute3", "--property", "ferry:dirty_rate_mibps=4000", "--wait", "ref-b");
        var id = (string)created["id"]!;
        await AdminRunAsync("server", "migrate", "--live-migration", "--host", "compute1", id);
        var running = await CliPolling.UntilAsync(() => AdminAsync("server", "migration", "list", "--server", id),
            list => list.AsArray().Any(m => (string?)m!["Status"] == "running"), "a running live migration");
        var migration = (int)running[0]!["Id"]!;

        var shown = await AdminAsync("server", "migration", "show", id, migration.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(s_migrationShowKeys, Keys(shown));
        Assert.Equal(migration, (int)shown["ID"]!);
        Assert.Null(shown["Dest Host"]);

        Assert.Equal("", (await AdminRunAsync("server", "migration", "abort", id, migration.ToString(System.Globalization.CultureInfo.InvariantCulture))).Stdout);
        var cancelled = await CliPolling.UntilAsync(() => AdminAsync("server", "migration", "list", "--server", id),
            list => (string?)list[0]!["Status"] == "cancelled", "the live migration to be cancelled");
        AssertColumns(s_migrationListColumns, cancelled);

        // A finished migration is no longer "in progress": Nova's 404 text, through the CLI.
        var gone = await fixture.RunAsync(fixture.AdminEnv, "--os-compute-api-version", ComputeVersion, "server", "migration", "show", id,
            migration.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(1, gone.ExitCode);
        Assert.StartsWith($"In-progress live migration {migration} is not found for server {id}. (HTTP 404)", gone.Stderr.Trim(), StringComparison.Ordinal);
    }

    [GeneratedRegex("\"allocation_ratio\": ([0-9.e+-]+)")]
    private static partial Regex AllocationRatio();
}
