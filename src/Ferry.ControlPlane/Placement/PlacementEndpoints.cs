using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization.Metadata;
using System.Text.RegularExpressions;
using Ferry.ControlPlane.Api;
using Ferry.Core.Errors;
using Ferry.Core.Placement;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace Ferry.ControlPlane.Placement;

/// <summary>
/// OpenStack Placement's REST API (https://docs.openstack.org/api-ref/placement/) over
/// <see cref="IPlacementService"/>, always answering in the shapes of microversion 1.39. Providers
/// have no parents here: each one is its own root, so in_tree names a single provider.
/// </summary>
public static partial class PlacementEndpoints
{
    private static readonly PlacementJsonContext s_json = new(new JsonSerializerOptions(PlacementJsonContext.Default.Options)
    {
        Converters = { new PlacementFloatConverter() },
    });

    /// <summary>Maps the API under <paramref name="prefix"/>; the host decides the port (Placement's is 8778).</summary>
    public static RouteGroupBuilder MapPlacementApi(this IEndpointRouteBuilder endpoints, string prefix = "")
    {
        var api = endpoints.MapGroup(prefix);
        api.AddEndpointFilter(HandleVersionAndErrorsAsync);

        api.MapGet("/", GetVersions);

        api.MapGet("/resource_providers", ListProvidersAsync);
        api.MapPost("/resource_providers", CreateProviderAsync);
        api.MapGet("/resource_providers/{uuid}", GetProviderAsync);
        api.MapPut("/resource_providers/{uuid}", UpdateProviderAsync);
        api.MapDelete("/resource_providers/{uuid}", DeleteProviderAsync);

        api.MapGet("/resource_providers/{uuid}/inventories", GetInventoriesAsync);
        api.MapPut("/resource_providers/{uuid}/inventories", PutInventoriesAsync);
        api.MapPost("/resource_providers/{uuid}/inventories", CreateInventoryAsync);
        api.MapDelete("/resource_providers/{uuid}/inventories", DeleteInventoriesAsync);
        api.MapGet("/resource_providers/{uuid}/inventories/{resourceClass}", GetInventoryAsync);
        api.MapPut("/resource_providers/{uuid}/inventories/{resourceClass}", PutInventoryAsync);
        api.MapDelete("/resource_providers/{uuid}/inventories/{resourceClass}", DeleteInventoryAsync);

        api.MapGet("/resource_providers/{uuid}/usages", GetProviderUsagesAsync);
        api.MapGet("/resource_providers/{uuid}/traits", GetTraitsAsync);
        api.MapPut("/resource_providers/{uuid}/traits", PutTraitsAsync);
        api.MapDelete("/resource_providers/{uuid}/traits", DeleteTraitsAsync);
        api.MapGet("/resource_providers/{uuid}/allocations", GetProviderAllocationsAsync);

        api.MapGet("/allocations/{consumer}", GetAllocationsAsync);
        api.MapPut("/allocations/{consumer}", PutAllocationsAsync);
        api.MapDelete("/allocations/{consumer}", DeleteAllocationsAsync);
        api.MapPost("/allocations", PostAllocationsAsync);

        api.MapGet("/allocation_candidates", GetAllocationCandidatesAsync);
        api.MapGet("/usages", GetUsagesAsync);
        api.MapResourceClassesAndTraits();
        api.Map("{**path}", NotFound).AsFallback();
        return api;
    }

    private static async ValueTask<object?> HandleVersionAndErrorsAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var requestId = $"req-{Guid.NewGuid()}";
        http.Response.Headers["openstack-request-id"] = requestId;
        http.Response.Headers[PlacementMicroversion.HeaderName] = PlacementMicroversion.HeaderValue;
        http.Response.Headers.Vary = PlacementMicroversion.HeaderName;
        if (!IsAcceptableVersion(http.Request.Headers[PlacementMicroversion.HeaderName].ToString()))
        {
            return Error(406, $"Unacceptable version header: {http.Request.Headers[PlacementMicroversion.HeaderName]}", requestId);
        }
        try
        {
            return await next(context);
        }
        catch (FerryException ex)
        {
            return Error(ex.HttpStatus, ex.Message, requestId);
        }
        catch (JsonException ex)
        {
            return Error(400, $"Malformed JSON: {ex.Message}", requestId);
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex)
        {
            ApiErrorLog.RequestFailed(http, "placement", ex);
            return Error(500, "An unexpected error occurred.", requestId);
        }
    }

    /// <summary>
    /// Placement's answer to a path it does not serve (404) or serves with other methods (405 and
    /// <c>Allow</c>, placement/handler.py handle_405), through its JSON error formatter.
    /// </summary>
    private static JsonHttpResult<PlacementErrorsDto> NotFound(HttpContext http) =>
        AllowedMethods.IsWrongMethod(http)
            ? Error(405, "The method specified is not allowed for this resource.", http.Response.Headers["openstack-request-id"].ToString())
            : Error(404, "The resource could not be found.", http.Response.Headers["openstack-request-id"].ToString());

    /// <summary>Accepts no header, "latest", or placement 1.x up to the maximum.</summary>
    private static bool IsAcceptableVersion(string header)
    {
        if (header.Length == 0)
        {
            return true;
        }
        foreach (var part in header.Split(','))
        {
            var words = part.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (words.Length != 2 || !words[0].Equals("placement", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }
            if (words[1] == "latest")
            {
                return true;
            }
            var numbers = words[1].Split('.');
            return numbers.Length == 2
                && int.TryParse(numbers[0], NumberStyles.None, CultureInfo.InvariantCulture, out var major)
                && int.TryParse(numbers[1], NumberStyles.None, CultureInfo.InvariantCulture, out var minor)
                && major == 1 && minor <= 39;
        }
        return true;
    }

    private static JsonHttpResult<PlacementErrorsDto> Error(int status, string detail, string requestId)
    {
        var title = status switch
        {
            400 => "Bad Request",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            406 => "Not Acceptable",
            409 => "Conflict",
            _ => "Internal Server Error",
        };
        var code = status != 409 ? PlacementErrorCodes.Default
            : detail.Contains("generation conflict", StringComparison.Ordinal) ? PlacementErrorCodes.ConcurrentUpdate
            : detail.Contains("Conflicting resource provider name", StringComparison.Ordinal) ? PlacementErrorCodes.DuplicateName
            : detail.Contains(" in use", StringComparison.Ordinal) ? PlacementErrorCodes.InventoryInUse
            : PlacementErrorCodes.Default;
        return TypedResults.Json(new PlacementErrorsDto([new PlacementErrorDto(status, title, detail, code) { RequestId = requestId }]), s_json.PlacementErrorsDto, statusCode: status);
    }

    private static JsonHttpResult<PlacementVersionsDto> GetVersions() =>
        TypedResults.Json(
            new PlacementVersionsDto([new PlacementVersionDto("v1.0", PlacementMicroversion.Max, PlacementMicroversion.Min, "CURRENT", [new LinkDto("self", "")])]),
            s_json.PlacementVersionsDto);

    // ---- resource providers ----

    private static async Task<JsonHttpResult<ResourceProvidersDto>> ListProvidersAsync(HttpRequest request, IPlacementService placement, CancellationToken cancellationToken)
    {
        var name = request.Query["name"].ToString();
        var uuid = request.Query["uuid"].ToString();
        var inTree = request.Query["in_tree"].ToString();
        var list = new List<ResourceProviderDto>();
        foreach (var provider in await placement.ListProvidersAsync(cancellationToken))
        {
            if ((name.Length > 0 && provider.Name != name) || (uuid.Length > 0 && provider.Uuid != uuid) || (inTree.Length > 0 && provider.Uuid != inTree))
            {
                continue;
            }
            list.Add(ToDto(provider));
        }
        return TypedResults.Json(new ResourceProvidersDto(list), s_json.ResourceProvidersDto);
    }

    private static async Task<JsonHttpResult<ResourceProviderDto>> CreateProviderAsync(HttpRequest request, HttpResponse response, IPlacementService placement, CancellationToken cancellationToken)
    {
        var body = await ReadAsync(request, s_json.ResourceProviderWriteDto, cancellationToken);
        if (string.IsNullOrWhiteSpace(body.Name) || body.Name.Length > 200)
        {
            throw new BadRequestException("'name' is a required property of 1 to 200 characters.");
        }
        RejectParent(body.ParentProviderUuid);
        var uuid = body.Uuid ?? Guid.NewGuid().ToString();
        if (!Guid.TryParse(uuid, out _))
        {
            throw new BadRequestException($"'{uuid}' is not a 'uuid'.");
        }
        if (await placement.GetProviderAsync(uuid, cancellationToken) is not null)
        {
            throw new PlacementConflictException($"Conflicting resource provider uuid: {uuid} already exists.");
        }
        var provider = await placement.EnsureProviderAsync(uuid, body.Name, cancellationToken);
        response.Headers.Location = $"/resource_providers/{provider.Uuid}";
        return TypedResults.Json(ToDto(provider), s_json.ResourceProviderDto);
    }

    private static async Task<JsonHttpResult<ResourceProviderDto>> GetProviderAsync(string uuid, IPlacementService placement, CancellationToken cancellationToken) =>
        TypedResults.Json(ToDto(await RequireProviderAsync(placement, uuid, cancellationToken)), s_json.ResourceProviderDto);

    private static async Task<JsonHttpResult<ResourceProviderDto>> UpdateProviderAsync(string uuid, HttpRequest request, IPlacementService placement, CancellationToken cancellationToken)
    {
        var body = await ReadAsync(request, s_json.ResourceProviderWriteDto, cancellationToken);
        if (string.IsNullOrWhiteSpace(body.Name) || body.Name.Length > 200)
        {
            throw new BadRequestException("'name' is a required property of 1 to 200 characters.");
        }
        RejectParent(body.ParentProviderUuid);
        await RequireProviderAsync(placement, uuid, cancellationToken);
        return TypedResults.Json(ToDto(await placement.EnsureProviderAsync(uuid, body.Name, cancellationToken)), s_json.ResourceProviderDto);
    }

    private static async Task<NoContent> DeleteProviderAsync(string uuid, IPlacementService placement, CancellationToken cancellationToken)
    {
        await RequireProviderAsync(placement, uuid, cancellationToken);
        // Placement refuses to delete a provider that still has allocations; the in-process service
        // cascades (Nova's cascade=True). Checked then deleted: an allocation racing in is dropped too.
        if ((await placement.GetProviderAllocationsAsync(uuid, cancellationToken)).Count > 0)
        {
            throw new PlacementConflictException($"Unable to delete resource provider {uuid}: Resource provider has allocations.");
        }
        await placement.DeleteProviderAsync(uuid, cancellationToken);
        return TypedResults.NoContent();
    }

    // ---- inventories ----

    private static async Task<JsonHttpResult<ProviderInventoriesDto>> GetInventoriesAsync(string uuid, IPlacementService placement, CancellationToken cancellationToken) =>
        TypedResults.Json(await InventoriesDtoAsync(placement, await RequireProviderAsync(placement, uuid, cancellationToken), cancellationToken), s_json.ProviderInventoriesDto);

    private static async Task<JsonHttpResult<ProviderInventoriesDto>> PutInventoriesAsync(string uuid, HttpRequest request, IPlacementService placement,
        PlacementCatalog catalog, CancellationToken cancellationToken)
    {
        var body = await ReadAsync(request, s_json.ProviderInventoriesDto, cancellationToken);
        if (body.ResourceProviderGeneration is not { } generation || body.Inventories is null)
        {
            throw new BadRequestException("'resource_provider_generation' and 'inventories' are required properties.");
        }
        var current = await RequireProviderAsync(placement, uuid, cancellationToken);
        var inventories = new Dictionary<string, Inventory>(body.Inventories.Count, StringComparer.Ordinal);
        foreach (var (rc, inventory) in body.Inventories)
        {
            inventories[rc] = ToInventory(inventory ?? throw NotAnObject());
        }
        // Placement answers a stale generation (409) before it looks the classes up (400).
        if (current.Generation == generation)
        {
            RequireResourceClasses(catalog, inventories.Keys, $"Unknown resource class in inventory for resource provider {uuid}");
        }
        var provider = await placement.SetInventoriesAsync(uuid, generation, inventories, cancellationToken);
        return TypedResults.Json(await InventoriesDtoAsync(placement, provider, cancellationToken), s_json.ProviderInventoriesDto);
    }

    private static async Task<NoContent> DeleteInventoriesAsync(string uuid, IPlacementService placement, CancellationToken cancellationToken)
    {
        var provider = await RequireProviderAsync(placement, uuid, cancellationToken);
        await placement.SetInventoriesAsync(uuid, provider.Generation, new Dictionary<string, Inventory>(), cancellationToken);
        return TypedResults.NoContent();
    }

    private static async Task<JsonHttpResult<ProviderInventoryDto>> GetInventoryAsync(string uuid, string resourceClass, IPlacementService placement, CancellationToken cancellationToken)
    {
        var provider = await RequireProviderAsync(placement, uuid, cancellationToken);
        if (!(await placement.GetInventoriesAsync(uuid, cancellationToken)).TryGetValue(resourceClass, out var inventory))
        {
            throw new NotFoundException($"No inventory of class {resourceClass} for {uuid}");
        }
        return TypedResults.Json(ToDto(inventory, provider.Generation), s_json.ProviderInventoryDto);
    }

    private static async Task<JsonHttpResult<ProviderInventoryDto>> PutInventoryAsync(string uuid, string resourceClass, HttpRequest request, IPlacementService placement,
        PlacementCatalog catalog, CancellationToken cancellationToken)
    {
        var body = await ReadAsync(request, s_json.ProviderInventoryDto, cancellationToken);
        if (body.ResourceProviderGeneration is not { } generation)
        {
            throw new BadRequestException("'resource_provider_generation' is a required property.");
        }
        if ((await RequireProviderAsync(placement, uuid, cancellationToken)).Generation == generation)
        {
            RequireResourceClasses(catalog, [resourceClass], $"Unable to update inventory for resource provider {uuid}");
        }
        var inventory = ToInventory(new InventoryDto(body.Total, body.Reserved, body.MinUnit, body.MaxUnit, body.StepSize, body.AllocationRatio));
        var inventories = new Dictionary<string, Inventory>(await placement.GetInventoriesAsync(uuid, cancellationToken), StringComparer.Ordinal) { [resourceClass] = inventory };
        var provider = await placement.SetInventoriesAsync(uuid, generation, inventories, cancellationToken);
        return TypedResults.Json(ToDto(inventory, provider.Generation), s_json.ProviderInventoryDto);
    }

    /// <summary>
    /// POST one inventory (handlers/inventory.py create_inventory): the body names its <c>resource_class</c> and needs no
    /// generation; 201 with a Location, 409 when the provider already has that class, 400 for a class that does not exist.
    /// </summary>
    private static async Task<JsonHttpResult<ProviderInventoryDto>> CreateInventoryAsync(string uuid, HttpRequest request, HttpResponse response,
        IPlacementService placement, PlacementCatalog catalog, CancellationToken cancellationToken)
    {
        JsonObject body;
        try
        {
            body = await RequestJson.ReadAsync(request, cancellationToken) as JsonObject ?? throw new BadRequestException("The request body must be a JSON object.");
        }
        catch (JsonException ex)
        {
            throw new BadRequestException($"Malformed JSON: {ex.Message}");
        }
        if (!body.TryGetPropertyValue("resource_class", out var rcNode) || rcNode is not JsonValue rcValue || rcValue.GetValueKind() != JsonValueKind.String)
        {
            throw new BadRequestException("JSON does not validate: 'resource_class' is a required property of type 'string'.");
        }
        var resourceClass = rcValue.GetValue<string>();
        if (!ResourceClassPattern().IsMatch(resourceClass))
        {
            throw new BadRequestException($"JSON does not validate: '{resourceClass}' does not match '^[A-Z0-9_]+$'");
        }
        if (body.ContainsKey("resource_provider_generation"))
        {
            throw new BadRequestException("JSON does not validate: Additional properties are not allowed ('resource_provider_generation' was unexpected)");
        }
        body.Remove("resource_class");
        body["resource_provider_generation"] = 0;
        ProviderInventoryDto dto;
        try
        {
            dto = body.Deserialize(s_json.ProviderInventoryDto) ?? throw new BadRequestException("The request body must be a JSON object.");
        }
        catch (JsonException ex)
        {
            throw new BadRequestException($"Malformed JSON: {ex.Message}");
        }
        var provider = await RequireProviderAsync(placement, uuid, cancellationToken);
        var existing = await placement.GetInventoriesAsync(uuid, cancellationToken);
        if (existing.ContainsKey(resourceClass))
        {
            throw new PlacementConflictException($"Update conflict: an inventory of class {resourceClass} already exists on resource provider {uuid}.");
        }
        RequireResourceClasses(catalog, [resourceClass], $"Unable to create inventory for resource provider {uuid}");
        var inventory = ToInventory(new InventoryDto(dto.Total, dto.Reserved, dto.MinUnit, dto.MaxUnit, dto.StepSize, dto.AllocationRatio));
        var inventories = new Dictionary<string, Inventory>(existing, StringComparer.Ordinal) { [resourceClass] = inventory };
        var updated = await placement.SetInventoriesAsync(uuid, provider.Generation, inventories, cancellationToken);
        response.Headers.Location = $"{request.Scheme}://{request.Host}/resource_providers/{uuid}/inventories/{resourceClass}";
        return TypedResults.Json(ToDto(inventory, updated.Generation), s_json.ProviderInventoryDto, statusCode: StatusCodes.Status201Created);
    }

    /// <summary>Placement's ResourceClassNotFound for a class neither standard nor custom-created, prefixed as each handler words it.</summary>
    private static void RequireResourceClasses(PlacementCatalog catalog, IEnumerable<string> classes, string prefix)
    {
        if (classes.FirstOrDefault(rc => !catalog.ResourceClassExists(rc)) is { } unknown)
        {
            throw new BadRequestException($"{prefix}: No such resource class {unknown}.");
        }
    }

    [GeneratedRegex("^[A-Z0-9_]+$")]
    private static partial Regex ResourceClassPattern();

    private static async Task<NoContent> DeleteInventoryAsync(string uuid, string resourceClass, IPlacementService placement, CancellationToken cancellationToken)
    {
        var provider = await RequireProviderAsync(placement, uuid, cancellationToken);
        var inventories = new Dictionary<string, Inventory>(await placement.GetInventoriesAsync(uuid, cancellationToken), StringComparer.Ordinal);
        if (!inventories.Remove(resourceClass))
        {
            throw new NotFoundException($"No inventory of class {resourceClass} found for delete");
        }
        await placement.SetInventoriesAsync(uuid, provider.Generation, inventories, cancellationToken);
        return TypedResults.NoContent();
    }

    // ---- usages, traits, provider allocations ----

    private static async Task<JsonHttpResult<ProviderUsagesDto>> GetProviderUsagesAsync(string uuid, IPlacementService placement, CancellationToken cancellationToken)
    {
        var provider = await RequireProviderAsync(placement, uuid, cancellationToken);
        var usages = new Dictionary<string, long>(await placement.GetProviderUsagesAsync(uuid, cancellationToken), StringComparer.Ordinal);
        return TypedResults.Json(new ProviderUsagesDto(provider.Generation, usages), s_json.ProviderUsagesDto);
    }

    private static async Task<JsonHttpResult<ProviderTraitsDto>> GetTraitsAsync(string uuid, IPlacementService placement, CancellationToken cancellationToken)
    {
        var provider = await RequireProviderAsync(placement, uuid, cancellationToken);
        return TypedResults.Json(await TraitsDtoAsync(placement, provider, cancellationToken), s_json.ProviderTraitsDto);
    }

    private static async Task<JsonHttpResult<ProviderTraitsDto>> PutTraitsAsync(string uuid, HttpRequest request, IPlacementService placement, PlacementCatalog catalog, CancellationToken cancellationToken)
    {
        var body = await ReadAsync(request, s_json.ProviderTraitsDto, cancellationToken);
        if (body.ResourceProviderGeneration is not { } generation || body.Traits is null)
        {
            throw new BadRequestException("'resource_provider_generation' and 'traits' are required properties.");
        }
        if (body.Traits.Any(t => t is null))
        {
            throw new BadRequestException("JSON does not validate: None is not of type 'string'");
        }
        // Placement checks the generation (409) before the names (400); SetTraits does the former.
        if ((await RequireProviderAsync(placement, uuid, cancellationToken)).Generation == generation)
        {
            ResourceClassesAndTraitsEndpoints.RequireTraits(catalog, body.Traits);
        }
        await placement.SetTraitsAsync(uuid, generation, body.Traits, cancellationToken);
        return TypedResults.Json(await TraitsDtoAsync(placement, await RequireProviderAsync(placement, uuid, cancellationToken), cancellationToken), s_json.ProviderTraitsDto);
    }

    private static async Task<NoContent> DeleteTraitsAsync(string uuid, IPlacementService placement, CancellationToken cancellationToken)
    {
        var provider = await RequireProviderAsync(placement, uuid, cancellationToken);
        await placement.SetTraitsAsync(uuid, provider.Generation, [], cancellationToken);
        return TypedResults.NoContent();
    }

    private static async Task<JsonHttpResult<ProviderAllocationsDto>> GetProviderAllocationsAsync(string uuid, IPlacementService placement, CancellationToken cancellationToken)
    {
        var provider = await RequireProviderAsync(placement, uuid, cancellationToken);
        var allocations = new Dictionary<string, ConsumerResourcesDto>(StringComparer.Ordinal);
        foreach (var (consumer, resources) in await placement.GetProviderAllocationsAsync(uuid, cancellationToken))
        {
            allocations[consumer] = new ConsumerResourcesDto(new Dictionary<string, long>(resources, StringComparer.Ordinal));
        }
        return TypedResults.Json(new ProviderAllocationsDto(provider.Generation, allocations), s_json.ProviderAllocationsDto);
    }

    // ---- allocations ----

    private static async Task<JsonHttpResult<ConsumerAllocationsDto>> GetAllocationsAsync(string consumer, IPlacementService placement, CancellationToken cancellationToken)
    {
        var current = await placement.GetAllocationsAsync(consumer, cancellationToken);
        var allocations = new Dictionary<string, AllocationResourcesDto>(current.Allocations.Count, StringComparer.Ordinal);
        foreach (var (rp, resources) in current.Allocations)
        {
            // Placement lists a consumer's resource classes in name order (DISK_GB, MEMORY_MB, VCPU).
            var ordered = resources.OrderBy(r => r.Key, StringComparer.Ordinal).ToDictionary(r => r.Key, r => r.Value, StringComparer.Ordinal);
            allocations[rp] = new AllocationResourcesDto(ordered, (await placement.GetProviderAsync(rp, cancellationToken))?.Generation);
        }
        var dto = new ConsumerAllocationsDto
        {
            Allocations = allocations,
            ConsumerGeneration = current.ConsumerGeneration,
            ProjectId = current.ProjectId,
            UserId = current.UserId,
            ConsumerType = current.ConsumerGeneration is null ? null : "unknown",
        };
        return TypedResults.Json(dto, s_json.ConsumerAllocationsDto);
    }

    private static async Task<NoContent> PutAllocationsAsync(string consumer, HttpRequest request, IPlacementService placement, CancellationToken cancellationToken)
    {
        RequireConsumerUuid(consumer);
        var body = await ReadAsync(request, s_json.ConsumerAllocationsDto, cancellationToken);
        await placement.PutAllocationsAsync(consumer, ToRequest(consumer, body), cancellationToken);
        return TypedResults.NoContent();
    }

    private static async Task<NoContent> DeleteAllocationsAsync(string consumer, IPlacementService placement, CancellationToken cancellationToken) =>
        await placement.DeleteAllocationsAsync(consumer, cancellationToken)
            ? TypedResults.NoContent()
            : throw new NotFoundException($"No allocations for consumer '{consumer}'");

    private static async Task<NoContent> PostAllocationsAsync(HttpRequest request, IPlacementService placement, CancellationToken cancellationToken)
    {
        var body = await ReadAsync(request, s_json.DictionaryStringConsumerAllocationsDto, cancellationToken);
        if (body.Count == 0)
        {
            throw new BadRequestException("At least one consumer is required.");
        }
        var requests = new Dictionary<string, AllocationRequest>(body.Count, StringComparer.Ordinal);
        foreach (var (consumer, dto) in body)
        {
            RequireConsumerUuid(consumer);
            requests[consumer] = ToRequest(consumer, dto);
        }
        await placement.PostAllocationsAsync(requests, cancellationToken);
        return TypedResults.NoContent();
    }

    // ---- allocation candidates, usages ----

    private static async Task<JsonHttpResult<AllocationCandidatesDto>> GetAllocationCandidatesAsync(HttpRequest request, IPlacementService placement, CancellationToken cancellationToken)
    {
        var query = request.Query;
        foreach (var key in query.Keys)
        {
            if (key.Length > "resources".Length && key.StartsWith("resources", StringComparison.Ordinal))
            {
                throw new BadRequestException($"Numbered request groups ('{key}') are not supported.");
            }
        }
        var resources = ParseResources(query["resources"].ToString());

        var required = new List<string>();
        var forbidden = new List<string>();
        var anyOf = new List<string[]>();
        foreach (var key in (string[])["required", "root_required"])
        {
            foreach (var value in query[key])
            {
                ParseTraits(value ?? "", required, forbidden, anyOf);
            }
        }

        var limit = int.MaxValue;
        var limitText = query["limit"].ToString();
        if (limitText.Length > 0 && (!int.TryParse(limitText, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit < 1))
        {
            throw new BadRequestException($"Invalid query string parameters: limit '{limitText}' must be a positive integer.");
        }
        var inTree = query["in_tree"].ToString();

        // Any-of trait groups (required=in:A,B) are applied to the summaries, so the limit comes after them.
        var candidates = await placement.GetAllocationCandidatesAsync(
            resources, required, forbidden, inTree.Length > 0 ? inTree : null, anyOf.Count > 0 ? int.MaxValue : limit, cancellationToken);

        var requests = new List<AllocationRequestDto>(Math.Min(candidates.ProviderUuids.Count, limit));
        var summaries = new Dictionary<string, ProviderSummaryDto>(requests.Capacity, StringComparer.Ordinal);
        foreach (var uuid in candidates.ProviderUuids)
        {
            var summary = candidates.Summaries[uuid];
            if (!MatchesAnyOf(summary.Traits, anyOf))
            {
                continue;
            }
            requests.Add(new AllocationRequestDto
            {
                Allocations = new(StringComparer.Ordinal) { [uuid] = new AllocationResourcesDto(new(resources, StringComparer.Ordinal)) },
                Mappings = new(StringComparer.Ordinal) { [""] = [uuid] },
            });
            summaries[uuid] = ToDto(summary);
            if (requests.Count >= limit)
            {
                break;
            }
        }
        return TypedResults.Json(new AllocationCandidatesDto(requests, summaries), s_json.AllocationCandidatesDto);
    }

    private static async Task<JsonHttpResult<UsagesDto>> GetUsagesAsync(HttpRequest request, IPlacementService placement, CancellationToken cancellationToken)
    {
        var projectId = request.Query["project_id"].ToString();
        if (projectId.Length == 0)
        {
            throw new BadRequestException("'project_id' is a required query parameter.");
        }
        var userId = request.Query["user_id"].ToString();
        var usages = await placement.GetUsagesAsync(projectId, userId.Length > 0 ? userId : null, cancellationToken);
        return TypedResults.Json(new UsagesDto(new Dictionary<string, long>(usages, StringComparer.Ordinal)), s_json.UsagesDto);
    }

    // ---- helpers ----

    private static async Task<T> ReadAsync<T>(HttpRequest request, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken)
    {
        try
        {
            // The shared reader settles repeated keys and refuses lone surrogates before the typed binding.
            var node = await RequestJson.ReadAsync(request, cancellationToken);
            return (node is null ? default : node.Deserialize(typeInfo))
                ?? throw new BadRequestException("The request body must be a JSON object.");
        }
        catch (JsonException ex)
        {
            throw new BadRequestException($"Malformed JSON: {ex.Message}");
        }
    }

    /// <summary>Placement refuses to write allocations for a consumer id that is not a UUID (handlers/allocation.py).</summary>
    private static void RequireConsumerUuid(string consumer)
    {
        if (!BodySchema.IsUuid(consumer))
        {
            throw new BadRequestException($"Malformed consumer_uuid: {consumer}");
        }
    }

    private static async Task<ResourceProvider> RequireProviderAsync(IPlacementService placement, string uuid, CancellationToken cancellationToken) =>
        await placement.GetProviderAsync(uuid, cancellationToken) ?? throw new NotFoundException($"No resource provider with uuid {uuid} found");

    private static void RejectParent(string? parent)
    {
        if (parent is not null)
        {
            throw new BadRequestException("Nested resource providers are not supported: parent_provider_uuid must be null.");
        }
    }

    /// <summary>A JSON null where Placement's schema wants an object (a binding gives null, not an error).</summary>
    private static BadRequestException NotAnObject() => new("JSON does not validate: None is not of type 'object'");

    private static AllocationRequest ToRequest(string consumer, ConsumerAllocationsDto? body)
    {
        if (body is null)
        {
            throw NotAnObject();
        }
        if (body.Allocations is null || string.IsNullOrEmpty(body.ProjectId) || string.IsNullOrEmpty(body.UserId))
        {
            throw new BadRequestException($"Consumer {consumer}: 'allocations', 'project_id' and 'user_id' are required properties.");
        }
        var allocations = new Dictionary<string, Dictionary<string, long>>(body.Allocations.Count, StringComparer.Ordinal);
        foreach (var (rp, part) in body.Allocations)
        {
            if (part?.Resources is not { Count: > 0 })
            {
                throw new BadRequestException($"Allocation for resource provider '{rp}' has no resources.");
            }
            allocations[rp] = part.Resources;
        }
        return new AllocationRequest
        {
            Allocations = allocations,
            ProjectId = body.ProjectId,
            UserId = body.UserId,
            ConsumerGeneration = body.ConsumerGeneration,
        };
    }

    private static Dictionary<string, long> ParseResources(string text)
    {
        if (text.Length == 0)
        {
            throw new BadRequestException("'resources' is a required query parameter.");
        }
        var resources = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var item in text.Split(','))
        {
            var pair = item.Split(':');
            if (pair.Length != 2 || pair[0].Length == 0
                || !long.TryParse(pair[1], NumberStyles.None, CultureInfo.InvariantCulture, out var amount) || amount < 1
                || !resources.TryAdd(pair[0], amount))
            {
                throw new BadRequestException($"Badly formed resources parameter. Expected resources query string parameter in form: ?resources=VCPU:2,MEMORY_MB:1024. Got: {text}.");
            }
        }
        return resources;
    }

    private static void ParseTraits(string value, List<string> required, List<string> forbidden, List<string[]> anyOf)
    {
        if (value.StartsWith("in:", StringComparison.Ordinal))
        {
            anyOf.Add(value[3..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
            return;
        }
        foreach (var raw in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (raw.StartsWith('!'))
            {
                forbidden.Add(raw[1..]);
            }
            else
            {
                required.Add(raw);
            }
        }
    }

    private static bool MatchesAnyOf(IReadOnlySet<string> traits, List<string[]> anyOf)
    {
        foreach (var group in anyOf)
        {
            if (!group.Any(traits.Contains))
            {
                return false;
            }
        }
        return true;
    }

    private static ResourceProviderDto ToDto(ResourceProvider provider)
    {
        var self = $"/resource_providers/{provider.Uuid}";
        return new ResourceProviderDto
        {
            Uuid = provider.Uuid,
            Name = provider.Name,
            Generation = provider.Generation,
            RootProviderUuid = provider.Uuid,
            ParentProviderUuid = null,
            Links =
            [
                new("self", self),
                new("inventories", self + "/inventories"),
                new("usages", self + "/usages"),
                new("aggregates", self + "/aggregates"),
                new("traits", self + "/traits"),
                new("allocations", self + "/allocations"),
            ],
        };
    }

    private static ProviderSummaryDto ToDto(ProviderSummary summary)
    {
        var resources = new Dictionary<string, ResourceCapacityDto>(summary.Resources.Count, StringComparer.Ordinal);
        foreach (var (rc, (capacity, used)) in summary.Resources)
        {
            resources[rc] = new ResourceCapacityDto(capacity, used);
        }
        return new ProviderSummaryDto
        {
            Resources = resources,
            Traits = [.. summary.Traits.Order(StringComparer.Ordinal)],
            ParentProviderUuid = null,
            RootProviderUuid = summary.Uuid,
        };
    }

    private static ProviderInventoryDto ToDto(Inventory inventory, long generation) =>
        new(generation, inventory.Total, inventory.Reserved, inventory.MinUnit, inventory.MaxUnit, inventory.StepSize, inventory.AllocationRatio);

    private static Inventory ToInventory(InventoryDto dto) => new()
    {
        Total = dto.Total,
        Reserved = dto.Reserved,
        MinUnit = dto.MinUnit,
        MaxUnit = dto.MaxUnit,
        StepSize = dto.StepSize,
        AllocationRatio = dto.AllocationRatio,
    };

    private static async Task<ProviderInventoriesDto> InventoriesDtoAsync(IPlacementService placement, ResourceProvider provider, CancellationToken cancellationToken)
    {
        var inventories = new Dictionary<string, InventoryDto>(StringComparer.Ordinal);
        foreach (var (rc, inventory) in await placement.GetInventoriesAsync(provider.Uuid, cancellationToken))
        {
            inventories[rc] = new InventoryDto(
                inventory.Total, inventory.Reserved, inventory.MinUnit, inventory.MaxUnit, inventory.StepSize, inventory.AllocationRatio);
        }
        return new ProviderInventoriesDto { ResourceProviderGeneration = provider.Generation, Inventories = inventories };
    }

    private static async Task<ProviderTraitsDto> TraitsDtoAsync(IPlacementService placement, ResourceProvider provider, CancellationToken cancellationToken) => new()
    {
        ResourceProviderGeneration = provider.Generation,
        Traits = [.. (await placement.GetTraitsAsync(provider.Uuid, cancellationToken)).Order(StringComparer.Ordinal)],
    };
}
