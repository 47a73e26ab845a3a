using Ferry.ControlPlane.Persistence;
using Ferry.Core.Rpc;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Ferry.Host.Roles;

/// <summary>
/// A control-plane role's listener on its topic (<c>conductor</c>, <c>scheduler</c>; replicas share the topic's queue)
/// and its service row's heartbeat while it runs.
/// </summary>
internal sealed class ControlService(IRpcTransport transport, string topic, string binary, Func<IRpcDispatcher> dispatcher, ServiceStore services,
    FerryHostOptions options, ILogger<ControlService> logger) : BackgroundService
{
    private IAsyncDisposable? _listener;

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        _listener = transport.Listen(topic, dispatcher());
        await ControlServiceHeartbeat.ReportAsync(services, options.ControllerHost, binary, topic, cancellationToken);
        await base.StartAsync(cancellationToken);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        ControlServiceHeartbeat.RunAsync(services, options.ControllerHost, binary, topic, options.ReportInterval, logger, stoppingToken);

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (_listener is not null)
        {
            await _listener.DisposeAsync();
        }
    }
}

/// <summary>
/// The conductor's and scheduler's heartbeat: their own service rows, as Nova's report, so that `compute service list`
/// shows them (zone internal) and an operator sees when they stop.
/// </summary>
internal static partial class ControlServiceHeartbeat
{
    /// <summary>One heartbeat: done at start, before the role says it is ready, so `compute service list` shows it at once.</summary>
    public static Task ReportAsync(ServiceStore services, string host, string binary, string topic, CancellationToken ct) =>
        services.ReportAsync(host, binary, topic, 1, ct);

    /// <summary>
    /// A heartbeat every <paramref name="interval"/> until <paramref name="ct"/> is cancelled. A heartbeat the database
    /// cannot take (an outage longer than its wait) is skipped, not fatal: the role keeps serving and reports again once
    /// the database is back (an exception here would stop the whole process).
    /// </summary>
    public static async Task RunAsync(ServiceStore services, string host, string binary, string topic, TimeSpan interval, ILogger logger, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(interval);
        while (await WaitAsync(timer, ct))
        {
            try
            {
                await ReportAsync(services, host, binary, topic, ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return; // stopping while a heartbeat waited for the database
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                Log.HeartbeatFailed(logger, ex, binary, host);
            }
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

    private static partial class Log
    {
        [LoggerMessage(EventId = 131, Level = LogLevel.Warning, Message = "Heartbeat of {Binary} on {Host} failed; the next one is tried at its time")]
        public static partial void HeartbeatFailed(ILogger logger, Exception ex, string binary, string host);
    }
}
