using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;

namespace Ferry.FunctionalTests.Cli;

/// <summary>
/// Token requests Ferry's Keystone does not serve (domain and system scope) get Keystone's own 401 answer over
/// HTTP, not a 500 and not a token with a scope nobody checks.
/// </summary>
public sealed class TokenScopeTests(CliFixture fixture) : IClassFixture<CliFixture>
{
    private static readonly HttpClient s_http = new();

    [Theory]
    [InlineData("""{"domain": {"name": "Default"}}""")]
    [InlineData("""{"domain": {"id": "default"}}""")]
    [InlineData("""{"system": {"all": true}}""")]
    public async Task TokenRequest_DomainOrSystemScope_RefusedWithKeystonesUnauthorized(string scope)
    {
        var response = await RequestTokenAsync(JsonNode.Parse(scope));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.False(response.Headers.Contains("X-Subject-Token"));
        var error = (await response.Content.ReadFromJsonAsync<JsonObject>())!["error"]!;
        Assert.Equal(401, (int)error["code"]!);
        Assert.Equal("Unauthorized", (string?)error["title"]);
        Assert.Equal("Only project-scoped and unscoped tokens are supported.", (string?)error["message"]);
    }

    [Fact]
    public async Task TokenRequest_ProjectScope_Issued()
    {
        var response = await RequestTokenAsync(JsonNode.Parse("""{"project": {"name": "admin", "domain": {"id": "default"}}}"""));

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.True(response.Headers.Contains("X-Subject-Token"));
    }

    private async Task<HttpResponseMessage> RequestTokenAsync(JsonNode? scope)
    {
        var body = new JsonObject
        {
            ["auth"] = new JsonObject
            {
                ["identity"] = new JsonObject
                {
                    ["methods"] = new JsonArray("password"),
                    ["password"] = new JsonObject
                    {
                        ["user"] = new JsonObject { ["name"] = "admin", ["domain"] = new JsonObject { ["id"] = "default" }, ["password"] = fixture.AdminPassword },
                    },
                },
                ["scope"] = scope,
            },
        };
        return await s_http.PostAsJsonAsync($"{fixture.IdentityUrl}/v3/auth/tokens", body);
    }
}
