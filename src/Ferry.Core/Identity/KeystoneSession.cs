using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.Core.Errors;

namespace Ferry.Core.Identity;

/// <summary>
/// A service's session with Keystone (keystoneauth1's Session with a v3 Password plugin): logs in with
/// <see cref="KeystoneCredentials"/> through <c>POST /v3/auth/tokens</c>, keeps the <c>X-Subject-Token</c> until
/// shortly before it expires, logs in again when a service answers 401 (<see cref="Invalidate"/>), and finds a
/// service's endpoint in the token's catalog. One login at a time; concurrent callers share it.
/// </summary>
/// <remarks>
/// The <see cref="HttpClient"/> may come from <c>IHttpClientFactory</c>; its base address is not used.
/// Connection failures and 502/503/504 answers are retried (<see cref="TransientHttpRetry"/>); a refused login
/// throws <see cref="KeystoneAuthenticationException"/> naming the auth URL and the user.
/// </remarks>
public sealed class KeystoneSession(HttpClient httpClient, KeystoneCredentials credentials, TimeProvider time)
{
    /// <summary>A token this close to its expiry is replaced before use (keystoneauth1's MIN_TOKEN_LIFE_SECONDS).</summary>
    public static readonly TimeSpan MinTokenLife = TimeSpan.FromSeconds(120);

    private readonly SemaphoreSlim _login = new(1, 1);
    private Token? _token;

    public KeystoneCredentials Credentials => credentials;

    /// <summary>Logins made so far (the first, refreshes before expiry, and after a 401).</summary>
    public int Logins { get; private set; }

    /// <summary>The current token, logging in first when there is none or it expires within <see cref="MinTokenLife"/>.</summary>
    public async Task<string> GetTokenAsync(CancellationToken cancellationToken) => (await CurrentAsync(cancellationToken)).Id;

    /// <summary>Drops <paramref name="tokenId"/> (a service answered 401 to it): the next call logs in again.</summary>
    public void Invalidate(string tokenId)
    {
        var current = _token;
        if (current is not null && current.Id == tokenId)
        {
            Interlocked.CompareExchange(ref _token, null, current);
        }
    }

    /// <summary>
    /// The endpoint of <paramref name="serviceType"/> in the catalog of the last token (logging in when there is none),
    /// on the first valid interface that has one. An expiring token's catalog is still good: no login just for it.
    /// </summary>
    public async Task<Uri> GetEndpointAsync(string serviceType, CancellationToken cancellationToken)
    {
        var token = _token ?? await CurrentAsync(cancellationToken);
        foreach (var face in credentials.ValidInterfaces)
        {
            if (token.Endpoints.TryGetValue((serviceType, face), out var url))
            {
                return url;
            }
        }
        throw new FerryException(
            $"The service catalog of {credentials.AuthUrl} has no {serviceType} endpoint on interface {string.Join(" or ", credentials.ValidInterfaces)}.", 503);
    }

    private async Task<Token> CurrentAsync(CancellationToken cancellationToken)
    {
        if (Fresh(_token) is { } token)
        {
            return token;
        }
        await _login.WaitAsync(cancellationToken);
        try
        {
            // Another caller may have logged in while this one waited.
            if (Fresh(_token) is { } other)
            {
                return other;
            }
            var issued = await LoginAsync(cancellationToken);
            _token = issued;
            Logins++;
            return issued;
        }
        finally
        {
            _login.Release();
        }
    }

    private Token? Fresh(Token? token) => token is not null && token.ExpiresAt - time.GetUtcNow() > MinTokenLife ? token : null;

    private async Task<Token> LoginAsync(CancellationToken cancellationToken)
    {
        var tokensUrl = new Uri(credentials.AuthUrl.AbsoluteUri.TrimEnd('/') + "/auth/tokens");
        var body = new JsonObject
        {
            ["auth"] = new JsonObject
            {
                ["identity"] = new JsonObject
                {
                    ["methods"] = new JsonArray("password"),
                    ["password"] = new JsonObject
                    {
                        ["user"] = new JsonObject
                        {
                            ["name"] = credentials.Username,
                            ["domain"] = new JsonObject { ["name"] = credentials.UserDomainName },
                            ["password"] = credentials.Password,
                        },
                    },
                },
                ["scope"] = new JsonObject
                {
                    ["project"] = new JsonObject
                    {
                        ["name"] = credentials.ProjectName,
                        ["domain"] = new JsonObject { ["name"] = credentials.ProjectDomainName },
                    },
                },
            },
        }.ToJsonString();
        HttpResponseMessage response;
        try
        {
            response = await TransientHttpRetry.SendAsync(httpClient, () =>
            {
                var request = new HttpRequestMessage(HttpMethod.Post, tokensUrl) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
                request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
                return request;
            }, cancellationToken);
        }
        catch (HttpRequestException ex)
        {
            throw new KeystoneAuthenticationException($"Cannot reach the identity service at {credentials.AuthUrl} to authenticate user {credentials.Username}: {ex.Message}", 503);
        }
        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            if (response.StatusCode != HttpStatusCode.Created)
            {
                throw new KeystoneAuthenticationException(
                    $"Authentication to {credentials.AuthUrl} as user {credentials.Username} (domain {credentials.UserDomainName}, project {credentials.ProjectName}) " +
                    $"failed: {(int)response.StatusCode} {ErrorMessage(text)}", response.StatusCode == HttpStatusCode.Unauthorized ? 401 : 503);
            }
            if (!response.Headers.TryGetValues("X-Subject-Token", out var ids) || ids.FirstOrDefault() is not { Length: > 0 } id)
            {
                throw new KeystoneAuthenticationException($"The identity service at {credentials.AuthUrl} issued no X-Subject-Token for user {credentials.Username}.", 503);
            }
            return Parse(id, text);
        }
    }

    private static string ErrorMessage(string text)
    {
        try
        {
            return JsonNode.Parse(text)?["error"]?["message"]?.GetValue<string>() ?? text;
        }
        catch (JsonException)
        {
            return text;
        }
    }

    private static Token Parse(string id, string text)
    {
        var token = JsonNode.Parse(text)?["token"] ?? throw new FerryException("The identity service answered a login without a token body.", 502);
        var expiresAt = DateTimeOffset.Parse(token["expires_at"]!.GetValue<string>(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
        var endpoints = new Dictionary<(string, string), Uri>();
        foreach (var service in token["catalog"]?.AsArray() ?? [])
        {
            var type = service?["type"]?.GetValue<string>();
            foreach (var endpoint in service?["endpoints"]?.AsArray() ?? [])
            {
                if (type is not null && endpoint?["interface"]?.GetValue<string>() is { } face
                    && Uri.TryCreate(endpoint["url"]?.GetValue<string>(), UriKind.Absolute, out var url))
                {
                    endpoints.TryAdd((type, face), url);
                }
            }
        }
        return new Token(id, expiresAt, endpoints);
    }

    private sealed record Token(string Id, DateTimeOffset ExpiresAt, IReadOnlyDictionary<(string Type, string Interface), Uri> Endpoints);
}
