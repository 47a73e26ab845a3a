using System.Text.Json.Nodes;

namespace Ferry.FunctionalTests.Cli;

/// <summary>
/// novaclient's <c>nova</c> moves, and the demo (member) user's 403s for the admin-only moves,
/// checked through <c>openstack server show -f json</c>.
/// </summary>
public sealed class NovaCliTests(CliFixture fixture) : IClassFixture<CliFixture>
{
    private const string ComputeVersion = "2.latest";

    private Task<JsonNode> AdminAsync(params string[] args) => fixture.AdminJsonAsync(ComputeVersion, args);

    private async Task<string> BootAsync(IReadOnlyList<KeyValuePair<string, string>> env, string name, string? host = null)
    {
        string[] zone = host is null ? [] : ["--availability-zone", $"nova:{host}"];
        var created = await fixture.JsonAsync(env, ["--os-compute-api-version", ComputeVersion,
            "server", "create", "--flavor", "m1.tiny", "--image", "ferry-test-guest", "--nic", "none", .. zone, "--wait", name]);
        Assert.Equal("ACTIVE", (string?)created["status"]);
        return (string)created["id"]!;
    }

    private async Task<CliResult> NovaAsync(params string[] args)
    {
        var result = await fixture.NovaAsync(fixture.AdminEnv, args);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result;
    }

    [Fact]
    public async Task Nova_live_migration_migrate_and_migration_list()
    {
        fixture.RequireOpenStackAndNova();
        var id = await BootAsync(fixture.AdminEnv, "nova-a", "compute1");

        await NovaAsync("live-migration", id, "compute3");
        var live = await CliPolling.UntilAsync(() => AdminAsync("server", "show", id),
            s => (string?)s["OS-EXT-SRV-ATTR:host"] == "compute3" && (string?)s["status"] == "ACTIVE" && s["OS-EXT-STS:task_state"] is null,
            "the live migration to compute3");
        Assert.Equal("active", (string?)live["OS-EXT-STS:vm_state"]);

        await NovaAsync("migrate", "--poll", id);
        var migrated = await CliPolling.UntilAsync(() => AdminAsync("server", "show", id),
            s => (string?)s["status"] == "VERIFY_RESIZE", "the cold migration");
        Assert.NotEqual("compute3", (string?)migrated["OS-EXT-SRV-ATTR:host"]);
        Assert.Equal("resized", (string?)migrated["OS-EXT-STS:vm_state"]);

        await NovaAsync("resize-confirm", id);
        var confirmed = await CliPolling.UntilAsync(() => AdminAsync("server", "show", id),
            s => (string?)s["status"] == "ACTIVE", "the confirm");
        Assert.Equal((string?)migrated["OS-EXT-SRV-ATTR:host"], (string?)confirmed["OS-EXT-SRV-ATTR:host"]);

        var list = await NovaAsync("migration-list");
        Assert.Contains(id, list.Stdout, StringComparison.Ordinal);
        Assert.Contains("live-migration", list.Stdout, StringComparison.Ordinal);
        Assert.Contains("confirmed", list.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Demo_user_may_resize_but_admin_only_moves_are_403()
    {
        fixture.RequireOpenStackAndNova();
        var id = await BootAsync(fixture.DemoEnv, "nova-demo");

        static Task Forbidden(CliResult result)
        {
            Assert.NotEqual(0, result.ExitCode);
            Assert.Contains("(HTTP 403)", result.Stderr, StringComparison.Ordinal);
            return Task.CompletedTask;
        }
        Task<CliResult> Demo(params string[] args) => fixture.RunAsync(fixture.DemoEnv, ["--os-compute-api-version", ComputeVersion, .. args]);

        await Forbidden(await Demo("server", "migrate", id));
        await Forbidden(await Demo("server", "migrate", "--live-migration", id));
        await Forbidden(await Demo("server", "migration", "list", "--server", id));
        await Forbidden(await Demo("server", "migration", "abort", id, "1"));
        await Forbidden(await Demo("server", "migration", "force", "complete", id, "1"));
        await Forbidden(await fixture.NovaAsync(fixture.DemoEnv, "evacuate", id));
        await Forbidden(await fixture.NovaAsync(fixture.DemoEnv, "migrate", id));
        await Forbidden(await fixture.NovaAsync(fixture.DemoEnv, "live-migration", id));
        await Forbidden(await fixture.NovaAsync(fixture.DemoEnv, "migration-list"));
        var untouched = await AdminAsync("server", "show", id);
        Assert.Equal("ACTIVE", (string?)untouched["status"]);
        Assert.Empty((await AdminAsync("server", "migration", "list", "--server", id)).AsArray());

        var resize = await Demo("server", "resize", "--flavor", "m1.small", "--wait", id);
        Assert.True(resize.ExitCode == 0, resize.ToString());
        var resized = await fixture.JsonAsync(fixture.DemoEnv, "server", "show", id);
        Assert.Equal("VERIFY_RESIZE", (string?)resized["status"]);
        var confirm = await Demo("server", "resize", "confirm", id);
        Assert.True(confirm.ExitCode == 0, confirm.ToString());
        var confirmed = await fixture.JsonAsync(fixture.DemoEnv, "--os-compute-api-version", ComputeVersion, "server", "show", id);
        Assert.Equal("ACTIVE", (string?)confirmed["status"]);
        Assert.Equal("m1.small", (string?)confirmed["flavor"]!["original_name"]);
    }
}
