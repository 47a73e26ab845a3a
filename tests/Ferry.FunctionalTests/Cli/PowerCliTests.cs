using System.Text.Json.Nodes;

namespace Ferry.FunctionalTests.Cli;

/// <summary><c>openstack server pause/unpause/suspend/resume</c> and <c>server set --state</c> (os-resetState).</summary>
public sealed class PowerCliTests(CliFixture fixture) : IClassFixture<CliFixture>
{
    private const string ComputeVersion = "2.latest";

    private Task<JsonNode> AdminAsync(params string[] args) => fixture.AdminJsonAsync(ComputeVersion, args);

    private Task<CliResult> AdminRunAsync(params string[] args) => fixture.AdminRunAsync(ComputeVersion, args);

    private Task<JsonNode> UntilAsync(string id, string status) =>
        CliPolling.UntilAsync(() => AdminAsync("server", "show", id), s => (string?)s["status"] == status && s["OS-EXT-STS:task_state"] is null, status);

    [Fact]
    public async Task PauseUnpauseSuspendResume_ThenResetState_StatusesAsNovaShowsThem()
    {
        fixture.RequireOpenStack();
        var id = await fixture.BootAsync("cli-power", "compute2");

        await AdminRunAsync("server", "pause", id);
        var paused = await UntilAsync(id, "PAUSED");
        Assert.Equal(("paused", 3), ((string?)paused["OS-EXT-STS:vm_state"], (int)paused["OS-EXT-STS:power_state"]!));
        await AdminRunAsync("server", "unpause", id);
        await UntilAsync(id, "ACTIVE");

        await AdminRunAsync("server", "suspend", id);
        var suspended = await UntilAsync(id, "SUSPENDED");
        Assert.Equal(("suspended", 7), ((string?)suspended["OS-EXT-STS:vm_state"], (int)suspended["OS-EXT-STS:power_state"]!));
        await AdminRunAsync("server", "resume", id);
        await UntilAsync(id, "ACTIVE");

        await AdminRunAsync("server", "set", "--state", "error", id);
        Assert.Equal("ERROR", (string?)(await AdminAsync("server", "show", id))["status"]);
        await AdminRunAsync("server", "set", "--state", "active", id);
        Assert.Equal("ACTIVE", (string?)(await AdminAsync("server", "show", id))["status"]);
        var actions = (await AdminAsync("server", "event", "list", id)).AsArray().Select(a => (string?)a!["Action"]).ToList();
        Assert.Equal(["create", "pause", "unpause", "suspend", "resume", "resetState", "resetState"], actions.AsEnumerable().Reverse());
    }
}
