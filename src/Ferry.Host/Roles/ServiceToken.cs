using System.Text.Json.Nodes;

namespace Ferry.Host.Roles;

/// <summary>
/// A service's Keystone token, got as any OpenStack service gets one (Nova's [placement] auth section): a password
/// login, scoped to a project, through the identity API.
/// </summary>
internal static class ServiceToken
{
    public static async Task<string> LoginAsync(string identityUrl, string user, string password, string project, CancellationToken ct)
    {
        using var http = new HttpClient();
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
                ["scope"] = new JsonObject
                {
                    ["project"] = new JsonObject { ["name"] = project, ["domain"] = new JsonObject { ["id"] = "default" } },
                },
            },
        };
        HttpResponseMessage response;
        try
        {
            response = await http.PostAsync($"{identityUrl}/v3/auth/tokens", new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json"), ct);
        }
        catch (HttpRequestException ex)
        {
            throw new FerryStartException($"api:identityUrl: cannot reach the identity API at {identityUrl}: {ex.Message}");
        }
        using (response)
        {
            if (!response.IsSuccessStatusCode || !response.Headers.TryGetValues("X-Subject-Token", out var tokens))
            {
                throw new FerryStartException(
                    $"service:user: the identity API at {identityUrl} refused the login of '{user}' in project '{project}' ({(int)response.StatusCode}); set service:password (FERRY_SERVICE__PASSWORD or --service-password)");
            }
            return tokens.First();
        }
    }
}
