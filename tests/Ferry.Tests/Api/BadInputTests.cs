namespace Ferry.Tests.Api;

/// <summary>Bad request bodies and paths found by the fuzz run: each is a 4xx in Nova's fault shape, never a 500.</summary>
[Collection(ComputeApiCollection.Name)]
public sealed class BadInputTests(ComputeApiFixture f)
{
    [Fact]
    public async Task CreateFlavor_RepeatedKey_UsesTheLastValue()
    {
        var r = await f.SendAsync(HttpMethod.Post, "v2.1/flavors",
            """{"flavor": {"name": "dup-first", "ram": 64, "vcpus": 1, "disk": 0, "name": "dup-last"}}""");

        Assert.True(r.Status == 200, r.Raw);
        Assert.Equal("dup-last", r.Json!["flavor"]!["name"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("""{"flavor": {"name": "\ud800", "ram": 64, "vcpus": 1, "disk": 0}}""")]
    [InlineData("""{"flavor": {"name": "x", "ram": 64, "vcpus": 1, "disk": 0, "\udc00": 1}}""")]
    public async Task CreateFlavor_LoneSurrogateEscape_Returns400BadRequest(string body)
    {
        var r = await f.SendAsync(HttpMethod.Post, "v2.1/flavors", body);

        Assert.True(r.Status == 400, r.Raw);
        Assert.Equal("badRequest", r.FaultName);
        Assert.StartsWith("Malformed request body", r.FaultMessage);
    }

    [Theory]
    [InlineData("ram")]
    [InlineData("vcpus")]
    [InlineData("disk")]
    [InlineData("swap")]
    [InlineData("OS-FLV-EXT-DATA:ephemeral")]
    public async Task CreateFlavor_NullInteger_Returns400AsNovaSchema(string field)
    {
        var flavor = new System.Text.Json.Nodes.JsonObject { ["name"] = $"null-{field}", ["ram"] = 64, ["vcpus"] = 1, ["disk"] = 0 };
        flavor[field] = null;

        var r = await f.SendAsync(HttpMethod.Post, "v2.1/flavors", new System.Text.Json.Nodes.JsonObject { ["flavor"] = flavor });

        Assert.True(r.Status == 400, r.Raw);
        Assert.Equal("badRequest", r.FaultName);
        Assert.Equal($"Invalid input for field/attribute {field}. Value: None. None is not of type 'integer', 'string'", r.FaultMessage);
    }

    [Theory]
    [InlineData("nope")]
    [InlineData("v3/servers")]
    public async Task Request_UnknownPathOutsideTheVersions_Returns404ItemNotFound(string path)
    {
        var r = await f.SendAsync(HttpMethod.Get, path);

        Assert.Equal(404, r.Status);
        Assert.Equal("itemNotFound", r.FaultName);
    }
}
