using System.Net;

namespace Ferry.Host.Roles;

/// <summary>
/// Sends a separate compute agent's Keystone token with every placement request, and logs in again when placement
/// answers 401 (the token expired, or the identity service forgot it) before it retries the request once, as
/// keystoneauth's session does for Nova's placement client. The token is got at start, so bad credentials stop the
/// agent there with one line rather than at its first report.
/// </summary>
internal sealed class KeystoneTokenHandler(Func<CancellationToken, Task<string>> login) : DelegatingHandler
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private string? _token;

    /// <summary>Logs in unless a token is held already; returns the token.</summary>
    public async Task<string> EnsureTokenAsync(CancellationToken ct)
    {
        var token = Volatile.Read(ref _token);
        return token ?? await RenewAsync(null, ct);
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var token = await EnsureTokenAsync(cancellationToken);
        // The body is read once here so that the retry can send it again.
        var body = request.Content is null ? null : await request.Content.ReadAsByteArrayAsync(cancellationToken);
        var response = await base.SendAsync(WithToken(request, body, token), cancellationToken);
        if (response.StatusCode != HttpStatusCode.Unauthorized)
        {
            return response;
        }
        response.Dispose();
        var renewed = await RenewAsync(token, cancellationToken);
        return await base.SendAsync(WithToken(request, body, renewed), cancellationToken);
    }

    /// <summary>A new token unless another request renewed <paramref name="stale"/> meanwhile.</summary>
    private async Task<string> RenewAsync(string? stale, CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            if (_token is { } current && current != stale)
            {
                return current;
            }
            var token = await login(ct);
            Volatile.Write(ref _token, token);
            return token;
        }
        finally
        {
            _gate.Release();
        }
    }

    private static HttpRequestMessage WithToken(HttpRequestMessage original, byte[]? body, string token)
    {
        var request = new HttpRequestMessage(original.Method, original.RequestUri) { Version = original.Version };
        foreach (var header in original.Headers)
        {
            request.Headers.TryAddWithoutValidation(header.Key, header.Value);
        }
        request.Headers.Remove("X-Auth-Token");
        request.Headers.TryAddWithoutValidation("X-Auth-Token", token);
        if (body is not null)
        {
            request.Content = new ByteArrayContent(body);
            foreach (var header in original.Content!.Headers)
            {
                request.Content.Headers.TryAddWithoutValidation(header.Key, header.Value);
            }
        }
        return request;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _gate.Dispose();
        }
        base.Dispose(disposing);
    }
}
