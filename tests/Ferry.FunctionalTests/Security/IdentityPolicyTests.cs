using System.Text.Json.Nodes;
using Ferry.ControlPlane.Identity;

namespace Ferry.FunctionalTests.Security;

/// <summary>Keystone's default policy on the identity API, and its account lockout, over real Kestrel.</summary>
public sealed class IdentityPolicyTests(SecurityFixture fixture) : IClassFixture<SecurityFixture>
{
    [Theory]
    [InlineData("/users", "identity:list_users")]
    [InlineData("/projects", "identity:list_projects")]
    [InlineData("/roles", "identity:list_roles")]
    public async Task List_NonAdmin_Is403(string path, string rule)
    {
        foreach (var caller in new[] { Caller.Member, Caller.Reader, Caller.OtherMember })
        {
            var (status, body, _) = await fixture.SendAsync(caller, Service.Identity, HttpMethod.Get, path);
            Assert.Equal(403, status);
            Assert.Equal($"You are not authorized to perform the requested action: {rule}.", (string?)body!["error"]!["message"]);
        }
        Assert.Equal(200, (await fixture.SendAsync(Caller.Admin, Service.Identity, HttpMethod.Get, path)).Status);
    }

    [Fact]
    public async Task Show_OwnRecordAndProject_OthersAre403()
    {
        var demo = fixture.Identity.FindUser("demo", IdentityStore.DefaultDomainId)!;
        var admin = fixture.Identity.FindUser("admin", IdentityStore.DefaultDomainId)!;
        Assert.Equal(200, (await fixture.SendAsync(Caller.Member, Service.Identity, HttpMethod.Get, $"/users/{demo.Id}")).Status);
        Assert.Equal(403, (await fixture.SendAsync(Caller.Member, Service.Identity, HttpMethod.Get, $"/users/{admin.Id}")).Status);
        Assert.Equal(403, (await fixture.SendAsync(Caller.Member, Service.Identity, HttpMethod.Get, "/users/no-such-user")).Status);
        Assert.Equal(200, (await fixture.SendAsync(Caller.Member, Service.Identity, HttpMethod.Get, $"/projects/{fixture.DemoProjectId}")).Status);
        Assert.Equal(403, (await fixture.SendAsync(Caller.Member, Service.Identity, HttpMethod.Get, $"/projects/{fixture.OtherProjectId}")).Status);
        var mine = await fixture.SendAsync(Caller.Member, Service.Identity, HttpMethod.Get, "/auth/projects");
        Assert.Equal(200, mine.Status);
        Assert.Equal(fixture.DemoProjectId, (string?)Assert.Single(mine.Body!["projects"]!.AsArray())!["id"]);
        Assert.Equal(404, (await fixture.SendAsync(Caller.Admin, Service.Identity, HttpMethod.Get, "/users/no-such-user")).Status);
    }

    private Task<(int Status, JsonNode? Body, HttpResponseMessage Response)> LoginAsync(string user, string password)
    {
        var body = JsonNode.Parse("""{"auth": {"identity": {"methods": ["password"], "password": {"user": {"domain": {"id": "default"}}}}}}""")!;
        var userNode = body["auth"]!["identity"]!["password"]!["user"]!;
        userNode["name"] = user;
        userNode["password"] = password;
        return fixture.SendAsync(Caller.Anonymous, Service.Identity, HttpMethod.Post, "/auth/tokens", body.ToJsonString());
    }

    [Fact]
    public async Task Login_SixWrongPasswords_LocksTheAccountEvenForTheRightOne()
    {
        var locked = new UserEntry(Guid.NewGuid().ToString("N"), "lock-me", IdentityStore.DefaultDomainId, PasswordHasher.Hash("right", 1000));
        fixture.Identity.Config.Users.Add(locked);

        Assert.Equal(201, (await LoginAsync("lock-me", "right")).Status);
        for (var i = 0; i < 6; i++)
        {
            var wrong = await LoginAsync("lock-me", "wrong");
            Assert.Equal(401, wrong.Status);
            Assert.Equal("The request you have made requires authentication.", (string?)wrong.Body!["error"]!["message"]);
        }
        var refused = await LoginAsync("lock-me", "right");
        Assert.Equal(401, refused.Status);
        Assert.Equal($"The account is locked for user: {locked.Id}.", (string?)refused.Body!["error"]!["message"]);
        // Unknown users are never "locked": the answer does not tell who exists.
        for (var i = 0; i < 8; i++)
        {
            Assert.Equal("The request you have made requires authentication.", (string?)(await LoginAsync("nobody-here", "x")).Body!["error"]!["message"]);
        }
    }
}
