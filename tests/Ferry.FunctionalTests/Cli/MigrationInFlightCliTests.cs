using System.Text.Json.Nodes;

namespace Ferry.FunctionalTests.Cli;

/// <summary>
/// <c>server migration show/abort/force complete</c> (microversion 2.80) on live migrations that a
/// guest dirtying memory faster than the fake link keeps running until an operator steps in.
/// </summary>
public sealed class MigrationInFlightCliTests(SlowCliFixture fixture) : IClassFixture<SlowCliFixture>
{
    private const string ComputeVersion = "2.80";

    private Task<JsonNode> AdminAsync(params string[] args) => fixture.AdminJsonAsync(ComputeVersion, args);

    private Task<CliResult> AdminRunAsync(params string[] args) => fixture.AdminRunAsync(ComputeVersion, args);

    private async Task<(string Server, int Migration)> StartNonConvergingLiveMigrationAsync(string name, string from, string to)
    {
        var created = await AdminAsync("server", "create", "--flavor", "m1.tiny", "--image", "ferry-test-guest", "--nic", "none",
            "--availability-zone", $"nova:{from}", "--property", "ferry:dirty_rate_mibps=4000", "--wait", name);
        Assert.Equal("ACTIVE", (string?)created["status"]);
        var id = (string)created["id"]!;
        await AdminRunAsync("server", "migrate", "--live-migration", "--host", to, id);
        var running = await CliPolling.UntilAsync(() => AdminAsync("server", "migration", "list", "--server", id),
            list => list.AsArray().Any(m => (string?)m!["Status"] == "running"), "a running live migration");
        var migration = running.AsArray().Single(m => (string?)m!["Status"] == "running")!;
        Assert.Equal("live-migration", (string?)migration["Type"]);
        return (id, (int)migration["Id"]!);
    }

    [Fact]
    public async Task Running_live_migration_is_shown_then_aborted_and_stays_on_source()
    {
        fixture.RequireOpenStack();
        var (id, migration) = await StartNonConvergingLiveMigrationAsync("cli-abort", "compute1", "compute2");

        var shown = await AdminAsync("server", "migration", "show", id, migration.ToString());
        Assert.Equal(migration, (int)shown["ID"]!);
        Assert.Equal(id, (string?)shown["Server UUID"]);
        Assert.Equal("running", (string?)shown["Status"]);
        Assert.Equal("compute1", (string?)shown["Source Compute"]);
        Assert.Equal("compute1", (string?)shown["Source Node"]);
        Assert.Equal("compute2", (string?)shown["Dest Compute"]);
        Assert.Equal("compute2", (string?)shown["Dest Node"]);
        Assert.NotNull(shown["UUID"]);
        Assert.False(string.IsNullOrEmpty((string?)shown["User ID"]), shown.ToJsonString());
        foreach (var key in new[] { "Memory Total Bytes", "Memory Processed Bytes", "Memory Remaining Bytes", "Disk Total Bytes", "Created At", "Updated At", "Project ID" })
        {
            Assert.True(shown.AsObject().ContainsKey(key), $"missing {key}: {shown.ToJsonString()}");
        }

        var byUuid = await AdminAsync("server", "migration", "show", id, (string)shown["UUID"]!);
        Assert.Equal(migration, (int)byUuid["ID"]!);

        await AdminRunAsync("server", "migration", "abort", id, migration.ToString());
        var cancelled = await CliPolling.UntilAsync(() => AdminAsync("server", "migration", "list", "--server", id),
            list => (string?)list.AsArray().Single()!["Status"] == "cancelled", "the migration to be cancelled");
        Assert.Equal("live-migration", (string?)cancelled.AsArray().Single()!["Type"]);
        var server = await CliPolling.UntilAsync(() => AdminAsync("server", "show", id),
            s => (string?)s["status"] == "ACTIVE" && s["OS-EXT-STS:task_state"] is null, "the server to settle");
        Assert.Equal("compute1", (string?)server["OS-EXT-SRV-ATTR:host"]);
        Assert.Equal("compute1", (string?)server["OS-EXT-SRV-ATTR:hypervisor_hostname"]);
        Assert.Equal("active", (string?)server["OS-EXT-STS:vm_state"]);
    }

    [Fact]
    public async Task Running_live_migration_is_force_completed_and_lands_on_destination()
    {
        fixture.RequireOpenStack();
        var (id, migration) = await StartNonConvergingLiveMigrationAsync("cli-force", "compute3", "compute1");

        await AdminRunAsync("server", "migration", "force", "complete", id, migration.ToString());
        var completed = await CliPolling.UntilAsync(() => AdminAsync("server", "migration", "list", "--server", id, "--status", "completed"),
            list => list.AsArray().Count == 1, "the migration to complete");
        var row = completed.AsArray().Single()!;
        Assert.Equal(migration, (int)row["Id"]!);
        Assert.Equal("compute3", (string?)row["Source Compute"]);
        Assert.Equal("compute1", (string?)row["Dest Compute"]);
        var server = await CliPolling.UntilAsync(() => AdminAsync("server", "show", id),
            s => (string?)s["status"] == "ACTIVE" && s["OS-EXT-STS:task_state"] is null, "the server to settle");
        Assert.Equal("compute1", (string?)server["OS-EXT-SRV-ATTR:host"]);
        Assert.Equal(1, (int)server["OS-EXT-STS:power_state"]!);
    }
}
