using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;

// In the global namespace so that every test file sees these without a using.
/// <summary>The service store's calls in blocking form, for tests and the benchmarks' seeding (see <c>InstanceStoreSyncCalls</c>).</summary>
internal static class ServiceStoreSyncCalls
{
    private static T Wait<T>(Func<Task<T>> call) => Task.Run(call).GetAwaiter().GetResult();

    public static Service Report(this ServiceStore store, string host, string binary, string topic, int version) =>
        Wait(() => store.ReportAsync(host, binary, topic, version, CancellationToken.None));

    public static List<string> MarkComputesDownExcept(this ServiceStore store, IReadOnlyCollection<string> runningHosts) =>
        Wait(() => store.MarkComputesDownExceptAsync(runningHosts, CancellationToken.None));

    public static List<Service> List(this ServiceStore store, string? host = null, string? binary = null) =>
        Wait(() => store.ListAsync(CancellationToken.None, host, binary));

    public static Dictionary<string, Service> FindByHosts(this ServiceStore store, IReadOnlyCollection<string> hosts, string binary) =>
        Wait(() => store.FindByHostsAsync(hosts, binary, CancellationToken.None));

    public static Service? FindByUuid(this ServiceStore store, string uuid) => Wait(() => store.FindByUuidAsync(uuid, CancellationToken.None));

    public static Service? FindById(this ServiceStore store, int id) => Wait(() => store.FindByIdAsync(id, CancellationToken.None));

    public static Service? Find(this ServiceStore store, string host, string binary) => Wait(() => store.FindAsync(host, binary, CancellationToken.None));

    public static Service Update(this ServiceStore store, int id, Func<Service, Service> change) =>
        Wait(() => store.UpdateAsync(id, change, CancellationToken.None));

    public static void Delete(this ServiceStore store, int id) => Task.Run(() => store.DeleteAsync(id, CancellationToken.None)).GetAwaiter().GetResult();
}
