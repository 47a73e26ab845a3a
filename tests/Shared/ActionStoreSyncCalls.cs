using Ferry.ControlPlane.Persistence;

// In the global namespace so that every test file sees these without a using.
/// <summary>The action store's calls in blocking form, for tests (see <c>InstanceStoreSyncCalls</c>).</summary>
internal static class ActionStoreSyncCalls
{
    private static T Wait<T>(Func<Task<T>> call) => Task.Run(call).GetAwaiter().GetResult();

    private static void Wait(Func<Task> call) => Task.Run(call).GetAwaiter().GetResult();

    public static void StartAction(this ActionStore store, string instanceUuid, string requestId, string action, string userId, string projectId) =>
        Wait(() => store.StartActionAsync(instanceUuid, requestId, action, userId, projectId, CancellationToken.None));

    public static void RecordEvent(this ActionStore store, string instanceUuid, string? requestId, string eventName, string host, bool finished, bool failed,
        string? details, string? traceback = null, string? eventKey = null, DateTimeOffset? startTime = null) =>
        Wait(() => store.RecordEventAsync(instanceUuid, requestId, eventName, host, finished, failed, details, traceback, eventKey, startTime, CancellationToken.None));

    public static List<InstanceActionRow> ListActions(this ActionStore store, string instanceUuid) =>
        Wait(() => store.ListActionsAsync(instanceUuid, CancellationToken.None));

    public static List<InstanceActionEventRow> ListEvents(this ActionStore store, long actionId) => Wait(() => store.ListEventsAsync(actionId, CancellationToken.None));

    public static void AddFault(this ActionStore store, string instanceUuid, int code, string message, string? host, string? details) =>
        Wait(() => store.AddFaultAsync(instanceUuid, code, message, host, details, CancellationToken.None));

    public static InstanceFaultRow? LatestFault(this ActionStore store, string instanceUuid) => Wait(() => store.LatestFaultAsync(instanceUuid, CancellationToken.None));

    public static Dictionary<string, InstanceFaultRow> LatestFaults(this ActionStore store, IReadOnlyCollection<string> instanceUuids) =>
        Wait(() => store.LatestFaultsAsync(instanceUuids, CancellationToken.None));
}
