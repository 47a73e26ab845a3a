using Ferry.ControlPlane.Persistence;

namespace Ferry.Host.Roles;

/// <summary>
/// The conductor's and scheduler's heartbeat: their own service rows, as Nova's report, so that `compute service list`
/// shows them (zone internal) and an operator sees when they stop.
/// </summary>
internal static class ControlServiceHeartbeat
{
    /// <summary>One heartbeat: done at start, before the role says it is ready, so `compute service list` shows it at once.</summary>
    public static void Report(ServiceStore services, string host, string binary, string topic) => services.Report(host, binary, topic, 1);

    /// <summary>A heartbeat every <paramref name="interval"/> until <paramref name="ct"/> is cancelled.</summary>
    public static async Task RunAsync(ServiceStore services, string host, string binary, string topic, TimeSpan interval, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(interval);
        while (await WaitAsync(timer, ct))
        {
            Report(services, host, binary, topic);
        }
    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken ct)
    {
        try
        {
            return await timer.WaitForNextTickAsync(ct);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}
