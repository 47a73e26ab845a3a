using Ferry.ControlPlane.Placement;
using Ferry.ControlPlane.Scheduler;
using Ferry.Core.Domain;

// In the global namespace so that every test file sees these without a using.
/// <summary>Placement's calls (and the scheduler's, which claims through it) in blocking form, for tests and the benchmarks' seeding.</summary>
internal static class PlacementServiceSyncCalls
{
    private static T Wait<T>(Func<Task<T>> call) => Task.Run(call).GetAwaiter().GetResult();

    private static void Wait(Func<Task> call) => Task.Run(call).GetAwaiter().GetResult();

    public static ResourceProvider EnsureProvider(this IPlacementService placement, string uuid, string name) =>
        Wait(() => placement.EnsureProviderAsync(uuid, name, CancellationToken.None));

    public static ResourceProvider? GetProvider(this IPlacementService placement, string uuid) =>
        Wait(() => placement.GetProviderAsync(uuid, CancellationToken.None));

    public static IReadOnlyList<ResourceProvider> ListProviders(this IPlacementService placement) =>
        Wait(() => placement.ListProvidersAsync(CancellationToken.None));

    public static void DeleteProvider(this IPlacementService placement, string uuid) =>
        Wait(() => placement.DeleteProviderAsync(uuid, CancellationToken.None));

    public static ResourceProvider SetInventories(this IPlacementService placement, string providerUuid, long? expectedGeneration,
        IReadOnlyDictionary<string, Inventory> inventories) =>
        Wait(() => placement.SetInventoriesAsync(providerUuid, expectedGeneration, inventories, CancellationToken.None));

    public static IReadOnlyDictionary<string, Inventory> GetInventories(this IPlacementService placement, string providerUuid) =>
        Wait(() => placement.GetInventoriesAsync(providerUuid, CancellationToken.None));

    public static void SetTraits(this IPlacementService placement, string providerUuid, long? expectedGeneration, IReadOnlyCollection<string> traits) =>
        Wait(() => placement.SetTraitsAsync(providerUuid, expectedGeneration, traits, CancellationToken.None));

    public static IReadOnlySet<string> GetTraits(this IPlacementService placement, string providerUuid) =>
        Wait(() => placement.GetTraitsAsync(providerUuid, CancellationToken.None));

    public static IReadOnlyDictionary<string, long> GetProviderUsages(this IPlacementService placement, string providerUuid) =>
        Wait(() => placement.GetProviderUsagesAsync(providerUuid, CancellationToken.None));

    public static IReadOnlyDictionary<string, long> GetUsages(this IPlacementService placement, string? projectId, string? userId) =>
        Wait(() => placement.GetUsagesAsync(projectId, userId, CancellationToken.None));

    public static ConsumerAllocations GetAllocations(this IPlacementService placement, string consumerUuid) =>
        Wait(() => placement.GetAllocationsAsync(consumerUuid, CancellationToken.None));

    public static IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>> GetProviderAllocations(this IPlacementService placement, string providerUuid) =>
        Wait(() => placement.GetProviderAllocationsAsync(providerUuid, CancellationToken.None));

    public static ConsumerAllocations PutAllocations(this IPlacementService placement, string consumerUuid, AllocationRequest request) =>
        Wait(() => placement.PutAllocationsAsync(consumerUuid, request, CancellationToken.None));

    public static bool DeleteAllocations(this IPlacementService placement, string consumerUuid) =>
        Wait(() => placement.DeleteAllocationsAsync(consumerUuid, CancellationToken.None));

    public static void PostAllocations(this IPlacementService placement, IReadOnlyDictionary<string, AllocationRequest> requests) =>
        Wait(() => placement.PostAllocationsAsync(requests, CancellationToken.None));

    public static bool MoveAllocations(this IPlacementService placement, string sourceConsumer, string targetConsumer) =>
        Wait(() => placement.MoveAllocationsAsync(sourceConsumer, targetConsumer, CancellationToken.None));

    public static void RemoveProviderFromAllocation(this IPlacementService placement, string consumerUuid, string providerUuid) =>
        Wait(() => placement.RemoveProviderFromAllocationAsync(consumerUuid, providerUuid, CancellationToken.None));

    public static AllocationCandidates GetAllocationCandidates(
        this IPlacementService placement,
        IReadOnlyDictionary<string, long> resources,
        IReadOnlyCollection<string>? requiredTraits = null,
        IReadOnlyCollection<string>? forbiddenTraits = null,
        string? inTree = null,
        int limit = 1000) =>
        Wait(() => placement.GetAllocationCandidatesAsync(resources, requiredTraits, forbiddenTraits, inTree, limit, CancellationToken.None));
}
