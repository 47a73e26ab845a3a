using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;

// In the global namespace so that every test file sees these without a using.
/// <summary>The compute node store's calls in blocking form, for tests and the benchmarks' seeding (see <c>InstanceStoreSyncCalls</c>).</summary>
internal static class ComputeNodeStoreSyncCalls
{
    private static T Wait<T>(Func<Task<T>> call) => Task.Run(call).GetAwaiter().GetResult();

    public static List<(ComputeNode Node, long Seq)> ListChangedSince(this ComputeNodeStore store, long afterSeq, Func<int, long, bool>? isNew = null) =>
        Wait(() => store.ListChangedSinceAsync(afterSeq, CancellationToken.None, isNew));

    public static ComputeNode Upsert(this ComputeNodeStore store, ComputeNode node) => Wait(() => store.UpsertAsync(node, CancellationToken.None));

    public static List<ComputeNode> List(this ComputeNodeStore store) => Wait(() => store.ListAsync(CancellationToken.None));

    public static List<ComputeNode> ListPage(this ComputeNodeStore store, int? afterId, int? limit) =>
        Wait(() => store.ListPageAsync(afterId, limit, CancellationToken.None));

    public static ComputeNode? FindById(this ComputeNodeStore store, int id) => Wait(() => store.FindByIdAsync(id, CancellationToken.None));

    public static ComputeNode? FindByHost(this ComputeNodeStore store, string host) => Wait(() => store.FindByHostAsync(host, CancellationToken.None));

    public static ComputeNode? FindByUuid(this ComputeNodeStore store, string uuid) => Wait(() => store.FindByUuidAsync(uuid, CancellationToken.None));

    public static void Delete(this ComputeNodeStore store, string host) => Task.Run(() => store.DeleteAsync(host, CancellationToken.None)).GetAwaiter().GetResult();
}
