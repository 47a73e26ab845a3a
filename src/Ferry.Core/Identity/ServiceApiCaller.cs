using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Ferry.Core.Errors;

namespace Ferry.Core.Identity;

/// <summary>
/// How a compute agent calls another service's JSON API (network, volume): a token from a <see cref="KeystoneSession"/>
/// (a new login after a 401) or fixed (noauth2), the endpoint configured or from the token's catalog, connection
/// failures and 502/503/504 retried (<see cref="TransientHttpRetry"/>), and a failed answer turned into the service's own
/// exception by <c>failure</c>.
/// </summary>
internal sealed class ServiceApiCaller(HttpClient httpClient, KeystoneSession? session, string? authToken, Uri? endpoint, string serviceType,
    Func<HttpStatusCode, string, HttpMethod, string, FerryException> failure, IReadOnlyDictionary<string, string>? headers = null)
{
    public async Task<JsonNode?> SendAsync(HttpMethod method, string path, JsonNode? body, CancellationToken cancellationToken)
    {
        var token = session is null ? authToken : await session.GetTokenAsync(cancellationToken);
        var root = endpoint ?? await session!.GetEndpointAsync(serviceType, cancellationToken);
        var uri = new Uri(root.AbsoluteUri.EndsWith('/') ? root : new Uri(root.AbsoluteUri + "/"), path);
        var response = await SendOnceAsync(method, uri, body, token, cancellationToken);
        if (response.StatusCode == HttpStatusCode.Unauthorized && session is not null && token is not null)
        {
            response.Dispose();
            session.Invalidate(token);
            response = await SendOnceAsync(method, uri, body, await session.GetTokenAsync(cancellationToken), cancellationToken);
        }
        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                throw failure(response.StatusCode, text, method, path);
            }
            return text.Length == 0 ? null : JsonNode.Parse(text);
        }
    }

    private Task<HttpResponseMessage> SendOnceAsync(HttpMethod method, Uri uri, JsonNode? body, string? token, CancellationToken cancellationToken) =>
        TransientHttpRetry.SendAsync(httpClient, () =>
        {
            var request = new HttpRequestMessage(method, uri);
            foreach (var (name, value) in headers ?? new Dictionary<string, string>())
            {
                request.Headers.TryAddWithoutValidation(name, value);
            }
            if (token is not null)
            {
                request.Headers.TryAddWithoutValidation("X-Auth-Token", token);
            }
            if (body is not null)
            {
                request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
            }
            return request;
        }, cancellationToken);
}
