using Ferry.ControlPlane.Scheduler;
using Ferry.Core.Domain;

// In the global namespace so that every test file sees these without a using.
/// <summary>select_destinations in blocking form, as the scheduler's tests were written (see <c>InstanceStoreSyncCalls</c>).</summary>
internal static class SchedulerSyncCalls
{
    public static IReadOnlyList<Selection> SelectDestinations(this SchedulerManager scheduler, RequestSpec spec, int numAlternates) =>
        Task.Run(() => scheduler.SelectDestinationsAsync(spec, numAlternates, CancellationToken.None)).GetAwaiter().GetResult();

    /// <summary>Loads the source's host facts, as a request does before it filters.</summary>
    public static void Refresh(this IHostStateSource source) => Task.Run(() => source.RefreshAsync(CancellationToken.None).AsTask()).GetAwaiter().GetResult();
}
