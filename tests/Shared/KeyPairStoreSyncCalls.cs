using Ferry.ControlPlane.Persistence;

// In the global namespace so that every test file sees these without a using.
/// <summary>The key pair store's calls in blocking form, for tests (see <c>InstanceStoreSyncCalls</c>).</summary>
internal static class KeyPairStoreSyncCalls
{
    private static T Wait<T>(Func<Task<T>> call) => Task.Run(call).GetAwaiter().GetResult();

    private static void Wait(Func<Task> call) => Task.Run(call).GetAwaiter().GetResult();

    public static KeyPairRow Create(this KeyPairStore store, string userId, string name, string type, string fingerprint, string publicKey) =>
        Wait(() => store.CreateAsync(userId, name, type, fingerprint, publicKey, CancellationToken.None));

    public static KeyPairRow? Find(this KeyPairStore store, string userId, string name) => Wait(() => store.FindAsync(userId, name, CancellationToken.None));

    public static List<KeyPairRow> List(this KeyPairStore store, string userId, int? limit = null, string? marker = null) =>
        Wait(() => store.ListAsync(userId, limit, marker, CancellationToken.None));

    public static int Count(this KeyPairStore store, string userId) => Wait(() => store.CountAsync(userId, CancellationToken.None));

    public static void Delete(this KeyPairStore store, string userId, string name) => Wait(() => store.DeleteAsync(userId, name, CancellationToken.None));
}
