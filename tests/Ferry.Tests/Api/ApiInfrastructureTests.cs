namespace Ferry.Tests.Api;

[Collection(ComputeApiCollection.Name)]
public sealed class ApiInfrastructureTests(ComputeApiFixture f)
{
    [Fact]
    public async Task GetVersion_NoToken_ReturnsCurrentVersionDocument()
    {
        var r = await f.SendAsync(HttpMethod.Get, "v2.1", token: null, version: null);
        Assert.Equal(200, r.Status);
        Assert.Equal("v2.1", r.Json!["version"]!["id"]!.GetValue<string>());
        Assert.Equal("CURRENT", r.Json["version"]!["status"]!.GetValue<string>());
        Assert.Equal("2.95", r.Json["version"]!["version"]!.GetValue<string>());
        Assert.Equal("2.1", r.Json["version"]!["min_version"]!.GetValue<string>());
        Assert.NotNull(r.Json["version"]!["media-types"]);

        var slash = await f.SendAsync(HttpMethod.Get, "v2.1/", token: null, version: null);
        Assert.Equal(200, slash.Status);
        var v2 = await f.SendAsync(HttpMethod.Get, "v2", token: null, version: null);
        Assert.Equal("v2.0", v2.Json!["version"]!["id"]!.GetValue<string>());

        var root = await f.SendAsync(HttpMethod.Get, "", token: null, version: null);
        Assert.Equal(200, root.Status);
        Assert.Equal(2, root.Json!["versions"]!.AsArray().Count);
    }

    [Fact]
    public async Task Request_NoToken_Returns401Unauthorized()
    {
        var r = await f.SendAsync(HttpMethod.Get, "v2.1/servers", token: null);
        Assert.Equal(401, r.Status);
        Assert.Equal("unauthorized", r.FaultName);
        Assert.Equal(401, r.Json!["unauthorized"]!["code"]!.GetValue<int>());
    }

    [Theory]
    [InlineData("2.96", "Version 2.96 is not supported by the API. Minimum is 2.1 and maximum is 2.95.")]
    [InlineData("2.0", "Version 2.0 is not supported by the API. Minimum is 2.1 and maximum is 2.95.")]
    [InlineData("3.1", "Version 3.1 is not supported by the API. Minimum is 2.1 and maximum is 2.95.")]
    public async Task Request_UnsupportedVersion_Returns406NotAcceptable(string version, string message)
    {
        var r = await f.SendAsync(HttpMethod.Get, "v2.1/servers", version: version);
        Assert.Equal(406, r.Status);
        Assert.Equal("computeFault", r.FaultName); // Nova has no fault name for 406 (wsgi.Fault._fault_names)
        Assert.Equal(message, r.FaultMessage);
    }

    [Theory]
    [InlineData("2.x")]
    [InlineData("2.latest")]
    [InlineData("2.01")]
    public async Task Request_MalformedVersion_Returns400BadRequest(string version)
    {
        var r = await f.SendAsync(HttpMethod.Get, "v2.1/servers", version: version);
        Assert.Equal(400, r.Status);
        Assert.Equal("badRequest", r.FaultName);
        Assert.Equal($"API Version String {version} is of invalid format. Must be of format MajorNum.MinorNum.", r.FaultMessage);
    }

    [Fact]
    public async Task Request_Latest_EchoesMaxVersionHeaders()
    {
        var r = await f.SendAsync(HttpMethod.Get, "v2.1/servers", version: "latest");
        Assert.Equal(200, r.Status);
        Assert.Equal("compute 2.95", r.Headers["OpenStack-API-Version"]);
        Assert.Equal("2.95", r.Headers["X-OpenStack-Nova-API-Version"]);
        Assert.Contains("OpenStack-API-Version", r.Headers["Vary"], StringComparison.Ordinal);
        Assert.Contains("X-OpenStack-Nova-API-Version", r.Headers["Vary"], StringComparison.Ordinal);
        Assert.StartsWith("req-", r.Headers["x-openstack-request-id"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Request_NoVersionHeader_Uses21()
    {
        var r = await f.SendAsync(HttpMethod.Get, "v2.1/servers", version: null);
        Assert.Equal("compute 2.1", r.Headers["OpenStack-API-Version"]);
        Assert.Equal("2.1", r.Headers["X-OpenStack-Nova-API-Version"]);
    }

    [Fact]
    public async Task Request_LegacyVersionHeader_IsHonoured()
    {
        var r = await f.SendAsync(HttpMethod.Get, "v2.1/servers", version: null,
            configure: m => m.Headers.Add("X-OpenStack-Nova-API-Version", "2.53"));
        Assert.Equal("compute 2.53", r.Headers["OpenStack-API-Version"]);
    }

    [Fact]
    public async Task UnknownRoute_Returns404ItemNotFound()
    {
        var r = await f.SendAsync(HttpMethod.Get, "v2.1/no-such-thing");
        Assert.Equal(404, r.Status);
        Assert.Equal("itemNotFound", r.FaultName);
    }

    [Fact]
    public async Task V2Prefix_ServesTheSameApi()
    {
        var r = await f.SendAsync(HttpMethod.Get, "v2/flavors");
        Assert.Equal(200, r.Status);
        Assert.True(r.Json!["flavors"]!.AsArray().Count >= 2);
    }

    [Fact]
    public async Task Action_MalformedJson_Returns400BadRequest()
    {
        var host = f.AddHost();
        var vm = f.AddInstance(host);
        var r = await f.SendAsync(HttpMethod.Post, $"v2.1/servers/{vm.Uuid}/action", "{\"os-migrateLive\": ");
        Assert.Equal(400, r.Status);
        Assert.Equal("badRequest", r.FaultName);
        Assert.Null(f.Instances.Get(vm.Uuid).TaskState);
    }

    [Fact]
    public async Task ServerShow_OtherProject_Returns404ButAdminSeesIt()
    {
        var vm = f.AddInstance(f.AddHost(), project: "p1");
        var other = await f.SendAsync(HttpMethod.Get, $"v2.1/servers/{vm.Uuid}", token: "bob:p2");
        Assert.Equal(404, other.Status);
        Assert.Equal($"Instance {vm.Uuid} could not be found.", other.FaultMessage);
        var owner = await f.SendAsync(HttpMethod.Get, $"v2.1/servers/{vm.Uuid}", token: "alice:p1");
        Assert.Equal(200, owner.Status);
        var admin = await f.SendAsync(HttpMethod.Get, $"v2.1/servers/{vm.Uuid}");
        Assert.Equal(200, admin.Status);
    }

    [Fact]
    public async Task LiveMigrate_NonAdmin_Returns403WithPolicyMessage()
    {
        var vm = f.AddInstance(f.AddHost(), project: "p1");
        var r = await f.SendAsync(HttpMethod.Post, $"v2.1/servers/{vm.Uuid}/action",
            """{"os-migrateLive": {"host": null, "block_migration": "auto"}}""", token: "alice:p1");
        Assert.Equal(403, r.Status);
        Assert.Equal("forbidden", r.FaultName);
        Assert.Equal("Policy doesn't allow os_compute_api:os-migrate-server:migrate_live to be performed.", r.FaultMessage);
    }

    [Fact]
    public async Task AdminOnlyCollections_NonAdmin_Return403()
    {
        foreach (var path in new[] { "v2.1/os-migrations", "v2.1/os-services", "v2.1/os-hypervisors" })
        {
            var r = await f.SendAsync(HttpMethod.Get, path, token: "alice:p1");
            Assert.Equal(403, r.Status);
        }
    }
}
