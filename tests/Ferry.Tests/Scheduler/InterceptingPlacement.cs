using Ferry.ControlPlane.Placement;

namespace Ferry.Tests.Scheduler;

/// <summary>Passes everything to a real placement, running <see cref="AfterCandidates"/> in between, to stage races.</summary>
internal sealed class InterceptingPlacement(IPlacementService inner) : IPlacementService
{
    public Action? AfterCandidates { get; set; }

    public async Task<AllocationCandidates> GetAllocationCandidatesAsync(
        IReadOnlyDictionary<string, long> resources,
        IReadOnlyCollection<string>? requiredTraits,
        IReadOnlyCollection<string>? forbiddenTraits,
        string? inTree,
        int limit,
        CancellationToken cancellationToken)
    {
        var candidates = await inner.GetAllocationCandidatesAsync(resources, requiredTraits, forbiddenTraits, inTree, limit, cancellationToken);
        AfterCandidates?.Invoke();
        return candidates;
    }

    public Task<ResourceProvider> EnsureProviderAsync(string uuid, string name, CancellationToken cancellationToken) =>
        inner.EnsureProviderAsync(uuid, name, cancellationToken);
    public Task<ResourceProvider?> GetProviderAsync(string uuid, CancellationToken cancellationToken) => inner.GetProviderAsync(uuid, cancellationToken);
    public Task<IReadOnlyList<ResourceProvider>> ListProvidersAsync(CancellationToken cancellationToken) => inner.ListProvidersAsync(cancellationToken);
    public Task DeleteProviderAsync(string uuid, CancellationToken cancellationToken) => inner.DeleteProviderAsync(uuid, cancellationToken);
    public Task<ResourceProvider> SetInventoriesAsync(string providerUuid, long? expectedGeneration, IReadOnlyDictionary<string, Inventory> inventories,
        CancellationToken cancellationToken) =>
        inner.SetInventoriesAsync(providerUuid, expectedGeneration, inventories, cancellationToken);
    public Task<IReadOnlyDictionary<string, Inventory>> GetInventoriesAsync(string providerUuid, CancellationToken cancellationToken) =>
        inner.GetInventoriesAsync(providerUuid, cancellationToken);
    public Task SetTraitsAsync(string providerUuid, long? expectedGeneration, IReadOnlyCollection<string> traits, CancellationToken cancellationToken) =>
        inner.SetTraitsAsync(providerUuid, expectedGeneration, traits, cancellationToken);
    public Task<IReadOnlySet<string>> GetTraitsAsync(string providerUuid, CancellationToken cancellationToken) => inner.GetTraitsAsync(providerUuid, cancellationToken);

    public Task<bool> IsResourceClassInventoriedAsync(string resourceClass, CancellationToken cancellationToken) => inner.IsResourceClassInventoriedAsync(resourceClass, cancellationToken);

    public Task<IReadOnlySet<string>> GetAssociatedTraitsAsync(CancellationToken cancellationToken) => inner.GetAssociatedTraitsAsync(cancellationToken);
    public Task<IReadOnlyDictionary<string, long>> GetProviderUsagesAsync(string providerUuid, CancellationToken cancellationToken) =>
        inner.GetProviderUsagesAsync(providerUuid, cancellationToken);
    public Task<IReadOnlyDictionary<string, long>> GetUsagesAsync(string? projectId, string? userId, CancellationToken cancellationToken) =>
        inner.GetUsagesAsync(projectId, userId, cancellationToken);
    public Task<ConsumerAllocations> GetAllocationsAsync(string consumerUuid, CancellationToken cancellationToken) =>
        inner.GetAllocationsAsync(consumerUuid, cancellationToken);
    public Task<IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>>> GetProviderAllocationsAsync(string providerUuid, CancellationToken cancellationToken) =>
        inner.GetProviderAllocationsAsync(providerUuid, cancellationToken);
    public Task<ConsumerAllocations> PutAllocationsAsync(string consumerUuid, AllocationRequest request, CancellationToken cancellationToken) =>
        inner.PutAllocationsAsync(consumerUuid, request, cancellationToken);
    public Task<bool> DeleteAllocationsAsync(string consumerUuid, CancellationToken cancellationToken) => inner.DeleteAllocationsAsync(consumerUuid, cancellationToken);
    public Task PostAllocationsAsync(IReadOnlyDictionary<string, AllocationRequest> requests, CancellationToken cancellationToken) =>
        inner.PostAllocationsAsync(requests, cancellationToken);
    public Task<bool> MoveAllocationsAsync(string sourceConsumer, string targetConsumer, CancellationToken cancellationToken) =>
        inner.MoveAllocationsAsync(sourceConsumer, targetConsumer, cancellationToken);
    public Task RemoveProviderFromAllocationAsync(string consumerUuid, string providerUuid, CancellationToken cancellationToken) =>
        inner.RemoveProviderFromAllocationAsync(consumerUuid, providerUuid, cancellationToken);
}
