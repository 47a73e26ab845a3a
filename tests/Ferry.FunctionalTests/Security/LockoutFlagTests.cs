using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Ferry.Host;

namespace Ferry.FunctionalTests.Security;

/// <summary>A Keystone-auth Ferry locking accounts after 2 wrong passwords, set as `./ferry up --lockout-failure-attempts 2` sets it.</summary>
public sealed class LockoutAfterTwoFixture : FerryFixture
{
    protected override void Configure(FerryHostOptions options)
    {
        var flags = FerryHostOptions.Parse(["--lockout-failure-attempts", "2", "--lockout-duration", "3600"]);
        options.Auth = "keystone";
        options.LockoutFailureAttempts = flags.LockoutFailureAttempts;
        options.LockoutDuration = flags.LockoutDuration;
    }
}

public sealed class LockoutFlagTests(LockoutAfterTwoFixture fixture) : IClassFixture<LockoutAfterTwoFixture>
{
    private async Task<(HttpStatusCode Status, string? Message)> LoginAsync(HttpClient http, string user, string password)
    {
        var body = new JsonObject
        {
            ["auth"] = new JsonObject
            {
                ["identity"] = new JsonObject
                {
                    ["methods"] = new JsonArray("password"),
                    ["password"] = new JsonObject
                    {
                        ["user"] = new JsonObject { ["name"] = user, ["domain"] = new JsonObject { ["id"] = "default" }, ["password"] = password },
                    },
                },
            },
        };
        using var response = await http.PostAsync($"{fixture.Ferry.Options.IdentityUrl}/v3/auth/tokens", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, response.IsSuccessStatusCode ? null : (string?)JsonNode.Parse(text)?["error"]?["message"]);
    }

    [Fact]
    public async Task Login_AfterFlagsFailureAttempts_AccountLockedEvenWithTheRightPassword()
    {
        using var http = new HttpClient();

        Assert.Equal(HttpStatusCode.Unauthorized, (await LoginAsync(http, "demo", "wrong-1")).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await LoginAsync(http, "demo", "wrong-2")).Status);
        var (status, message) = await LoginAsync(http, "demo", "ferry-demo");

        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.StartsWith("The account is locked for user: ", message, StringComparison.Ordinal);
        // Another account is untouched.
        Assert.Equal(HttpStatusCode.Created, (await LoginAsync(http, "admin", "ferry-admin")).Status);
    }
}
