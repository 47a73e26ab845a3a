using System.Net;
using System.Text.Json.Nodes;
using Ferry.Core.Domain;

namespace Ferry.FunctionalTests.Flows;

/// <summary><c>/servers/{id}/metadata[/{key}]</c> and <c>/servers/{id}/ips[/{network}]</c> as Nova serves them.</summary>
public sealed class ServerMetadataTests(FerryFixture fixture) : FlowTest<FerryFixture>(fixture)
{
    private static JsonNode Json(string text) => JsonNode.Parse(text)!;

    private Dictionary<string, string> Stored(string id) => new(Instances.Get(id).Metadata);

    private static string Message(JsonNode? error, string fault) => error![fault]!["message"]!.GetValue<string>();

    [Fact]
    public async Task Metadata_MergeSetOneReplaceShowDelete_BodiesAndStatusesAsNova()
    {
        var id = await BootAsync("compute1", metadata: new() { ["a"] = "1" });

        var (status, body) = await Admin.GetAsync($"servers/{id}/metadata");
        Assert.Equal((HttpStatusCode.OK, """{"metadata":{"a":"1"}}"""), (status, body!.ToJsonString()));

        // POST merges and answers every item (200, not 201).
        (status, body) = await Admin.PostAsync($"servers/{id}/metadata", Json("""{"metadata": {"b": "2", "a": "one"}}"""));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(new Dictionary<string, string> { ["a"] = "one", ["b"] = "2" }, Stored(id));
        Assert.Equal("one", (string?)body!["metadata"]!["a"]);
        Assert.Equal("2", (string?)body["metadata"]!["b"]);

        // PUT on a key sets that key and answers just it.
        (status, body) = await Admin.SendAsync(HttpMethod.Put, $"servers/{id}/metadata/c key", Json("""{"meta": {"c key": "3"}}"""));
        Assert.Equal((HttpStatusCode.OK, """{"meta":{"c key":"3"}}"""), (status, body!.ToJsonString()));
        (status, body) = await Admin.GetAsync($"servers/{id}/metadata/c key");
        Assert.Equal((HttpStatusCode.OK, """{"meta":{"c key":"3"}}"""), (status, body!.ToJsonString()));
        Assert.Equal("3", (string?)(await Admin.GetServerAsync(id))["metadata"]!["c key"]);

        // PUT on the collection replaces everything.
        (status, body) = await Admin.SendAsync(HttpMethod.Put, $"servers/{id}/metadata", Json("""{"metadata": {"x": "y"}}"""));
        Assert.Equal((HttpStatusCode.OK, """{"metadata":{"x":"y"}}"""), (status, body!.ToJsonString()));
        Assert.Equal(new Dictionary<string, string> { ["x"] = "y" }, Stored(id));

        (status, body) = await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}/metadata/x");
        Assert.Equal(HttpStatusCode.NoContent, status);
        Assert.Empty(Stored(id));

        (status, body) = await Admin.GetAsync($"servers/{id}/metadata/x");
        Assert.Equal((HttpStatusCode.NotFound, "Metadata item was not found"), (status, Message(body, "itemNotFound")));
        (status, body) = await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}/metadata/x");
        Assert.Equal((HttpStatusCode.NotFound, "Metadata item was not found"), (status, Message(body, "itemNotFound")));
        (status, body) = await Admin.GetAsync($"servers/{id}/metadata");
        Assert.Equal((HttpStatusCode.OK, """{"metadata":{}}"""), (status, body!.ToJsonString()));
    }

    [Theory]
    [InlineData("PUT", "/metadata/k", """{"meta": {"other": "v"}}""", "Request body and URI mismatch")]
    [InlineData("PUT", "/metadata/k", """{"meta": {"k": "v", "l": "w"}}""", "has too many properties")]
    [InlineData("PUT", "/metadata/k", """{"meta": {}}""", "should be non-empty")]
    [InlineData("POST", "/metadata", """{"metadata": {"a/b": "v"}}""", "Additional properties are not allowed ('a/b' was unexpected)")]
    [InlineData("POST", "/metadata", """{"metadata": {"k": 1}}""", "1 is not of type 'string'")]
    [InlineData("POST", "/metadata", """{"metadata": {"k": null}}""", "None is not of type 'string'")]
    [InlineData("POST", "/metadata", """{"metadata": ["k"]}""", "is not of type 'object'")]
    [InlineData("POST", "/metadata", """{"meta": {"k": "v"}}""", "'metadata' is a required property")]
    [InlineData("PUT", "/metadata", """{"metadata": {"k": "v"}, "extra": 1}""", "Additional properties are not allowed ('extra' was unexpected)")]
    public async Task Metadata_BadBody_400NothingChanged(string method, string path, string json, string reason)
    {
        var id = await BootAsync("compute2", metadata: new() { ["keep"] = "me" });

        var (status, body) = await Admin.SendAsync(new HttpMethod(method), $"servers/{id}{path}", Json(json));

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(reason, Message(body, "badRequest"));
        Assert.Equal(new Dictionary<string, string> { ["keep"] = "me" }, Stored(id));
    }

    [Fact]
    public async Task Metadata_ValueOf256Characters_400_KeyOf255Accepted()
    {
        var id = await BootAsync("compute2");
        var key = new string('k', 255);

        var (status, body) = await Admin.PostAsync($"servers/{id}/metadata", new JsonObject { ["metadata"] = new JsonObject { ["k"] = new string('v', 256) } });
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("is too long", Message(body, "badRequest"));
        Assert.Empty(Stored(id));

        (status, _) = await Admin.PostAsync($"servers/{id}/metadata", new JsonObject { ["metadata"] = new JsonObject { [key] = new string('v', 255) } });
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal([key], Stored(id).Keys);
    }

    [Fact]
    public async Task Metadata_OverMetadataItemsQuota_403NothingChanged()
    {
        var (created, body) = await Fixture.Demo.PostAsync("servers", Json("""
            {"server": {"name": "meta-quota", "imageRef": "ferry-test-guest", "flavorRef": "m1.nano", "networks": "none", "metadata": {"a": "1"}}}
            """));
        Assert.Equal(HttpStatusCode.Accepted, created);
        var id = body!["server"]!["id"]!.GetValue<string>();
        await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE");
        var (quota, _) = await Admin.SendAsync(HttpMethod.Put, "os-quota-sets/demo", Json("""{"quota_set": {"metadata_items": 2}}"""));
        Assert.Equal(HttpStatusCode.OK, quota);
        try
        {
            var (status, error) = await Fixture.Demo.PostAsync($"servers/{id}/metadata", Json("""{"metadata": {"b": "2", "c": "3"}}"""));
            Assert.Equal((HttpStatusCode.Forbidden, "Maximum number of metadata items exceeds 2"), (status, Message(error, "forbidden")));
            (status, error) = await Fixture.Demo.SendAsync(HttpMethod.Put, $"servers/{id}/metadata", Json("""{"metadata": {"x": "1", "y": "2", "z": "3"}}"""));
            Assert.Equal((HttpStatusCode.Forbidden, "Maximum number of metadata items exceeds 2"), (status, Message(error, "forbidden")));
            Assert.Equal(new Dictionary<string, string> { ["a"] = "1" }, Stored(id));

            (status, _) = await Fixture.Demo.SendAsync(HttpMethod.Put, $"servers/{id}/metadata/b", Json("""{"meta": {"b": "2"}}"""));
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Equal(new Dictionary<string, string> { ["a"] = "1", ["b"] = "2" }, Stored(id));
        }
        finally
        {
            await Admin.SendAsync(HttpMethod.Delete, "os-quota-sets/demo");
            await Fixture.Demo.SendAsync(HttpMethod.Delete, $"servers/{id}");
            await WaitForAsync(id, i => i.VmState == VmState.Deleted, "deleted");
        }
    }

    [Fact]
    public async Task Metadata_OtherProjectsServer404_NothingChanged()
    {
        var id = await BootAsync("compute3", metadata: new() { ["a"] = "1" });

        foreach (var (method, path, json) in new (string, string, string?)[]
                 {
                     ("GET", "/metadata", null), ("GET", "/metadata/a", null), ("POST", "/metadata", """{"metadata": {"b": "2"}}"""),
                     ("PUT", "/metadata", """{"metadata": {}}"""), ("PUT", "/metadata/a", """{"meta": {"a": "x"}}"""), ("DELETE", "/metadata/a", null),
                     ("GET", "/ips", null), ("GET", "/ips/private", null),
                 })
        {
            var (status, body) = await Fixture.Demo.SendAsync(new HttpMethod(method), $"servers/{id}{path}", json is null ? null : Json(json));
            Assert.True(status == HttpStatusCode.NotFound, $"{method} {path}: {(int)status} {body?.ToJsonString()}");
            Assert.Equal($"Instance {id} could not be found.", Message(body, "itemNotFound"));
        }
        Assert.Equal(new Dictionary<string, string> { ["a"] = "1" }, Stored(id));
    }

    [Fact]
    public async Task Metadata_ServerInErrorOrMidTask_409InNovasWords_StoppedServerAccepted()
    {
        var id = await BootAsync("compute1", metadata: new() { ["a"] = "1" });
        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, Json("""{"os-resetState": {"state": "error"}}"""))).Status);

        var (status, body) = await Admin.PostAsync($"servers/{id}/metadata", Json("""{"metadata": {"b": "2"}}"""));
        Assert.Equal((HttpStatusCode.Conflict, $"Cannot 'update metadata' instance {id} while it is in vm_state error"), (status, Message(body, "conflictingRequest")));
        (status, body) = await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}/metadata/a");
        Assert.Equal((HttpStatusCode.Conflict, $"Cannot 'delete metadata' instance {id} while it is in vm_state error"), (status, Message(body, "conflictingRequest")));
        Assert.Equal(new Dictionary<string, string> { ["a"] = "1" }, Stored(id));

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, Json("""{"os-resetState": {"state": "active"}}"""))).Status);
        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, Json("""{"os-stop": null}"""))).Status);
        await WaitForAsync(id, i => i.VmState == VmState.Stopped && i.TaskState is null, "SHUTOFF");
        (status, _) = await Admin.SendAsync(HttpMethod.Put, $"servers/{id}/metadata/a", Json("""{"meta": {"a": "stopped"}}"""));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(new Dictionary<string, string> { ["a"] = "stopped" }, Stored(id));
    }

    [Fact]
    public async Task Ips_ServerWithoutNetworks_EmptyAddresses_NetworkName404()
    {
        var id = await BootAsync("compute2");

        var (status, body) = await Admin.GetAsync($"servers/{id}/ips");
        Assert.Equal((HttpStatusCode.OK, """{"addresses":{}}"""), (status, body!.ToJsonString()));
        (status, body) = await Admin.GetAsync($"servers/{id}/ips/private");
        Assert.Equal((HttpStatusCode.NotFound, "Instance is not a member of specified network"), (status, Message(body, "itemNotFound")));
        (status, body) = await Admin.GetAsync("servers/00000000-0000-0000-0000-000000000000/ips");
        Assert.Equal(HttpStatusCode.NotFound, status);
    }
    [Theory]
    [InlineData("""{"a/b": "v"}""", "Additional properties are not allowed ('a/b' was unexpected)")]
    [InlineData("""{"k": 1}""", "1 is not of type 'string'")]
    [InlineData("""{"": "v"}""", "Additional properties are not allowed ('' was unexpected)")]
    public async Task CreateServer_MetadataNovaRefuses_400NoServer(string metadata, string reason)
    {
        var before = Instances.List().Count;
        var (status, body) = await Admin.PostAsync("servers", Json($$"""
            {"server": {"name": "bad-meta", "imageRef": "ferry-test-guest", "flavorRef": "m1.nano", "networks": "none", "metadata": {{metadata}} } }
            """));

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(reason, Message(body, "badRequest"));
        Assert.Equal(before, Instances.List().Count);
    }
}
