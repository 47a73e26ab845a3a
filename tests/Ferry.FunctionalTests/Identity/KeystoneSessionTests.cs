using System.Net;
using Ferry.Compute;
using Ferry.Core.Identity;
using Ferry.Core.Placement;
using Ferry.Host;
using Ferry.Tests.Shared;

namespace Ferry.FunctionalTests.Identity;

/// <summary>A Ferry whose APIs authenticate with Keystone tokens (the identity API on its own port).</summary>
public sealed class KeystoneFerryFixture : FerryFixture
{
    protected override void Configure(FerryHostOptions options) => options.Auth = "keystone";
}

/// <summary>
/// The compute agents' session with the identity service, against the real identity and placement APIs: a login
/// with service credentials, the placement endpoint from the token's catalog, a new login before expiry and once
/// after a 401, and a refused login that says where and as whom.
/// </summary>
public sealed class KeystoneSessionTests(KeystoneFerryFixture fixture) : IClassFixture<KeystoneFerryFixture>, IDisposable
{
    private readonly HttpClient _http = new();
    private readonly ManualTimeProvider _clock = new(DateTimeOffset.UtcNow);

    private Uri AuthUrl => new(fixture.Ferry.Options.IdentityUrl + "/v3");

    private KeystoneSession NewSession(string password = "ferry-admin") => new(_http, new KeystoneCredentials
    {
        AuthUrl = AuthUrl,
        Username = "admin",
        Password = password,
        ProjectName = "admin",
    }, _clock);

    public void Dispose() => _http.Dispose();

    [Fact]
    public async Task AllInOne_KeystoneMode_AgentsReportThroughOneLoggedInSession()
    {
        var session = fixture.Ferry.PlacementSession;

        Assert.NotNull(session);
        Assert.Equal(1, session.Logins); // three agents started, one login shared
        var placement = new PlacementHttpClient(_http, session);
        foreach (var compute in fixture.Ferry.Computes.Values)
        {
            var usages = await placement.GetProviderUsagesAsync(compute.NodeUuid, CancellationToken.None);
            Assert.NotNull(usages.Usages);
        }
    }

    [Fact]
    public async Task Placement_NoUrlConfigured_UsesTheCatalogsEndpoint()
    {
        var session = NewSession();

        var endpoint = await session.GetEndpointAsync("placement", CancellationToken.None);

        Assert.Equal(new Uri(fixture.Ferry.Options.PlacementUrl), endpoint);
        var provider = await new PlacementHttpClient(_http, session).EnsureResourceProviderAsync(Guid.NewGuid().ToString(), "ks-catalog-" + Guid.NewGuid().ToString("N")[..6], CancellationToken.None);
        Assert.Equal(0, provider.Generation);
        Assert.Equal(1, session.Logins);
    }

    [Fact]
    public async Task Placement_TokenNearItsExpiry_LogsInAgainBeforeUse()
    {
        var session = NewSession();
        var placement = new PlacementHttpClient(_http, session);
        var uuid = Guid.NewGuid().ToString();
        await placement.EnsureResourceProviderAsync(uuid, "ks-expiry-" + uuid[..6], CancellationToken.None);
        await placement.GetProviderUsagesAsync(uuid, CancellationToken.None);
        Assert.Equal(1, session.Logins);

        // The identity service issues tokens for an hour: 59 minutes later the token has less than two minutes left.
        _clock.Advance(TimeSpan.FromMinutes(59));
        var usages = await placement.GetProviderUsagesAsync(uuid, CancellationToken.None);

        Assert.NotNull(usages.Usages);
        Assert.Equal(2, session.Logins);
    }

    [Fact]
    public async Task Placement_TokenRevoked_LogsInAgainOnceAndTheCallSucceeds()
    {
        var session = NewSession();
        var placement = new PlacementHttpClient(_http, session);
        var uuid = Guid.NewGuid().ToString();
        await placement.EnsureResourceProviderAsync(uuid, "ks-revoked-" + uuid[..6], CancellationToken.None);
        var token = await session.GetTokenAsync(CancellationToken.None);
        using (var revoke = new HttpRequestMessage(HttpMethod.Delete, AuthUrl + "/auth/tokens"))
        {
            revoke.Headers.Add("X-Auth-Token", token);
            revoke.Headers.Add("X-Subject-Token", token);
            using var revoked = await _http.SendAsync(revoke);
            Assert.Equal(HttpStatusCode.NoContent, revoked.StatusCode);
        }

        var usages = await placement.GetProviderUsagesAsync(uuid, CancellationToken.None);

        Assert.NotNull(usages.Usages);
        Assert.Equal(2, session.Logins);
    }

    [Fact]
    public async Task Placement_WrongPassword_FailsNamingTheAuthUrlAndTheUser()
    {
        var placement = new PlacementHttpClient(_http, NewSession(password: "not-the-password"));

        var error = await Assert.ThrowsAsync<KeystoneAuthenticationException>(() =>
            placement.GetProviderUsagesAsync(Guid.NewGuid().ToString(), CancellationToken.None));

        Assert.Equal(401, error.HttpStatus);
        Assert.Contains($"Authentication to {AuthUrl} as user admin", error.Message);
        Assert.Contains("401", error.Message);
    }

    [Fact]
    public async Task ServiceClients_KeystoneCredentials_DownloadAnImageVerifiedThroughTheCatalogsImageEndpoint()
    {
        var options = new ComputeOptions
        {
            Host = "elsewhere",
            ServiceCredentials = new KeystoneCredentials { AuthUrl = AuthUrl, Username = "admin", Password = "ferry-admin", ProjectName = "admin" },
        };
        var clients = ServiceClients.Create(options, _http, TimeProvider.System);
        var token = await clients.Session!.GetTokenAsync(CancellationToken.None);
        var imageUrl = await clients.Session.GetEndpointAsync("image", CancellationToken.None);
        var bytes = Enumerable.Range(0, 70_000).Select(i => (byte)i).ToArray();
        string imageId;
        using (var create = new HttpRequestMessage(HttpMethod.Post, new Uri(imageUrl, "v2/images")))
        {
            create.Headers.Add("X-Auth-Token", token);
            create.Content = new StringContent("""{"name": "ks-download", "disk_format": "raw", "container_format": "bare"}""", System.Text.Encoding.UTF8, "application/json");
            using var created = await _http.SendAsync(create);
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            imageId = System.Text.Json.Nodes.JsonNode.Parse(await created.Content.ReadAsStringAsync())!["id"]!.GetValue<string>();
        }
        using (var upload = new HttpRequestMessage(HttpMethod.Put, new Uri(imageUrl, $"v2/images/{imageId}/file")))
        {
            upload.Headers.Add("X-Auth-Token", token);
            upload.Content = new ByteArrayContent(bytes);
            upload.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/octet-stream");
            using var uploaded = await _http.SendAsync(upload);
            Assert.Equal(HttpStatusCode.NoContent, uploaded.StatusCode);
        }
        var target = TestTempNames.Path("ks");
        try
        {
            await Ferry.Virt.ImageDownload.FetchAsync(clients.Images, imageId, target, CancellationToken.None);

            Assert.Equal(bytes, await File.ReadAllBytesAsync(target));
            Assert.Equal(1, clients.Session.Logins);
        }
        finally
        {
            File.Delete(target);
        }
    }

    [Fact]
    public void ServiceClients_NoCredentialsAndNoPlacementUrl_IsRefusedNamingTheSetting()
    {
        var error = Assert.Throws<ArgumentException>(() =>
            ServiceClients.Create(new ComputeOptions { Host = "h", ImageUrl = new Uri("http://127.0.0.1:9292/") }, _http, TimeProvider.System));

        Assert.Equal(nameof(ComputeOptions.PlacementUrl), error.ParamName);
        Assert.Contains("placement_url and image_url", error.Message);
    }

    /// <summary>A client clock the test moves by hand (the identity service keeps the real one).</summary>
    private sealed class ManualTimeProvider(DateTimeOffset start) : TimeProvider
    {
        private DateTimeOffset _now = start;

        public override DateTimeOffset GetUtcNow() => _now;

        public void Advance(TimeSpan by) => _now += by;
    }
}
