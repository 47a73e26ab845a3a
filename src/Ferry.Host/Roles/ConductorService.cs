using Ferry.ControlPlane.Conductor;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Rpc;
using Microsoft.Extensions.Hosting;

namespace Ferry.Host.Roles;

/// <summary>The conductor role's listener on the <c>conductor</c> topic, and its heartbeat while it runs.</summary>
internal sealed class ConductorService(IRpcTransport transport, ComputeTaskManager manager, ServiceStore services, FerryHostOptions options) : BackgroundService
{
    private IAsyncDisposable? _listener;

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        _listener = transport.Listen(Topics.Conductor, manager.CreateRpcServer());
        ControlServiceHeartbeat.Report(services, options.ControllerHost, "nova-conductor", Topics.Conductor);
        return base.StartAsync(cancellationToken);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        ControlServiceHeartbeat.RunAsync(services, options.ControllerHost, "nova-conductor", Topics.Conductor, options.ReportInterval, stoppingToken);

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (_listener is not null)
        {
            await _listener.DisposeAsync();
        }
    }
}
