using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Core.Rpc.Conductor;

// In the global namespace so that every test file sees these without a using.
/// <summary>
/// The instance store's calls in the blocking form the tests were written in: arranging a world and checking it after
/// need no asynchrony, and the production code no longer has these. Each runs on the thread pool (outside xunit's
/// synchronization context, so the store's continuations never wait for the thread that blocks on them).
/// </summary>
internal static class InstanceStoreSyncCalls
{
    private static T Wait<T>(Func<Task<T>> call) => Task.Run(call).GetAwaiter().GetResult();

    public static Instance Create(this InstanceStore store, Func<int, Instance> build) => Wait(() => store.CreateAsync(build, CancellationToken.None));

    public static List<Instance> CreateMany(this InstanceStore store, int count, Func<int, int, Instance> build) =>
        Wait(() => store.CreateManyAsync(count, build, CancellationToken.None));

    public static Instance? Find(this InstanceStore store, string uuid) => Wait(() => store.FindAsync(uuid, CancellationToken.None));

    public static Instance? Find(this InstanceStore store, string uuid, bool includeDeleted) =>
        Wait(() => store.FindAsync(uuid, CancellationToken.None, includeDeleted));

    public static ProjectUsage UsageOfProject(this InstanceStore store, string projectId, string? userId = null) =>
        Wait(() => store.UsageOfProjectAsync(projectId, userId, CancellationToken.None));

    public static Instance Get(this InstanceStore store, string uuid) => Wait(() => store.GetAsync(uuid, CancellationToken.None));

    public static List<Instance> List(this InstanceStore store, string? projectId = null, string? host = null, bool includeDeleted = false) =>
        Wait(() => store.ListAsync(CancellationToken.None, projectId, host, includeDeleted));

    public static List<Instance> ListPage(this InstanceStore store, InstanceListFilter filter, InstancePosition? after, int? limit) =>
        Wait(() => store.ListPageAsync(filter, after, limit, CancellationToken.None));

    public static List<Instance> ListByHost(this InstanceStore store, string host) => Wait(() => store.ListByHostAsync(host, CancellationToken.None));

    public static InstancePosition? FindPosition(this InstanceStore store, string uuid) => Wait(() => store.FindPositionAsync(uuid, CancellationToken.None));

    public static Dictionary<string, HostUsage> UsageByHost(this InstanceStore store, IReadOnlyCollection<string>? hosts = null) =>
        Wait(() => store.UsageByHostAsync(hosts, CancellationToken.None));

    public static Dictionary<string, List<(int Id, string Uuid)>> ListIdsByHost(this InstanceStore store, IReadOnlyCollection<string> hosts) =>
        Wait(() => store.ListIdsByHostAsync(hosts, CancellationToken.None));

    public static List<Instance> ListInTaskStates(this InstanceStore store, IEnumerable<TaskState> states) =>
        Wait(() => store.ListInTaskStatesAsync(states, CancellationToken.None));

    public static List<Instance> ListBuildingCreatedBefore(this InstanceStore store, DateTimeOffset before) =>
        Wait(() => store.ListBuildingCreatedBeforeAsync(before, CancellationToken.None));

    public static Instance Update(this InstanceStore store, InstanceUpdateRequest update) => Wait(() => store.UpdateAsync(update, CancellationToken.None));
}
