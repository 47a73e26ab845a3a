using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Scheduler;
using Ferry.Core.Rpc;
using Ferry.Core.Rpc.Scheduler;
using Microsoft.Extensions.Hosting;

namespace Ferry.Host.Roles;

/// <summary>The scheduler role's listener on the <c>scheduler</c> topic, and its heartbeat while it runs.</summary>
internal sealed class SchedulerService(IRpcTransport transport, SchedulerManager scheduler, ServiceStore services, FerryHostOptions options) : BackgroundService
{
    private IAsyncDisposable? _listener;

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        _listener = transport.Listen(Topics.Scheduler, new RpcServer()
            .On<SelectDestinationsRequest, SelectDestinationsReply>("select_destinations", (r, _) =>
                Task.FromResult(new SelectDestinationsReply([.. scheduler.SelectDestinations(r.RequestSpec, r.NumAlternates)]))));
        ControlServiceHeartbeat.Report(services, options.ControllerHost, "nova-scheduler", Topics.Scheduler);
        return base.StartAsync(cancellationToken);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        ControlServiceHeartbeat.RunAsync(services, options.ControllerHost, "nova-scheduler", Topics.Scheduler, options.ReportInterval, stoppingToken);

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (_listener is not null)
        {
            await _listener.DisposeAsync();
        }
    }
}
