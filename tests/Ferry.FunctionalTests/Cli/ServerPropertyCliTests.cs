using System.Text.Json.Nodes;

namespace Ferry.FunctionalTests.Cli;

/// <summary><c>openstack server set/unset --property</c> (server metadata) and <c>server show</c> listing them.</summary>
public sealed class ServerPropertyCliTests(CliFixture fixture) : IClassFixture<CliFixture>
{
    private const string ComputeVersion = "2.latest";

    private Task<JsonNode> AdminAsync(params string[] args) => fixture.AdminJsonAsync(ComputeVersion, args);

    private Task<CliResult> AdminRunAsync(params string[] args) => fixture.AdminRunAsync(ComputeVersion, args);

    [Fact]
    public async Task ServerSetUnsetProperty_ShowListsExactlyWhatIsLeft()
    {
        fixture.RequireOpenStack();
        var id = await fixture.BootAsync("cli-props", "compute1");

        await AdminRunAsync("server", "set", "--property", "owner=ops", "--property", "tier=gold", id);
        var shown = await AdminAsync("server", "show", id);
        Assert.Equal("""{"owner":"ops","tier":"gold"}""", shown["properties"]!.ToJsonString());

        await AdminRunAsync("server", "unset", "--property", "owner", id);
        shown = await AdminAsync("server", "show", id);
        Assert.Equal("""{"tier":"gold"}""", shown["properties"]!.ToJsonString());

        var missing = await fixture.RunAsync(fixture.AdminEnv, "--os-compute-api-version", ComputeVersion, "server", "unset", "--property", "owner", id);
        Assert.NotEqual(0, missing.ExitCode);
        Assert.Contains("Metadata item was not found", missing.Stderr + missing.Stdout);
    }
}
