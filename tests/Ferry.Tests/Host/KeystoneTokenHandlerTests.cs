using System.Net;
using Ferry.Host.Roles;

namespace Ferry.Tests.Host;

/// <summary>A separate compute agent's placement token: got at start, renewed when placement refuses it.</summary>
public sealed class KeystoneTokenHandlerTests
{
    /// <summary>Placement stand-in: accepts only <see cref="Valid"/>, records what it was sent.</summary>
    private sealed class Placement : HttpMessageHandler
    {
        public string Valid { get; set; } = "token-1";
        public List<(string? Token, string? Body)> Seen { get; } = [];

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var token = request.Headers.TryGetValues("X-Auth-Token", out var values) ? values.Single() : null;
            Seen.Add((token, request.Content is null ? null : await request.Content.ReadAsStringAsync(cancellationToken)));
            return new HttpResponseMessage(token == Valid ? HttpStatusCode.OK : HttpStatusCode.Unauthorized);
        }
    }

    [Fact]
    public async Task Send_TokenRefused_LogsInAgainAndRetriesOnceWithTheSameBody()
    {
        var logins = 0;
        var placement = new Placement();
        using var handler = new KeystoneTokenHandler(_ => Task.FromResult($"token-{++logins}")) { InnerHandler = placement };
        using var http = new HttpClient(handler) { BaseAddress = new Uri("http://placement/") };

        Assert.Equal("token-1", await handler.EnsureTokenAsync(CancellationToken.None));
        Assert.Equal(HttpStatusCode.OK, (await http.PutAsync("resource_providers/x", new StringContent("{\"name\":\"x\"}"))).StatusCode);
        placement.Valid = "token-2"; // the first token expired
        var renewed = await http.PutAsync("resource_providers/x", new StringContent("{\"name\":\"y\"}"));

        Assert.Equal(HttpStatusCode.OK, renewed.StatusCode);
        Assert.Equal(2, logins);
        Assert.Equal([("token-1", "{\"name\":\"x\"}"), ("token-1", "{\"name\":\"y\"}"), ("token-2", "{\"name\":\"y\"}")], placement.Seen);
    }

    [Fact]
    public async Task Send_RenewedTokenRefusedToo_AnswersTheRefusalWithoutLooping()
    {
        var logins = 0;
        var placement = new Placement { Valid = "never" };
        using var handler = new KeystoneTokenHandler(_ => Task.FromResult($"token-{++logins}")) { InnerHandler = placement };
        using var http = new HttpClient(handler) { BaseAddress = new Uri("http://placement/") };

        var response = await http.GetAsync("resource_providers");

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(2, logins);
        Assert.Equal(2, placement.Seen.Count);
    }
}
