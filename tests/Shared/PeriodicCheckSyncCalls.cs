using Ferry.ControlPlane.Conductor;

// In the global namespace so that every test file sees these without a using.
/// <summary>One pass of a conductor check, blocking, as the flow tests drive it (see <c>InstanceStoreSyncCalls</c>).</summary>
internal static class PeriodicCheckSyncCalls
{
    public static List<string> Run(this LostMoveCheck check) => Task.Run(() => check.RunAsync(CancellationToken.None)).GetAwaiter().GetResult();

    public static List<string> Run(this BuildTimeoutCheck check) => Task.Run(() => check.RunAsync(CancellationToken.None)).GetAwaiter().GetResult();
}
