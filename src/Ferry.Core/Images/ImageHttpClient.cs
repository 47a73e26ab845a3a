using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.Core.Errors;
using Ferry.Core.Identity;

namespace Ferry.Core.Images;

/// <summary>
/// <see cref="IImageService"/> over the Glance v2 API (<c>GET /v2/images/{id}</c>, <c>GET /v2/images/{id}/file</c>):
/// the endpoint is configured or taken from the token's catalog (type <c>image</c>); tokens come from a
/// <see cref="KeystoneSession"/> (one new login after a 401) or are fixed (noauth2). Transient failures are retried.
/// </summary>
public sealed class ImageHttpClient : IImageService
{
    private readonly HttpClient _httpClient;
    private readonly KeystoneSession? _session;
    private readonly string? _authToken;
    private readonly Uri? _endpoint;

    /// <summary>A fixed token (noauth2) and a known endpoint.</summary>
    public ImageHttpClient(HttpClient httpClient, Uri endpoint, string? authToken)
    {
        _httpClient = httpClient;
        _endpoint = endpoint;
        _authToken = authToken;
    }

    /// <summary>As a service: tokens from <paramref name="session"/>, the endpoint configured or from its catalog.</summary>
    public ImageHttpClient(HttpClient httpClient, KeystoneSession session, Uri? endpoint = null)
    {
        _httpClient = httpClient;
        _session = session;
        _endpoint = endpoint;
    }

    public async Task<ImageMeta> GetAsync(string imageId, CancellationToken cancellationToken)
    {
        using var response = await SendAsync($"v2/images/{Uri.EscapeDataString(imageId)}", HttpCompletionOption.ResponseContentRead, cancellationToken);
        await EnsureSuccessAsync(response, imageId, cancellationToken);
        var image = JsonNode.Parse(await response.Content.ReadAsStringAsync(cancellationToken))
            ?? throw new FerryException($"The image service answered image {imageId} without a body.", 502);
        return new ImageMeta(
            Text(image, "id") ?? imageId,
            Text(image, "status") ?? "",
            image["size"] is JsonValue size && size.TryGetValue<long>(out var bytes) ? bytes : null,
            Text(image, "checksum"),
            Text(image, "os_hash_algo"),
            Text(image, "os_hash_value"),
            Text(image, "disk_format"));
    }

    public async Task<Stream> OpenDataAsync(string imageId, CancellationToken cancellationToken)
    {
        var response = await SendAsync($"v2/images/{Uri.EscapeDataString(imageId)}/file", HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        try
        {
            await EnsureSuccessAsync(response, imageId, cancellationToken);
            if (response.StatusCode == HttpStatusCode.NoContent)
            {
                throw new FerryException($"Image {imageId} has no data.", 409);
            }
            return new ResponseStream(response, await response.Content.ReadAsStreamAsync(cancellationToken));
        }
        catch
        {
            response.Dispose();
            throw;
        }
    }

    private async Task<HttpResponseMessage> SendAsync(string path, HttpCompletionOption completion, CancellationToken cancellationToken)
    {
        var token = _session is null ? _authToken : await _session.GetTokenAsync(cancellationToken);
        var root = _endpoint ?? await _session!.GetEndpointAsync("image", cancellationToken);
        var uri = new Uri(root.AbsoluteUri.EndsWith('/') ? root : new Uri(root.AbsoluteUri + "/"), path);
        var response = await SendOnceAsync(uri, token, completion, cancellationToken);
        if (response.StatusCode != HttpStatusCode.Unauthorized || _session is null || token is null)
        {
            return response;
        }
        response.Dispose();
        _session.Invalidate(token);
        return await SendOnceAsync(uri, await _session.GetTokenAsync(cancellationToken), completion, cancellationToken);
    }

    private Task<HttpResponseMessage> SendOnceAsync(Uri uri, string? token, HttpCompletionOption completion, CancellationToken cancellationToken) =>
        TransientHttpRetry.SendAsync(_httpClient, () =>
        {
            var request = new HttpRequestMessage(HttpMethod.Get, uri);
            if (token is not null)
            {
                request.Headers.TryAddWithoutValidation("X-Auth-Token", token);
            }
            return request;
        }, cancellationToken, completion);

    private static async Task EnsureSuccessAsync(HttpResponseMessage response, string imageId, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            throw new NotFoundException($"Image {imageId} could not be found.");
        }
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        throw new FerryException(string.Create(CultureInfo.InvariantCulture,
            $"The image service answered {(int)response.StatusCode} for image {imageId}: {(text.Length > 300 ? text[..300] : text)}"), 502);
    }

    private static string? Text(JsonNode node, string name) =>
        node[name] is JsonValue value && value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : null;

    /// <summary>The response body that disposes its response with it.</summary>
    private sealed class ResponseStream(HttpResponseMessage response, Stream inner) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.ReadAsync(buffer, offset, count, cancellationToken);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
                response.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
