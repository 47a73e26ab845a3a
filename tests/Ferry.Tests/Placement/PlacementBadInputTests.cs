using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace Ferry.Tests.Placement;

/// <summary>Bad requests the fuzz run found: each is answered in Placement's own error body, with its request id.</summary>
public sealed class PlacementBadInputTests(PlacementApiFixture fixture) : IClassFixture<PlacementApiFixture>, IDisposable
{
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(30));

    private CancellationToken Ct => _timeout.Token;

    public void Dispose() => _timeout.Dispose();

    [Theory]
    [InlineData("%20")]
    [InlineData("not-a-uuid")]
    public async Task PutAllocations_ConsumerNotUuid_Returns400(string consumer)
    {
        using var response = await SendAsync(HttpMethod.Put, $"/allocations/{consumer}",
            """{"allocations": {}, "project_id": "p", "user_id": "u", "consumer_generation": null}""");

        var error = await ErrorAsync(response, 400);
        Assert.StartsWith("Malformed consumer_uuid: ", (string?)error["detail"]);
    }

    [Fact]
    public async Task PostAllocations_ConsumerNotUuid_Returns400()
    {
        using var response = await SendAsync(HttpMethod.Post, "/allocations",
            """{"x": {"allocations": {}, "project_id": "p", "user_id": "u", "consumer_generation": null}}""");

        await ErrorAsync(response, 400);
    }

    [Theory]
    [InlineData("""{"name": "\ud800"}""")]
    [InlineData("""{"name": "a", "name": {"x": 1}}""")]
    public async Task PostResourceProvider_LoneSurrogateOrRepeatedKeyOfWrongType_Returns400(string body)
    {
        using var response = await SendAsync(HttpMethod.Post, "/resource_providers", body);

        await ErrorAsync(response, 400);
    }

    [Theory]
    [InlineData("inventories", """{"resource_provider_generation": 0, "inventories": {"VCPU": null}}""")]
    [InlineData("traits", """{"resource_provider_generation": 0, "traits": ["CUSTOM_A", null]}""")]
    public async Task PutProviderCollection_NullEntry_Returns400AndChangesNothing(string collection, string body)
    {
        var uuid = Guid.NewGuid().ToString();
        using (var created = await SendAsync(HttpMethod.Post, "/resource_providers", $$"""{"name": "null-{{uuid}}", "uuid": "{{uuid}}"}"""))
        {
            Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync(Ct));
        }

        using var response = await SendAsync(HttpMethod.Put, $"/resource_providers/{uuid}/{collection}", body);

        await ErrorAsync(response, 400);
        using var provider = await SendAsync(HttpMethod.Get, $"/resource_providers/{uuid}", null);
        Assert.Equal(0, (int?)JsonNode.Parse(await provider.Content.ReadAsStringAsync(Ct))!["generation"]);
    }

    [Fact]
    public async Task PostAllocations_NullConsumerEntry_Returns400()
    {
        using var response = await SendAsync(HttpMethod.Post, "/allocations", $$"""{"{{Guid.NewGuid()}}": null}""");

        await ErrorAsync(response, 400);
    }

    [Theory]
    [InlineData("GET", "/nope")]
    [InlineData("GET", "/resource_providers/x/y/z")]
    [InlineData("POST", "/nope/resource_providers")]
    public async Task Request_UnservedPath_Returns404InPlacementShape(string method, string path)
    {
        using var response = await SendAsync(new HttpMethod(method), path, null);

        await ErrorAsync(response, 404);
    }

    [Theory]
    [InlineData("PATCH", "/resource_providers", "GET, POST")]
    [InlineData("POST", "/resource_providers/x", "DELETE, GET, PUT")]
    [InlineData("DELETE", "/allocations", "POST")]
    public async Task Request_ServedPathWithAnotherMethod_Returns405WithAllow(string method, string path, string allow)
    {
        using var response = await SendAsync(new HttpMethod(method), path, null);

        await ErrorAsync(response, 405);
        Assert.Equal(allow, string.Join(", ", response.Content.Headers.Allow));
    }

    /// <summary>The body's single error, checked against Placement's shape: status, title, detail and the request id of the header.</summary>
    private async Task<JsonNode> ErrorAsync(HttpResponseMessage response, int status)
    {
        var text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(status == (int)response.StatusCode, text);
        var errors = JsonNode.Parse(text)!["errors"]!.AsArray();
        var error = Assert.Single(errors)!;
        Assert.Equal(status, (int?)error["status"]);
        Assert.False(string.IsNullOrEmpty((string?)error["title"]));
        Assert.False(string.IsNullOrEmpty((string?)error["detail"]));
        Assert.Equal(response.Headers.GetValues("openstack-request-id").Single(), (string?)error["request_id"]);
        Assert.StartsWith("req-", (string?)error["request_id"]);
        return error;
    }

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, string? json)
    {
        using var request = new HttpRequestMessage(method, path);
        if (json is not null)
        {
            request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        }
        request.Headers.Add("OpenStack-API-Version", "placement 1.39");
        return await fixture.Http.SendAsync(request, Ct);
    }
}
