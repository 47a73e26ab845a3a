using System.Text.Json.Nodes;

namespace Ferry.FunctionalTests.Cli;

/// <summary>Resize/confirm and cold-migrate/revert through <c>openstack ... --wait</c>.</summary>
public sealed class ResizeCliTests(CliFixture fixture) : IClassFixture<CliFixture>
{
    private const string ComputeVersion = "2.latest";

    private Task<JsonNode> AdminAsync(params string[] args) => fixture.AdminJsonAsync(ComputeVersion, args);

    private Task<CliResult> AdminRunAsync(params string[] args) => fixture.AdminRunAsync(ComputeVersion, args);

    private Task<string> BootAsync(string name, string host) => fixture.BootAsync(name, host);

    [Fact]
    public async Task Resize_confirm_then_migrate_revert()
    {
        fixture.RequireOpenStack();
        var id = await BootAsync("cli-resize", "compute1");

        await AdminRunAsync("server", "resize", "--flavor", "m1.small", "--wait", id);
        var resized = await AdminAsync("server", "show", id);
        Assert.Equal("VERIFY_RESIZE", (string?)resized["status"]);
        Assert.Equal("resized", (string?)resized["OS-EXT-STS:vm_state"]);
        Assert.Equal("m1.small", (string?)resized["flavor"]!["original_name"]);

        await AdminRunAsync("server", "resize", "confirm", id);
        var confirmed = await AdminAsync("server", "show", id);
        Assert.Equal("ACTIVE", (string?)confirmed["status"]);
        Assert.Equal("m1.small", (string?)confirmed["flavor"]!["original_name"]);
        Assert.Equal(2048, (int)confirmed["flavor"]!["ram"]!);
        var host = (string)confirmed["OS-EXT-SRV-ATTR:host"]!;
        var resize = Assert.Single((await AdminAsync("server", "migration", "list", "--server", id)).AsArray())!;
        Assert.Equal("resize", (string?)resize["Type"]);
        Assert.Equal("confirmed", (string?)resize["Status"]);

        await AdminRunAsync("server", "migrate", "--wait", id);
        var migrated = await AdminAsync("server", "show", id);
        Assert.Equal("VERIFY_RESIZE", (string?)migrated["status"]);
        Assert.NotEqual(host, (string?)migrated["OS-EXT-SRV-ATTR:host"]);

        await AdminRunAsync("server", "resize", "revert", id);
        var reverted = await CliPolling.UntilAsync(() => AdminAsync("server", "show", id),
            s => (string?)s["status"] == "ACTIVE" && s["OS-EXT-STS:task_state"] is null, "the revert to finish");
        Assert.Equal(host, (string?)reverted["OS-EXT-SRV-ATTR:host"]);
        Assert.Equal(host, (string?)reverted["OS-EXT-SRV-ATTR:hypervisor_hostname"]);
        Assert.Equal("active", (string?)reverted["OS-EXT-STS:vm_state"]);
        var migrations = (await AdminAsync("server", "migration", "list", "--server", id)).AsArray();
        Assert.Contains(migrations, m => (string?)m!["Type"] == "migration" && (string?)m["Status"] == "reverted");
    }
}
