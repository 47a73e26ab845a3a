using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Identity;
using Ferry.FunctionalTests.Cli;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Security;

/// <summary>Who calls: the seven kinds of caller every route is tried with.</summary>
public enum Caller
{
    Anonymous,
    BadToken,
    ExpiredToken,
    /// <summary><c>demo-reader</c>: only the reader role in the demo project.</summary>
    Reader,
    /// <summary><c>demo</c>: member of the demo project (the owner of what the tests create).</summary>
    Member,
    /// <summary><c>other</c>: member of the project <c>other</c>.</summary>
    OtherMember,
    Admin,
}

/// <summary>One service of the all-in-one.</summary>
public enum Service
{
    Compute,
    Placement,
    Identity,
    Image,
    Network,
    Volume,
}

/// <summary>
/// A Keystone-mode Ferry with, beside the seeded admin and demo users, a reader of the demo project and a
/// member of a second project, and a live token for each; requests go over real Kestrel.
/// </summary>
public class SecurityFixture : CliFixture, IAsyncLifetime
{
    private readonly Dictionary<Caller, string> _tokens = [];
    private HttpClient _http = null!;

    public IdentityStore Identity => Ferry.Services.GetRequiredService<IdentityStore>();
    public string DemoProjectId => Identity.FindProject("demo", IdentityStore.DefaultDomainId)!.Id;
    public string OtherProjectId => Identity.FindProject("other", IdentityStore.DefaultDomainId)!.Id;

    public new async Task InitializeAsync()
    {
        await base.InitializeAsync();
        var store = Identity;
        var config = store.Config;
        var member = config.Roles.Find(r => r.Name == "member")!;
        var reader = config.Roles.Find(r => r.Name == "reader")!;
        var other = new ProjectEntry(Guid.NewGuid().ToString("N"), "other", IdentityStore.DefaultDomainId);
        var otherUser = new UserEntry(Guid.NewGuid().ToString("N"), "other", IdentityStore.DefaultDomainId, PasswordHasher.Hash("other-pw", 1000));
        var readerUser = new UserEntry(Guid.NewGuid().ToString("N"), "demo-reader", IdentityStore.DefaultDomainId, PasswordHasher.Hash("reader-pw", 1000));
        config.Projects.Add(other);
        config.Users.AddRange([otherUser, readerUser]);
        config.Assignments.AddRange([new(otherUser.Id, other.Id, member.Id), new(otherUser.Id, other.Id, reader.Id), new(readerUser.Id, DemoProjectId, reader.Id)]);

        var tokens = Ferry.Services.GetRequiredService<TokenStore>();
        string Issue(string user, string project, DateTimeOffset? expires = null)
        {
            var u = store.FindUser(user, IdentityStore.DefaultDomainId)!;
            var p = store.FindProject(project, IdentityStore.DefaultDomainId)!;
            return tokens.Issue(u, p, store.RolesOf(u.Id, p.Id), ["password"], expires).Id;
        }
        _tokens[Caller.BadToken] = "not-a-token";
        _tokens[Caller.ExpiredToken] = Issue("admin", "admin", DateTimeOffset.UtcNow.AddMinutes(-1));
        _tokens[Caller.Reader] = Issue("demo-reader", "demo");
        _tokens[Caller.Member] = Issue("demo", "demo");
        _tokens[Caller.OtherMember] = Issue("other", "other");
        _tokens[Caller.Admin] = Issue("admin", "admin");
        _http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
    }

    public new async Task DisposeAsync()
    {
        _http.Dispose();
        await base.DisposeAsync();
    }

    public string? Token(Caller caller) => _tokens.GetValueOrDefault(caller);

    public string BaseUrl(Service service) => service switch
    {
        Service.Compute => Ferry.Options.ComputeApiUrl + "/v2.1",
        Service.Placement => Ferry.Options.PlacementUrl,
        Service.Identity => Ferry.Options.IdentityUrl + "/v3",
        Service.Network => Ferry.Options.NetworkUrl + "/v2.0",
        Service.Volume => Ferry.Options.VolumeUrl + "/v3",
        _ => Ferry.Options.ImageUrl + "/v2",
    };

    /// <summary>Sends one request as <paramref name="caller"/>; a JSON body unless <paramref name="contentType"/> says otherwise.</summary>
    public async Task<(int Status, JsonNode? Body, HttpResponseMessage Response)> SendAsync(Caller caller, Service service, HttpMethod method, string path,
        string? body = null, string contentType = "application/json", string? baseUrl = null, string microversion = "2.95",
        IReadOnlyDictionary<string, string>? headers = null)
    {
        using var request = new HttpRequestMessage(method, (baseUrl ?? BaseUrl(service)) + path);
        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
        {
            request.Headers.Add(name, value);
        }
        if (Token(caller) is { } token)
        {
            request.Headers.Add("X-Auth-Token", token);
        }
        if (service == Service.Compute)
        {
            request.Headers.Add("OpenStack-API-Version", $"compute {microversion}");
        }
        if (service == Service.Placement)
        {
            request.Headers.Add("OpenStack-API-Version", "placement 1.39");
        }
        if (service == Service.Volume)
        {
            request.Headers.Add("OpenStack-API-Version", "volume 3.70");
        }
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8);
            request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        }
        var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        JsonNode? json = null;
        try
        {
            json = string.IsNullOrWhiteSpace(text) ? null : JsonNode.Parse(text);
        }
        catch (System.Text.Json.JsonException)
        {
        }
        return ((int)response.StatusCode, json, response);
    }
}
