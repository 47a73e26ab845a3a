using System.Net;
using System.Net.Http.Headers;
using Ferry.Host;

namespace Ferry.FunctionalTests.Host;

/// <summary>An all-in-one with Keystone auth (so that the identity API listens too), every port chosen by binding port 0.</summary>
public sealed class KeystoneFerryFixture : FerryFixture
{
    protected override void Configure(FerryHostOptions options) => options.Auth = "keystone";
}

/// <summary><c>/healthcheck</c> on every API, as oslo.middleware's healthcheck (backend disable_by_file) answers.</summary>
public sealed class HealthcheckTests(KeystoneFerryFixture fixture) : IClassFixture<KeystoneFerryFixture>
{
    private string[] ApiUrls()
    {
        var o = fixture.Ferry.Options;
        return [o.ComputeApiUrl, o.PlacementUrl, o.IdentityUrl, o.ImageUrl];
    }

    [Fact]
    public void Build_PortZero_EveryApiOnItsOwnBoundPort()
    {
        var o = fixture.Ferry.Options;
        int[] ports = [o.ComputeApiPort, o.PlacementPort, o.IdentityPort, o.ImagePort];

        Assert.All(ports, p => Assert.InRange(p, 1, 65535));
        Assert.Equal(4, ports.Distinct().Count());
    }

    [Fact]
    public async Task Get_EveryApiWithoutToken_200OkPlainText()
    {
        using var http = new HttpClient();
        foreach (var url in ApiUrls())
        {
            using var response = await http.GetAsync($"{url}/healthcheck");

            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{url}/healthcheck: {(int)response.StatusCode}");
            Assert.Equal("OK", await response.Content.ReadAsStringAsync());
            Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        }
    }

    [Fact]
    public async Task Head_EveryApi_204NoBody()
    {
        using var http = new HttpClient();
        foreach (var url in ApiUrls())
        {
            using var response = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"{url}/healthcheck"));

            Assert.True(response.StatusCode == HttpStatusCode.NoContent, $"HEAD {url}/healthcheck: {(int)response.StatusCode}");
            Assert.Empty(await response.Content.ReadAsByteArrayAsync());
        }
    }

    [Fact]
    public async Task Get_AcceptJson_ReasonsDocument()
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, $"{fixture.Ferry.Options.ComputeApiUrl}/healthcheck");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));

        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var body = System.Text.Json.Nodes.JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.False((bool)body["detailed"]!);
        Assert.Equal("OK", (string?)body["reasons"]![0]);
    }

    [Fact]
    public async Task Get_DisableFilePresent_503UntilRemoved()
    {
        var disable = Healthcheck.DisableFilePath(fixture.Ferry.Options.DataDirectory);
        using var http = new HttpClient();
        await File.WriteAllTextAsync(disable, "");
        try
        {
            foreach (var url in ApiUrls())
            {
                using var response = await http.GetAsync($"{url}/healthcheck");
                Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
                Assert.Equal("DISABLED BY FILE", await response.Content.ReadAsStringAsync());
            }
        }
        finally
        {
            File.Delete(disable);
        }

        using var healthy = await http.GetAsync($"{fixture.Ferry.Options.ComputeApiUrl}/healthcheck");
        Assert.Equal(HttpStatusCode.OK, healthy.StatusCode);
    }
}
