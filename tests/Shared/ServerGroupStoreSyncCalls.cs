using Ferry.ControlPlane.Persistence;

// In the global namespace so that every test file sees these without a using.
/// <summary>The server group store's calls in blocking form, for tests (see <c>InstanceStoreSyncCalls</c>).</summary>
internal static class ServerGroupStoreSyncCalls
{
    private static T Wait<T>(Func<Task<T>> call) => Task.Run(call).GetAwaiter().GetResult();

    private static void Wait(Func<Task> call) => Task.Run(call).GetAwaiter().GetResult();

    public static ServerGroupRow Create(this ServerGroupStore store, string name, string policy, int? maxServerPerHost, string projectId, string userId) =>
        Wait(() => store.CreateAsync(name, policy, maxServerPerHost, projectId, userId, CancellationToken.None));

    public static ServerGroupRow? Find(this ServerGroupStore store, string uuid) => Wait(() => store.FindAsync(uuid, CancellationToken.None));

    public static List<ServerGroupRow> List(this ServerGroupStore store, string? projectId) => Wait(() => store.ListAsync(projectId, CancellationToken.None));

    public static void AddMember(this ServerGroupStore store, string groupUuid, string instanceUuid) =>
        Wait(() => store.AddMemberAsync(groupUuid, instanceUuid, CancellationToken.None));

    public static void RemoveMember(this ServerGroupStore store, string groupUuid, string instanceUuid) =>
        Wait(() => store.RemoveMemberAsync(groupUuid, instanceUuid, CancellationToken.None));

    public static void Delete(this ServerGroupStore store, string uuid) => Wait(() => store.DeleteAsync(uuid, CancellationToken.None));
}
