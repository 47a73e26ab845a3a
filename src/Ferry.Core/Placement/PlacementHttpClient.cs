using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Ferry.Core.Errors;
using Ferry.Core.Identity;

namespace Ferry.Core.Placement;

/// <summary>
/// What compute agents use to report inventory and to hand allocations around, over Placement's REST
/// API at microversion 1.39 (Nova's <c>nova/scheduler/client/report.py</c>). Writes that depend on a
/// generation read it first and retry a few times when another writer got in between.
/// Relative paths are used, so a <see cref="HttpClient.BaseAddress"/> with a path must end in '/'.
/// </summary>
/// <remarks>
/// Errors: 400 → <see cref="BadRequestException"/>, 404 → <see cref="NotFoundException"/>,
/// 409 → <see cref="PlacementConflictException"/> (after the retries, for generation conflicts),
/// anything else → <see cref="FerryException"/> with the status.
/// </remarks>
public sealed class PlacementHttpClient
{
    private readonly HttpClient _httpClient;
    private readonly string? _authToken;
    private readonly KeystoneSession? _session;
    private readonly Uri? _endpoint;

    /// <summary>A fixed token (noauth2, or one minted in-process); relative paths go to <paramref name="httpClient"/>'s base address.</summary>
    public PlacementHttpClient(HttpClient httpClient, string? authToken = null)
    {
        _httpClient = httpClient;
        _authToken = authToken;
    }

    /// <summary>A fixed token (noauth2) sent to a known placement endpoint.</summary>
    public PlacementHttpClient(HttpClient httpClient, string authToken, Uri endpoint)
    {
        _httpClient = httpClient;
        _authToken = authToken;
        _endpoint = endpoint;
    }

    /// <summary>
    /// As a Nova service: tokens come from <paramref name="session"/> (logged in again once on a 401), and the
    /// placement endpoint is <paramref name="endpoint"/>, else the token catalog's <c>placement</c> entry.
    /// </summary>
    public PlacementHttpClient(HttpClient httpClient, KeystoneSession session, Uri? endpoint = null)
    {
        _httpClient = httpClient;
        _session = session;
        _endpoint = endpoint;
    }

    /// <summary>How many times a generation-guarded write is tried before its conflict is thrown.</summary>
    public const int MaxAttempts = 4;

    private static readonly PlacementJsonContext s_json = PlacementJsonContext.Default;

    /// <summary>Creates the provider if missing, renames it if its name differs; returns it.</summary>
    public async Task<ResourceProviderDto> EnsureResourceProviderAsync(string uuid, string name, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            using (var get = await SendAsync(HttpMethod.Get, $"resource_providers/{uuid}", null, cancellationToken))
            {
                if (get.StatusCode == HttpStatusCode.OK)
                {
                    var existing = await ReadAsync(get, s_json.ResourceProviderDto, cancellationToken);
                    if (existing.Name == name)
                    {
                        return existing;
                    }
                    using var put = await SendAsync(HttpMethod.Put, $"resource_providers/{uuid}",
                        JsonContent.Create(new ResourceProviderWriteDto { Name = name }, s_json.ResourceProviderWriteDto), cancellationToken);
                    await EnsureSuccessAsync(put, cancellationToken);
                    return await ReadAsync(put, s_json.ResourceProviderDto, cancellationToken);
                }
                if (get.StatusCode != HttpStatusCode.NotFound)
                {
                    throw await ErrorAsync(get, cancellationToken);
                }
            }

            using var post = await SendAsync(HttpMethod.Post, "resource_providers",
                JsonContent.Create(new ResourceProviderWriteDto { Name = name, Uuid = uuid }, s_json.ResourceProviderWriteDto), cancellationToken);
            if (post.IsSuccessStatusCode)
            {
                return await ReadAsync(post, s_json.ResourceProviderDto, cancellationToken);
            }
            var error = await ReadErrorAsync(post, cancellationToken);
            // A conflict on the uuid means another agent created it meanwhile: read it again.
            if (post.StatusCode != HttpStatusCode.Conflict || error.Code == PlacementErrorCodes.DuplicateName || attempt >= MaxAttempts)
            {
                throw ToException(post.StatusCode, error);
            }
        }
    }

    /// <summary>Replaces the provider's inventories (read generation, write, retry on conflict); returns the new generation.</summary>
    public async Task<long> SetInventoriesAsync(string uuid, IReadOnlyDictionary<string, InventoryDto> inventories, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            var current = await GetAsync($"resource_providers/{uuid}/inventories", s_json.ProviderInventoriesDto, cancellationToken);
            var generation = current.ResourceProviderGeneration ?? 0;
            if (SameInventories(current.Inventories, inventories))
            {
                return generation;
            }
            if (await TryPutInventoriesAsync(uuid, generation, inventories, attempt, cancellationToken) is { } written)
            {
                return written;
            }
        }
    }

    /// <summary>
    /// A compute node's report at start-up (Nova's _ensure_resource_provider then set_inventory_for_provider) in as few
    /// requests as the API allows, since 10,000 hosts of one process each make it: a node the conductor has just created
    /// (<paramref name="newNode"/>) has no provider yet, so the provider is created (POST) and its inventories written at
    /// the generation the POST answered (PUT): two requests. A known node's inventories are read (the provider's
    /// generation comes with them): unchanged, that one request is all; a 404 means the provider is missing and it is
    /// created as for a new node. As in Nova, an existing provider is never renamed here. Any conflict falls back to
    /// <see cref="EnsureResourceProviderAsync"/> and <see cref="SetInventoriesAsync"/>, which read and retry.
    /// </summary>
    /// <returns>The provider's generation after the report.</returns>
    public async Task<long> ReportResourceProviderAsync(string uuid, string name, IReadOnlyDictionary<string, InventoryDto> inventories, bool newNode,
        CancellationToken cancellationToken)
    {
        long generation;
        if (!newNode)
        {
            using var get = await SendAsync(HttpMethod.Get, $"resource_providers/{uuid}/inventories", null, cancellationToken);
            if (get.StatusCode == HttpStatusCode.OK)
            {
                var current = await ReadAsync(get, s_json.ProviderInventoriesDto, cancellationToken);
                generation = current.ResourceProviderGeneration ?? 0;
                return SameInventories(current.Inventories, inventories)
                    ? generation
                    : await TryPutInventoriesAsync(uuid, generation, inventories, attempt: 1, cancellationToken) ?? await SetInventoriesAsync(uuid, inventories, cancellationToken);
            }
            if (get.StatusCode != HttpStatusCode.NotFound)
            {
                throw await ErrorAsync(get, cancellationToken);
            }
        }
        using (var post = await SendAsync(HttpMethod.Post, "resource_providers",
            JsonContent.Create(new ResourceProviderWriteDto { Name = name, Uuid = uuid }, s_json.ResourceProviderWriteDto), cancellationToken))
        {
            if (post.IsSuccessStatusCode)
            {
                generation = (await ReadAsync(post, s_json.ResourceProviderDto, cancellationToken)).Generation;
            }
            else
            {
                var error = await ReadErrorAsync(post, cancellationToken);
                if (post.StatusCode != HttpStatusCode.Conflict || error.Code == PlacementErrorCodes.DuplicateName)
                {
                    throw ToException(post.StatusCode, error);
                }
                // Another writer created it meanwhile: read it, then write the inventories as any update does.
                await EnsureResourceProviderAsync(uuid, name, cancellationToken);
                return await SetInventoriesAsync(uuid, inventories, cancellationToken);
            }
        }
        return await TryPutInventoriesAsync(uuid, generation, inventories, attempt: 1, cancellationToken) ?? await SetInventoriesAsync(uuid, inventories, cancellationToken);
    }

    /// <summary>PUT of the inventories at a generation already known; null on a generation conflict (the caller reads and retries).</summary>
    private async Task<long?> TryPutInventoriesAsync(string uuid, long generation, IReadOnlyDictionary<string, InventoryDto> inventories,
        int attempt, CancellationToken cancellationToken)
    {
        var body = new ProviderInventoriesDto
        {
            ResourceProviderGeneration = generation,
            Inventories = new Dictionary<string, InventoryDto>(inventories, StringComparer.Ordinal),
        };
        using var put = await SendAsync(HttpMethod.Put, $"resource_providers/{uuid}/inventories",
            JsonContent.Create(body, s_json.ProviderInventoriesDto), cancellationToken);
        if (put.IsSuccessStatusCode)
        {
            var written = await ReadAsync(put, s_json.ProviderInventoriesDto, cancellationToken);
            return written.ResourceProviderGeneration ?? generation + 1;
        }
        await ThrowUnlessRetryableAsync(put, attempt, cancellationToken);
        return null;
    }

    public Task<ProviderUsagesDto> GetProviderUsagesAsync(string uuid, CancellationToken cancellationToken) =>
        GetAsync($"resource_providers/{uuid}/usages", s_json.ProviderUsagesDto, cancellationToken);

    /// <summary>The consumer's allocations; empty with a null generation when it has none.</summary>
    public async Task<ConsumerAllocationsDto> GetAllocationsAsync(string consumer, CancellationToken cancellationToken)
    {
        var dto = await GetAsync($"allocations/{consumer}", s_json.ConsumerAllocationsDto, cancellationToken);
        return dto.Allocations is null ? dto with { Allocations = [] } : dto;
    }

    /// <summary>
    /// PUT /allocations/{consumer}: <paramref name="allocations"/> must carry the consumer generation it
    /// was read at (null for a new consumer). Not retried: a conflict means the caller's view is stale.
    /// </summary>
    public async Task PutAllocationsAsync(string consumer, ConsumerAllocationsDto allocations, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(HttpMethod.Put, $"allocations/{consumer}",
            JsonContent.Create(allocations, s_json.ConsumerAllocationsDto), cancellationToken);
        await EnsureSuccessAsync(response, cancellationToken);
    }

    /// <summary>Deletes all of the consumer's allocations; false if it had none.</summary>
    public async Task<bool> DeleteAllocationsAsync(string consumer, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(HttpMethod.Delete, $"allocations/{consumer}", null, cancellationToken);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
        await EnsureSuccessAsync(response, cancellationToken);
        return true;
    }

    /// <summary>
    /// Nova's move_allocations: in one POST /allocations the target gets the source's allocations
    /// (overwriting its own) and the source is left with none. False when the source has none.
    /// </summary>
    public async Task<bool> MoveAllocationsAsync(string sourceConsumer, string targetConsumer, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            var source = await GetAllocationsAsync(sourceConsumer, cancellationToken);
            if (source.Allocations is not { Count: > 0 } moving)
            {
                return false;
            }
            var target = await GetAllocationsAsync(targetConsumer, cancellationToken);
            var body = new Dictionary<string, ConsumerAllocationsDto>(StringComparer.Ordinal)
            {
                [sourceConsumer] = new()
                {
                    Allocations = [],
                    ConsumerGeneration = source.ConsumerGeneration,
                    ProjectId = source.ProjectId,
                    UserId = source.UserId,
                },
                [targetConsumer] = new()
                {
                    Allocations = WithoutGenerations(moving, except: null),
                    ConsumerGeneration = target.ConsumerGeneration,
                    ProjectId = source.ProjectId,
                    UserId = source.UserId,
                },
            };
            using var response = await SendAsync(HttpMethod.Post, "allocations",
                JsonContent.Create(body, s_json.DictionaryStringConsumerAllocationsDto), cancellationToken);
            if (response.IsSuccessStatusCode)
            {
                return true;
            }
            await ThrowUnlessRetryableAsync(response, attempt, cancellationToken);
        }
    }

    /// <summary>Drops one provider's part of the consumer's allocations; false if it had none there.</summary>
    public async Task<bool> RemoveProviderFromAllocationAsync(string consumer, string providerUuid, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            var current = await GetAllocationsAsync(consumer, cancellationToken);
            if (current.Allocations is null || !current.Allocations.ContainsKey(providerUuid))
            {
                return false;
            }
            var remaining = new ConsumerAllocationsDto
            {
                Allocations = WithoutGenerations(current.Allocations, except: providerUuid),
                ConsumerGeneration = current.ConsumerGeneration,
                ProjectId = current.ProjectId,
                UserId = current.UserId,
            };
            // PUT needs at least one provider; emptying a consumer goes through POST, which still checks the generation.
            using var response = remaining.Allocations.Count > 0
                ? await SendAsync(HttpMethod.Put, $"allocations/{consumer}",
                    JsonContent.Create(remaining, s_json.ConsumerAllocationsDto), cancellationToken)
                : await SendAsync(HttpMethod.Post, "allocations",
                    JsonContent.Create(new Dictionary<string, ConsumerAllocationsDto> { [consumer] = remaining }, s_json.DictionaryStringConsumerAllocationsDto),
                    cancellationToken);
            if (response.IsSuccessStatusCode)
            {
                return true;
            }
            await ThrowUnlessRetryableAsync(response, attempt, cancellationToken);
        }
    }

    private async Task<T> GetAsync<T>(string path, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(HttpMethod.Get, path, null, cancellationToken);
        await EnsureSuccessAsync(response, cancellationToken);
        return await ReadAsync(response, typeInfo, cancellationToken);
    }

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, HttpContent? content, CancellationToken cancellationToken)
    {
        // Buffered once: each attempt (a transient retry, the one after a 401) sends a fresh copy.
        using (content)
        {
            var body = content is null ? null : await content.ReadAsByteArrayAsync(cancellationToken);
            var contentType = content?.Headers.ContentType;
            var token = _session is null ? _authToken : await _session.GetTokenAsync(cancellationToken);
            var uri = await UriOfAsync(path, cancellationToken);
            var response = await SendOnceAsync(method, uri, body, contentType, token, cancellationToken);
            if (response.StatusCode != HttpStatusCode.Unauthorized || _session is null || token is null)
            {
                return response;
            }
            // keystoneauth's reauthenticate: the token was revoked or expired early; log in again, once.
            response.Dispose();
            _session.Invalidate(token);
            token = await _session.GetTokenAsync(cancellationToken);
            return await SendOnceAsync(method, uri, body, contentType, token, cancellationToken);
        }
    }

    private Task<HttpResponseMessage> SendOnceAsync(HttpMethod method, Uri uri, byte[]? body, MediaTypeHeaderValue? contentType, string? token,
        CancellationToken cancellationToken) =>
        TransientHttpRetry.SendAsync(_httpClient, () =>
        {
            var request = new HttpRequestMessage(method, uri);
            if (body is not null)
            {
                request.Content = new ByteArrayContent(body);
                request.Content.Headers.ContentType = contentType;
            }
            request.Headers.TryAddWithoutValidation(PlacementMicroversion.HeaderName, PlacementMicroversion.HeaderValue);
            request.Headers.Accept.ParseAdd("application/json");
            if (token is not null)
            {
                request.Headers.TryAddWithoutValidation("X-Auth-Token", token);
            }
            return request;
        }, cancellationToken);

    /// <summary>The configured endpoint, else the catalog's; relative to the client's base address when neither is known.</summary>
    private async Task<Uri> UriOfAsync(string path, CancellationToken cancellationToken)
    {
        var root = _endpoint ?? _httpClient.BaseAddress;
        if (root is null && _session is not null)
        {
            root = await _session.GetEndpointAsync("placement", cancellationToken);
        }
        if (root is null)
        {
            return new Uri(path, UriKind.Relative);
        }
        var withSlash = root.AbsoluteUri.EndsWith('/') ? root : new Uri(root.AbsoluteUri + "/");
        return new Uri(withSlash, path);
    }

    private static async Task<T> ReadAsync<T>(HttpResponseMessage response, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken) =>
        await response.Content.ReadFromJsonAsync(typeInfo, cancellationToken)
            ?? throw new FerryException($"Placement answered {(int)response.StatusCode} without a body.", 502);

    private static async Task EnsureSuccessAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (!response.IsSuccessStatusCode)
        {
            throw await ErrorAsync(response, cancellationToken);
        }
    }

    /// <summary>Returns when the failure is a generation conflict worth another read-and-write; throws otherwise.</summary>
    private static async Task ThrowUnlessRetryableAsync(HttpResponseMessage response, int attempt, CancellationToken cancellationToken)
    {
        var error = await ReadErrorAsync(response, cancellationToken);
        if (response.StatusCode != HttpStatusCode.Conflict || error.Code != PlacementErrorCodes.ConcurrentUpdate || attempt >= MaxAttempts)
        {
            throw ToException(response.StatusCode, error);
        }
    }

    private static async Task<FerryException> ErrorAsync(HttpResponseMessage response, CancellationToken cancellationToken) =>
        ToException(response.StatusCode, await ReadErrorAsync(response, cancellationToken));

    private static async Task<PlacementErrorDto> ReadErrorAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var status = (int)response.StatusCode;
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        try
        {
            if (text.Length > 0 && JsonSerializer.Deserialize(text, s_json.PlacementErrorsDto) is { Errors: [var first, ..] })
            {
                return first;
            }
        }
        catch (JsonException)
        {
            // Not Placement's error shape (a proxy, say): fall through to the raw text.
        }
        return new PlacementErrorDto(status, response.ReasonPhrase ?? "", text.Length > 0 ? text : $"Placement answered {status}.", PlacementErrorCodes.Default);
    }

    private static FerryException ToException(HttpStatusCode status, PlacementErrorDto error) => status switch
    {
        HttpStatusCode.BadRequest => new BadRequestException(error.Detail),
        HttpStatusCode.NotFound => new NotFoundException(error.Detail),
        HttpStatusCode.Conflict => new PlacementConflictException(error.Detail),
        _ => new FerryException(error.Detail, (int)status),
    };

    private static Dictionary<string, AllocationResourcesDto> WithoutGenerations(Dictionary<string, AllocationResourcesDto> allocations, string? except)
    {
        var copy = new Dictionary<string, AllocationResourcesDto>(allocations.Count, StringComparer.Ordinal);
        foreach (var (rp, part) in allocations)
        {
            if (rp != except)
            {
                copy[rp] = new AllocationResourcesDto(part.Resources);
            }
        }
        return copy;
    }

    private static bool SameInventories(Dictionary<string, InventoryDto>? current, IReadOnlyDictionary<string, InventoryDto> wanted)
    {
        if (current is null || current.Count != wanted.Count)
        {
            return false;
        }
        foreach (var (rc, inventory) in wanted)
        {
            if (!current.TryGetValue(rc, out var existing) || existing != inventory)
            {
                return false;
            }
        }
        return true;
    }
}
