using System.Text.Json.Serialization;

namespace Ferry.Core.Placement;

// The wire shapes of OpenStack Placement at microversion 1.39, shared by Ferry's Placement endpoints
// and by PlacementHttpClient (https://docs.openstack.org/api-ref/placement/). Keys of dictionaries
// (provider uuids, resource classes, consumer uuids) are data and keep their spelling.

/// <summary>Placement's microversion: what Ferry serves and what its client asks for.</summary>
public static class PlacementMicroversion
{
    public const string HeaderName = "OpenStack-API-Version";
    public const string Min = "1.0";
    public const string Max = "1.39";
    public const string HeaderValue = "placement " + Max;
}

/// <summary>
/// One inventory record; omitted fields take Placement's defaults. Positional, because the source
/// generator sets every init-only property, so defaults of omitted ones would be lost.
/// </summary>
public sealed record InventoryDto(
    long Total,
    long Reserved = 0,
    long MinUnit = 1,
    long MaxUnit = int.MaxValue,
    long StepSize = 1,
    double AllocationRatio = 1.0);

public sealed record LinkDto(string Rel, string Href);

public sealed record ResourceProviderDto
{
    public required string Uuid { get; init; }
    public required string Name { get; init; }
    public long Generation { get; init; }
    public string? RootProviderUuid { get; init; }
    public string? ParentProviderUuid { get; init; }
    public List<LinkDto>? Links { get; init; }
}

public sealed record ResourceProvidersDto(List<ResourceProviderDto> ResourceProviders);

/// <summary>Body of POST /resource_providers and PUT /resource_providers/{uuid}.</summary>
public sealed record ResourceProviderWriteDto
{
    public string? Name { get; init; }
    public string? Uuid { get; init; }
    public string? ParentProviderUuid { get; init; }
}

public sealed record ProviderInventoriesDto
{
    public long? ResourceProviderGeneration { get; init; }
    public Dictionary<string, InventoryDto>? Inventories { get; init; }
}

/// <summary>Body of PUT /resource_providers/{uuid}/inventories/{resource_class}: one inventory plus the generation.</summary>
public sealed record ProviderInventoryDto(
    long? ResourceProviderGeneration,
    long Total,
    long Reserved = 0,
    long MinUnit = 1,
    long MaxUnit = int.MaxValue,
    long StepSize = 1,
    double AllocationRatio = 1.0);

public sealed record ProviderUsagesDto(long ResourceProviderGeneration, Dictionary<string, long> Usages);

public sealed record ProviderTraitsDto
{
    public long? ResourceProviderGeneration { get; init; }
    public List<string>? Traits { get; init; }
}

/// <summary>One provider's part of an allocation; <see cref="Generation"/> only appears in GET answers.</summary>
public sealed record AllocationResourcesDto(
    Dictionary<string, long> Resources,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? Generation = null);

/// <summary>
/// GET/PUT /allocations/{consumer} (1.28+), and each value of the POST /allocations body.
/// <see cref="ConsumerGeneration"/> is always sent: null means "a new consumer".
/// </summary>
public sealed record ConsumerAllocationsDto
{
    public Dictionary<string, AllocationResourcesDto>? Allocations { get; init; }
    public long? ConsumerGeneration { get; init; }
    public string? ProjectId { get; init; }
    public string? UserId { get; init; }
    /// <summary>Placement 1.38's consumer type; Ferry does not type its consumers, which Placement shows as "unknown".</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? ConsumerType { get; init; }
}

public sealed record ConsumerResourcesDto(Dictionary<string, long> Resources);

public sealed record ProviderAllocationsDto(long ResourceProviderGeneration, Dictionary<string, ConsumerResourcesDto> Allocations);

public sealed record AllocationRequestDto
{
    public required Dictionary<string, AllocationResourcesDto> Allocations { get; init; }
    public Dictionary<string, List<string>>? Mappings { get; init; }
}

public sealed record ResourceCapacityDto(long Capacity, long Used);

public sealed record ProviderSummaryDto
{
    public required Dictionary<string, ResourceCapacityDto> Resources { get; init; }
    public List<string>? Traits { get; init; }
    public string? ParentProviderUuid { get; init; }
    public string? RootProviderUuid { get; init; }
}

public sealed record AllocationCandidatesDto(
    List<AllocationRequestDto> AllocationRequests,
    Dictionary<string, ProviderSummaryDto> ProviderSummaries);

public sealed record UsagesDto(Dictionary<string, long> Usages);

public sealed record PlacementErrorDto(int Status, string Title, string Detail, string Code)
{
    /// <summary>The request's id, as Placement's request-id middleware adds it to every error.</summary>
    public string? RequestId { get; init; }
}

public sealed record PlacementErrorsDto(List<PlacementErrorDto> Errors);

public sealed record PlacementVersionDto(string Id, string MaxVersion, string MinVersion, string Status, List<LinkDto> Links);

public sealed record PlacementVersionsDto(List<PlacementVersionDto> Versions);

/// <summary>Error codes Placement puts in <see cref="PlacementErrorDto.Code"/>.</summary>
public static class PlacementErrorCodes
{
    public const string Default = "placement.undefined_code";
    public const string ConcurrentUpdate = "placement.concurrent_update";
    public const string DuplicateName = "placement.duplicate_name";
    public const string InventoryInUse = "placement.inventory.inuse";
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(ResourceProviderDto))]
[JsonSerializable(typeof(ResourceProvidersDto))]
[JsonSerializable(typeof(ResourceProviderWriteDto))]
[JsonSerializable(typeof(ProviderInventoriesDto))]
[JsonSerializable(typeof(ProviderInventoryDto))]
[JsonSerializable(typeof(ProviderUsagesDto))]
[JsonSerializable(typeof(ProviderTraitsDto))]
[JsonSerializable(typeof(ConsumerAllocationsDto))]
[JsonSerializable(typeof(Dictionary<string, ConsumerAllocationsDto>))]
[JsonSerializable(typeof(ProviderAllocationsDto))]
[JsonSerializable(typeof(AllocationCandidatesDto))]
[JsonSerializable(typeof(UsagesDto))]
[JsonSerializable(typeof(PlacementErrorsDto))]
[JsonSerializable(typeof(PlacementVersionsDto))]
public sealed partial class PlacementJsonContext : JsonSerializerContext;
