using Ferry.ControlPlane.Persistence;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Security;

/// <summary>Each API on its own port whatever the Host header says; the compute API reads only JSON bodies.</summary>
public sealed class ServiceIsolationTests(SecurityFixture fixture) : IClassFixture<SecurityFixture>
{
    private string Url(int port, string path) => $"http://{fixture.Ferry.Options.ListenAddress}:{port}{path}";

    [Fact]
    public async Task OtherServicesPaths_ThroughComputePort_AreNotServedWhateverTheHostHeader()
    {
        var options = fixture.Ferry.Options;
        var login = """{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"id": "default"}, "password": "x"}}}}}""";
        foreach (var (port, hostPort) in new[] { (options.ComputeApiPort, options.IdentityPort), (options.ImagePort, options.IdentityPort), (options.ComputeApiPort, options.ComputeApiPort) })
        {
            using var http = new HttpClient();
            using var request = new HttpRequestMessage(HttpMethod.Post, Url(port, "/v3/auth/tokens")) { Content = new StringContent(login, System.Text.Encoding.UTF8, "application/json") };
            request.Headers.Host = $"{options.ListenAddress}:{hostPort}";
            using var response = await http.SendAsync(request);
            // The compute and image APIs answer 401 to anything without a token (as keystonemiddleware does before
            // routing); what matters is that no login happened.
            Assert.Contains((int)response.StatusCode, new[] { 401, 404 });
            Assert.False(response.Headers.Contains("X-Subject-Token"));
        }
        foreach (var port in new[] { options.ComputeApiPort, options.IdentityPort, options.ImagePort })
        {
            using var http = new HttpClient();
            using var request = new HttpRequestMessage(HttpMethod.Get, Url(port, "/resource_providers"));
            request.Headers.Host = $"{options.ListenAddress}:{options.PlacementPort}";
            request.Headers.Add("X-Auth-Token", fixture.Token(Caller.Admin));
            using var response = await http.SendAsync(request);
            Assert.Equal(404, (int)response.StatusCode);
        }
        Assert.Equal(200, (await fixture.SendAsync(Caller.Admin, Service.Placement, HttpMethod.Get, "/resource_providers")).Status);
    }

    [Theory]
    [InlineData("application/xml", """<server><name>x</name></server>""")]
    [InlineData("application/x-www-form-urlencoded", "server=x")]
    [InlineData("multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n{}\r\n--b--")]
    [InlineData("application/xml", """{"server": {"name": "xml-typed", "imageRef": "ferry-test-guest", "flavorRef": "m1.nano", "networks": "none"}}""")]
    public async Task CreateServer_NonJsonContentType_Is415AndCreatesNothing(string contentType, string body)
    {
        var instances = fixture.Ferry.Services.GetRequiredService<InstanceStore>();
        var before = instances.List(includeDeleted: true).Count;
        var (status, json, _) = await fixture.SendAsync(Caller.Admin, Service.Compute, HttpMethod.Post, "/servers", body, contentType);
        Assert.Equal(415, status);
        Assert.Equal("Unsupported Content-Type", (string?)json!["badMediaType"]!["message"]);
        Assert.Equal(415, (int)json["badMediaType"]!["code"]!);
        Assert.Equal(before, instances.List(includeDeleted: true).Count);
    }

    [Fact]
    public async Task Action_TextPlainOrJsonWithCharset_IsReadAsJson()
    {
        // Nova reads a body without a usable Content-Type (none, text/plain) as JSON.
        foreach (var contentType in new[] { "text/plain", "application/json; charset=utf-8" })
        {
            var (status, body, _) = await fixture.SendAsync(Caller.Admin, Service.Compute, HttpMethod.Post, "/os-server-groups",
                """{"server_group": {"name": "typed", "policy": "affinity"}}""", contentType);
            Assert.True(status == 200, $"{contentType}: {status} {body?.ToJsonString()}");
        }
    }
}
