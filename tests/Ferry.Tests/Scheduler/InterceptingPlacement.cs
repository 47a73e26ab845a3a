using Ferry.ControlPlane.Placement;

namespace Ferry.Tests.Scheduler;

/// <summary>Passes everything to a real placement, running <see cref="AfterCandidates"/> in between, to stage races.</summary>
internal sealed class InterceptingPlacement(IPlacementService inner) : IPlacementService
{
    public Action? AfterCandidates { get; set; }

    public AllocationCandidates GetAllocationCandidates(
        IReadOnlyDictionary<string, long> resources,
        IReadOnlyCollection<string>? requiredTraits = null,
        IReadOnlyCollection<string>? forbiddenTraits = null,
        string? inTree = null,
        int limit = 1000)
    {
        var candidates = inner.GetAllocationCandidates(resources, requiredTraits, forbiddenTraits, inTree, limit);
        AfterCandidates?.Invoke();
        return candidates;
    }

    public ResourceProvider EnsureProvider(string uuid, string name) => inner.EnsureProvider(uuid, name);
    public ResourceProvider? GetProvider(string uuid) => inner.GetProvider(uuid);
    public IReadOnlyList<ResourceProvider> ListProviders() => inner.ListProviders();
    public void DeleteProvider(string uuid) => inner.DeleteProvider(uuid);
    public ResourceProvider SetInventories(string providerUuid, long? expectedGeneration, IReadOnlyDictionary<string, Inventory> inventories) =>
        inner.SetInventories(providerUuid, expectedGeneration, inventories);
    public IReadOnlyDictionary<string, Inventory> GetInventories(string providerUuid) => inner.GetInventories(providerUuid);
    public void SetTraits(string providerUuid, long? expectedGeneration, IReadOnlyCollection<string> traits) =>
        inner.SetTraits(providerUuid, expectedGeneration, traits);
    public IReadOnlySet<string> GetTraits(string providerUuid) => inner.GetTraits(providerUuid);
    public IReadOnlyDictionary<string, long> GetProviderUsages(string providerUuid) => inner.GetProviderUsages(providerUuid);
    public IReadOnlyDictionary<string, long> GetUsages(string? projectId, string? userId) => inner.GetUsages(projectId, userId);
    public ConsumerAllocations GetAllocations(string consumerUuid) => inner.GetAllocations(consumerUuid);
    public IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>> GetProviderAllocations(string providerUuid) =>
        inner.GetProviderAllocations(providerUuid);
    public ConsumerAllocations PutAllocations(string consumerUuid, AllocationRequest request) => inner.PutAllocations(consumerUuid, request);
    public bool DeleteAllocations(string consumerUuid) => inner.DeleteAllocations(consumerUuid);
    public void PostAllocations(IReadOnlyDictionary<string, AllocationRequest> requests) => inner.PostAllocations(requests);
    public bool MoveAllocations(string sourceConsumer, string targetConsumer) => inner.MoveAllocations(sourceConsumer, targetConsumer);
    public void RemoveProviderFromAllocation(string consumerUuid, string providerUuid) => inner.RemoveProviderFromAllocation(consumerUuid, providerUuid);
}
