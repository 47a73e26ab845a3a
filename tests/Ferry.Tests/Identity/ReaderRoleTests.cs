using Ferry.ControlPlane.Api;
using Ferry.ControlPlane.Identity;
using Ferry.Tests.Api;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ferry.Tests.Identity;

/// <summary>Keystone's default roles: a user with only <c>reader</c> in a project may look but not change anything.</summary>
public sealed class ReaderRoleTests
{
    private readonly IdentityStore _store = new(IdentityStore.CreateDefault("a", "d", iterations: 1000));
    private readonly TokenStore _tokens = new(new IdentityOptions { ConfigPath = "unused", TokenLifetime = TimeSpan.FromMinutes(10) },
        new ManualTimeProvider(new DateTimeOffset(2026, 11, 23, 10, 0, 0, TimeSpan.Zero)), new Ferry.ControlPlane.Persistence.FerryDatabase(":memory:"));

    private IdentityToken IssueDemo(params string[] roleNames)
    {
        var demo = _store.FindUser("demo", IdentityStore.DefaultDomainId)!;
        var project = _store.FindProject("demo", IdentityStore.DefaultDomainId)!;
        var roles = _store.RolesOf(demo.Id, project.Id).Where(r => roleNames.Contains(r.Name)).ToList();
        return _tokens.Issue(demo, project, roles, ["password"]);
    }

    [Theory]
    [InlineData(new[] { "reader" }, true)]
    [InlineData(new[] { "member", "reader" }, false)]
    [InlineData(new[] { "member" }, false)]
    public void Token_IsReadOnly_OnlyWithReaderAlone(string[] roles, bool readOnly) =>
        Assert.Equal(readOnly, IssueDemo(roles).IsReadOnly);

    [Theory]
    [InlineData("GET", new[] { "reader" }, 200)]
    [InlineData("POST", new[] { "reader" }, 403)]
    [InlineData("DELETE", new[] { "reader" }, 403)]
    [InlineData("POST", new[] { "member", "reader" }, 200)]
    public async Task ComputeApi_ReaderMayOnlyRead(string method, string[] roles, int expected)
    {
        var token = IssueDemo(roles);
        var services = new ServiceCollection()
            .AddSingleton<IRequestAuthenticator>(new KeystoneRequestAuthenticator(_tokens))
            .AddSingleton<ILoggerFactory>(NullLoggerFactory.Instance)
            .BuildServiceProvider();
        var http = new DefaultHttpContext { RequestServices = services };
        http.Request.Method = method;
        http.Request.Path = "/v2.1/servers";
        http.Request.Headers["X-Auth-Token"] = token.Id;
        http.Response.Body = new MemoryStream();

        var result = await NovaRequestFilter.InvokeAsync(new DefaultEndpointFilterInvocationContext(http),
            _ => ValueTask.FromResult<object?>(Results.Ok()));
        await ((IResult)result!).ExecuteAsync(http);

        Assert.Equal(expected, http.Response.StatusCode);
        if (expected == 403)
        {
            http.Response.Body.Position = 0;
            var body = System.Text.Json.Nodes.JsonNode.Parse(await new StreamReader(http.Response.Body).ReadToEndAsync())!;
            Assert.Equal("Policy doesn't allow os_compute_api:servers to be performed.", (string?)body["forbidden"]!["message"]);
        }
    }
}
