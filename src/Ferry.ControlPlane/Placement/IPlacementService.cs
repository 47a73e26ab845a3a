namespace Ferry.ControlPlane.Placement;

/// <summary>
/// Placement as the conductor and scheduler use it in-process (the REST API on :8778 serves the same
/// state to compute agents and to osc-placement). All writes are atomic and persisted before they
/// return; provider and consumer generations guard concurrent writers as in OpenStack Placement.
/// </summary>
public interface IPlacementService
{
    /// <summary>Creates the provider if missing (name updated if it changed); returns it.</summary>
    Task<ResourceProvider> EnsureProviderAsync(string uuid, string name, CancellationToken cancellationToken);

    Task<ResourceProvider?> GetProviderAsync(string uuid, CancellationToken cancellationToken);

    Task<IReadOnlyList<ResourceProvider>> ListProvidersAsync(CancellationToken cancellationToken);

    /// <summary>Deletes a provider and every allocation against it.</summary>
    Task DeleteProviderAsync(string uuid, CancellationToken cancellationToken);

    /// <summary>Replaces all inventories of a provider.</summary>
    /// <exception cref="Core.Errors.PlacementConflictException">Generation mismatch, or a class in use would disappear.</exception>
    Task<ResourceProvider> SetInventoriesAsync(string providerUuid, long? expectedGeneration, IReadOnlyDictionary<string, Inventory> inventories, CancellationToken cancellationToken);

    Task<IReadOnlyDictionary<string, Inventory>> GetInventoriesAsync(string providerUuid, CancellationToken cancellationToken);

    Task SetTraitsAsync(string providerUuid, long? expectedGeneration, IReadOnlyCollection<string> traits, CancellationToken cancellationToken);

    Task<IReadOnlySet<string>> GetTraitsAsync(string providerUuid, CancellationToken cancellationToken);

    /// <summary>Whether some provider has an inventory of <paramref name="resourceClass"/>.</summary>
    Task<bool> IsResourceClassInventoriedAsync(string resourceClass, CancellationToken cancellationToken);

    /// <summary>The traits some provider has.</summary>
    Task<IReadOnlySet<string>> GetAssociatedTraitsAsync(CancellationToken cancellationToken);

    /// <summary>Used resources per class on one provider.</summary>
    Task<IReadOnlyDictionary<string, long>> GetProviderUsagesAsync(string providerUuid, CancellationToken cancellationToken);

    /// <summary>Total used resources per class over all providers, optionally for one project.</summary>
    Task<IReadOnlyDictionary<string, long>> GetUsagesAsync(string? projectId, string? userId, CancellationToken cancellationToken);

    /// <summary>The consumer's allocations, or an empty record (generation null) when it has none.</summary>
    Task<ConsumerAllocations> GetAllocationsAsync(string consumerUuid, CancellationToken cancellationToken);

    /// <summary>All allocations against one provider, by consumer.</summary>
    Task<IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>>> GetProviderAllocationsAsync(string providerUuid, CancellationToken cancellationToken);

    /// <summary>
    /// Replaces the consumer's allocations (empty = delete). <paramref name="consumerGeneration"/> must
    /// match (null = the consumer must be new). Capacity is checked per provider:
    /// (total - reserved) * allocation_ratio, min/max unit and step size.
    /// </summary>
    /// <exception cref="Core.Errors.PlacementConflictException">Generation mismatch or not enough capacity.</exception>
    Task<ConsumerAllocations> PutAllocationsAsync(string consumerUuid, AllocationRequest request, CancellationToken cancellationToken);

    /// <summary>Deletes all of the consumer's allocations; false if it had none.</summary>
    Task<bool> DeleteAllocationsAsync(string consumerUuid, CancellationToken cancellationToken);

    /// <summary>
    /// Atomically replaces several consumers' allocations in one step (Placement's POST /allocations).
    /// This is how a move hands the source allocation from the instance to the migration and back.
    /// </summary>
    Task PostAllocationsAsync(IReadOnlyDictionary<string, AllocationRequest> requests, CancellationToken cancellationToken);

    /// <summary>
    /// Nova's move_allocations: target gets source's allocations (overwriting its own), source ends
    /// with none. Returns false when the source has none (already moved).
    /// </summary>
    Task<bool> MoveAllocationsAsync(string sourceConsumer, string targetConsumer, CancellationToken cancellationToken);

    /// <summary>Removes one provider's part of a consumer's allocations (rejected host during scheduling).</summary>
    Task RemoveProviderFromAllocationAsync(string consumerUuid, string providerUuid, CancellationToken cancellationToken);

    /// <summary>
    /// Providers that can fit <paramref name="resources"/> now, with their summaries. Providers having
    /// any <paramref name="forbiddenTraits"/> or missing any <paramref name="requiredTraits"/> are skipped.
    /// <paramref name="inTree"/> limits the answer to one provider.
    /// </summary>
    Task<AllocationCandidates> GetAllocationCandidatesAsync(
        IReadOnlyDictionary<string, long> resources,
        IReadOnlyCollection<string>? requiredTraits,
        IReadOnlyCollection<string>? forbiddenTraits,
        string? inTree,
        int limit,
        CancellationToken cancellationToken);
}

public static class ResourceClasses
{
    public const string Vcpu = "VCPU";
    public const string MemoryMb = "MEMORY_MB";
    public const string DiskGb = "DISK_GB";
}

public sealed record ResourceProvider(string Uuid, string Name, long Generation);

public sealed record Inventory
{
    public required long Total { get; init; }
    public long Reserved { get; init; }
    public long MinUnit { get; init; } = 1;
    public long MaxUnit { get; init; } = int.MaxValue;
    public long StepSize { get; init; } = 1;
    public double AllocationRatio { get; init; } = 1.0;

    /// <summary>What can be allocated in all: (total - reserved) * ratio, as Placement computes it.</summary>
    public long Capacity => (long)((Total - Reserved) * AllocationRatio);
}

/// <summary>A consumer's allocations: provider uuid → resource class → amount.</summary>
public sealed record ConsumerAllocations
{
    public Dictionary<string, Dictionary<string, long>> Allocations { get; init; } = [];
    /// <summary>null when the consumer does not exist (no allocations).</summary>
    public long? ConsumerGeneration { get; init; }
    public string? ProjectId { get; init; }
    public string? UserId { get; init; }
}

public sealed record AllocationRequest
{
    public required Dictionary<string, Dictionary<string, long>> Allocations { get; init; }
    public required string ProjectId { get; init; }
    public required string UserId { get; init; }
    public long? ConsumerGeneration { get; init; }
}

public sealed record AllocationCandidates(
    IReadOnlyList<string> ProviderUuids,
    IReadOnlyDictionary<string, ProviderSummary> Summaries);

/// <summary>Capacity and usage of one provider, per resource class, plus its traits.</summary>
public sealed record ProviderSummary(
    string Uuid,
    string Name,
    IReadOnlyDictionary<string, (long Capacity, long Used)> Resources,
    IReadOnlySet<string> Traits);
