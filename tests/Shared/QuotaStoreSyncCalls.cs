using Ferry.ControlPlane.Persistence;

// In the global namespace so that every test file sees these without a using.
/// <summary>The quota store's calls in blocking form, for tests (see <c>InstanceStoreSyncCalls</c>).</summary>
internal static class QuotaStoreSyncCalls
{
    private static T Wait<T>(Func<Task<T>> call) => Task.Run(call).GetAwaiter().GetResult();

    private static void Wait(Func<Task> call) => Task.Run(call).GetAwaiter().GetResult();

    public static Dictionary<string, long> Limits(this QuotaStore store, string projectId, string? userId = null) =>
        Wait(() => store.LimitsAsync(projectId, userId, CancellationToken.None));

    public static Dictionary<string, List<long>> UserLimits(this QuotaStore store, string projectId) =>
        Wait(() => store.UserLimitsAsync(projectId, CancellationToken.None));

    public static void SetLimits(this QuotaStore store, string projectId, string? userId, IReadOnlyDictionary<string, long> limits) =>
        Wait(() => store.SetLimitsAsync(projectId, userId, limits, CancellationToken.None));

    public static void DeleteLimits(this QuotaStore store, string projectId, string? userId = null) =>
        Wait(() => store.DeleteLimitsAsync(projectId, userId, CancellationToken.None));

    public static Dictionary<string, long> ClassLimits(this QuotaStore store, string className) =>
        Wait(() => store.ClassLimitsAsync(className, CancellationToken.None));

    public static void SetClassLimits(this QuotaStore store, string className, IReadOnlyDictionary<string, long> limits) =>
        Wait(() => store.SetClassLimitsAsync(className, limits, CancellationToken.None));
}
