using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Core.Rpc.Conductor;

// In the global namespace so that every test file sees these without a using.
/// <summary>The migration store's calls in blocking form, for tests (see <c>InstanceStoreSyncCalls</c>).</summary>
internal static class MigrationStoreSyncCalls
{
    private static T Wait<T>(Func<Task<T>> call) => Task.Run(call).GetAwaiter().GetResult();

    public static Migration Create(this MigrationStore store, Func<int, Migration> build) => Wait(() => store.CreateAsync(build, CancellationToken.None));

    public static Migration? Find(this MigrationStore store, string uuid) => Wait(() => store.FindAsync(uuid, CancellationToken.None));

    public static Migration? FindById(this MigrationStore store, int id) => Wait(() => store.FindByIdAsync(id, CancellationToken.None));

    public static Migration Get(this MigrationStore store, string uuid) => Wait(() => store.GetAsync(uuid, CancellationToken.None));

    public static List<Migration> List(this MigrationStore store, MigrationFilter filter) => Wait(() => store.ListAsync(filter, CancellationToken.None));

    public static List<Migration> ListUnfinished(this MigrationStore store) => Wait(() => store.ListUnfinishedAsync(CancellationToken.None));

    public static Migration Update(this MigrationStore store, MigrationUpdateRequest update) => Wait(() => store.UpdateAsync(update, CancellationToken.None));
}
