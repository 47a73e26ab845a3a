using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Ferry.FunctionalTests.Cli;

namespace Ferry.FunctionalTests.Fuzz;

/// <summary>
/// Bad bodies the fuzz run found on the identity and image APIs (behind real Keystone tokens): each is a
/// 4xx in the service's own shape, never a 500 or an empty body.
/// </summary>
public sealed class BadInputTests(CliFixture fixture) : IClassFixture<CliFixture>, IDisposable
{
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };

    public void Dispose() => _http.Dispose();

    [Theory]
    [InlineData("""{"auth": {"identity": {"methods": [1], "password": {}}}}""", "Invalid input for field 'identity/methods/0': 1 is not of type 'string'")]
    [InlineData("""{"auth": {"identity": {"methods": ["password"], "password": "x"}}}""", "Expecting to find user in password.")]
    [InlineData("""{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "\ud800", "password": "x"}}}}}""", "The request body is not valid JSON.")]
    public async Task IssueToken_WronglyTypedOrLoneSurrogate_Returns400KeystoneError(string body, string message)
    {
        using var response = await _http.PostAsync($"{fixture.IdentityUrl}/v3/auth/tokens", new StringContent(body, Encoding.UTF8, "application/json"));

        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, text);
        var error = JsonNode.Parse(text)!["error"]!;
        Assert.Equal(400, (int?)error["code"]);
        Assert.Equal("Bad Request", (string?)error["title"]);
        Assert.Equal(message, (string?)error["message"]);
    }

    [Theory]
    [InlineData("""[{"op": 1, "path": "/name", "value": "x"}]""")]
    [InlineData("""[{"op": "replace", "path": ["name"], "value": "x"}]""")]
    [InlineData("""["replace"]""")]
    public async Task PatchImage_OperationOfWrongType_Returns400AndChangesNothing(string patch)
    {
        var token = await AdminTokenAsync();
        var id = await CreateImageAsync(token, "patch-target");

        using var request = new HttpRequestMessage(HttpMethod.Patch, $"{ImageUrl}/v2/images/{id}")
        {
            Content = new StringContent(patch, Encoding.UTF8, "application/openstack-images-v2.1-json-patch"),
        };
        request.Content.Headers.ContentType!.CharSet = null;
        request.Headers.Add("X-Auth-Token", token);
        using var response = await _http.SendAsync(request);

        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, text);
        var body = JsonNode.Parse(text)!;
        Assert.Equal("400 Bad Request", (string?)body["code"]);
        Assert.Equal("patch-target", (string?)(await GetImageAsync(token, id))["name"]);
    }

    [Fact]
    public async Task DeleteImage_WithoutData_Returns204()
    {
        var token = await AdminTokenAsync();
        var id = await CreateImageAsync(token, "no-data");

        using var request = new HttpRequestMessage(HttpMethod.Delete, $"{ImageUrl}/v2/images/{id}");
        request.Headers.Add("X-Auth-Token", token);
        using var response = await _http.SendAsync(request);

        Assert.True(response.StatusCode == HttpStatusCode.NoContent, await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("identity", "DELETE", "/v3/users", 405)]
    [InlineData("identity", "GET", "/v3/nope", 404)]
    [InlineData("image", "PUT", "/v2/images", 405)]
    [InlineData("image", "GET", "/v2/nope", 404)]
    public async Task Request_WrongMethodOrUnknownPath_Returns405Or404InServiceShape(string service, string method, string path, int status)
    {
        var token = await AdminTokenAsync();
        var url = (service == "identity" ? fixture.IdentityUrl : ImageUrl) + path;
        using var request = new HttpRequestMessage(new HttpMethod(method), url);
        request.Headers.Add("X-Auth-Token", token);
        using var response = await _http.SendAsync(request);

        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == (int)response.StatusCode, text);
        var body = JsonNode.Parse(text)!;
        if (service == "identity")
        {
            Assert.Equal(status, (int?)body["error"]!["code"]);
        }
        else
        {
            Assert.StartsWith($"{status} ", (string?)body["code"]);
        }
        Assert.Equal(status == 405, response.Content.Headers.Allow.Count > 0);
    }

    private string ImageUrl => fixture.Ferry.Options.ImageUrl;

    private async Task<string> AdminTokenAsync()
    {
        var body = new JsonObject
        {
            ["auth"] = new JsonObject
            {
                ["identity"] = new JsonObject
                {
                    ["methods"] = new JsonArray("password"),
                    ["password"] = new JsonObject { ["user"] = new JsonObject { ["name"] = "admin", ["domain"] = new JsonObject { ["id"] = "default" }, ["password"] = fixture.AdminPassword } },
                },
                ["scope"] = new JsonObject { ["project"] = new JsonObject { ["name"] = "admin", ["domain"] = new JsonObject { ["id"] = "default" } } },
            },
        };
        using var response = await _http.PostAsync($"{fixture.IdentityUrl}/v3/auth/tokens", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return response.Headers.GetValues("X-Subject-Token").Single();
    }

    private async Task<string> CreateImageAsync(string token, string name)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"{ImageUrl}/v2/images")
        {
            Content = new StringContent($$"""{"name": "{{name}}", "disk_format": "raw", "container_format": "bare"}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("X-Auth-Token", token);
        using var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, text);
        return (string)JsonNode.Parse(text)!["id"]!;
    }

    private async Task<JsonNode> GetImageAsync(string token, string id)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"{ImageUrl}/v2/images/{id}");
        request.Headers.Add("X-Auth-Token", token);
        using var response = await _http.SendAsync(request);
        return JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
    }
}
