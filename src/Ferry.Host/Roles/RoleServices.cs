using Ferry.ControlPlane;
using Ferry.ControlPlane.Api;
using Ferry.ControlPlane.Conductor;
using Ferry.ControlPlane.Identity;
using Ferry.ControlPlane.Images;
using Ferry.ControlPlane.Networking;
using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Ferry.ControlPlane.Scheduler;
using Ferry.ControlPlane.Volumes;
using Ferry.Core.Rpc;
using Ferry.Core.Rpc.Compute;
using Ferry.Core.Rpc.Conductor;
using Ferry.Core.Rpc.Scheduler;
using Ferry.Core.Volumes;
using Ferry.Host.Observability;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Ferry.Host.Roles;

/// <summary>
/// The services of each role, registered so that roles combine in one container (the all-in-one) or stand alone in
/// their own host. Shared infrastructure comes from one <see cref="FerryInfrastructure"/> per process.
/// </summary>
internal static class RoleServices
{
    /// <summary>What every role needs: the clock, the bus and its timeouts.</summary>
    public static IServiceCollection AddFerryBus(this IServiceCollection services, FerryInfrastructure infrastructure)
    {
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton(new RpcOptions());
        services.AddSingleton<IRpcTransport>(sp => infrastructure.TransportFor(sp.GetRequiredService<ILoggerFactory>()));
        // Registered before every other hosted service, so the broker is connected before anything listens or calls.
        services.AddHostedService<TransportConnection>();
        return services;
    }

    /// <summary>What the control-plane roles (api, conductor, scheduler) share: the database, its stores, placement, the RPC clients.</summary>
    public static IServiceCollection AddFerryControlPlane(this IServiceCollection services, FerryHostOptions options, FerryInfrastructure infrastructure)
    {
        // Instances, not factories: the infrastructure, not a role's container, closes them.
        services.AddSingleton(infrastructure.Database);
        services.AddSingleton(infrastructure.Placement);
        services.AddSingleton<IPlacementService>(infrastructure.Placement);
        services.AddSingleton(new ControlPlaneOptions { ServiceDownTime = options.ServiceDownTime, ImageApiUrl = options.ImageUrl, MaxLimit = options.MaxLimit });
        services.AddFerryStores();
        services.AddSingleton(new ImageServiceOptions(Path.GetFullPath(Path.Combine(options.DataDirectory, "images"))) { ImageSizeCap = options.ImageSizeCap });
        services.AddSingleton<ConductorClient>();
        services.AddSingleton<SchedulerClient>();
        services.AddSingleton<ComputeClient>();
        services.AddFerryPlacement();
        return services;
    }

    /// <summary>The conductor role: its RPC server, the build timeout check and its heartbeat.</summary>
    public static IServiceCollection AddFerryConductorRole(this IServiceCollection services, FerryHostOptions options)
    {
        services.AddSingleton<ConductorContext>();
        services.AddSingleton<ComputeTaskManager>();
        services.AddSingleton<BuildTimeoutCheck>();
        services.AddSingleton<LostMoveCheck>();
        // AddSingleton, not AddHostedService: that registers one service per implementation type, and the all-in-one
        // holds two ControlServices (conductor and scheduler).
        services.AddSingleton<IHostedService>(sp => new ControlService(sp.GetRequiredService<IRpcTransport>(), Topics.Conductor, "nova-conductor",
            sp.GetRequiredService<ComputeTaskManager>().CreateRpcServer, sp.GetRequiredService<ServiceStore>(), options,
            sp.GetRequiredService<ILogger<ControlService>>()));
        services.AddHostedService(sp => sp.GetRequiredService<BuildTimeoutCheck>());
        services.AddHostedService(sp => sp.GetRequiredService<LostMoveCheck>());
        return services;
    }

    /// <summary>The scheduler role: its RPC server and its heartbeat.</summary>
    public static IServiceCollection AddFerrySchedulerRole(this IServiceCollection services, FerryHostOptions options)
    {
        services.AddSingleton<IHostStateSource, DatabaseHostStateSource>();
        services.AddFerryScheduler(s => s.ServiceDownTime = options.ServiceDownTime);
        services.AddSingleton<IHostedService>(sp =>
        {
            var scheduler = sp.GetRequiredService<SchedulerManager>();
            return new ControlService(sp.GetRequiredService<IRpcTransport>(), Topics.Scheduler, "nova-scheduler", () => new RpcServer()
                .On<SelectDestinationsRequest, SelectDestinationsReply>("select_destinations", async (r, ct) =>
                    new SelectDestinationsReply([.. await scheduler.SelectDestinationsAsync(r.RequestSpec, r.NumAlternates, ct)])),
                sp.GetRequiredService<ServiceStore>(), options, sp.GetRequiredService<ILogger<ControlService>>());
        });
        return services;
    }

    /// <summary>The api role's services: identity (keystone auth), the compute API, per-port routing, and its start-up work.</summary>
    /// <param name="metricsRole">The role its metrics name (service_name ferry-&lt;role&gt;): api, or all-in-one.</param>
    public static IServiceCollection AddFerryApiRole(this IServiceCollection services, FerryHostOptions options, string metricsRole = "api")
    {
        if (options.UsesKeystone)
        {
            // The compute and placement APIs check tokens with the identity service even where its API is not served.
            services.AddFerryIdentity(AllInOne.IdentityOptionsOf(options));
        }
        services.AddFerryComputeApi();
        // Replicas share the data directory, as images do, and with it the one storage daemon (the first to start it).
        services.TryAddSingleton<IVolumeBackend>(sp => VolumeBackends.Create(options, sp.GetRequiredService<ILoggerFactory>()));
        services.AddLocalPortRouting();
        if (options.Metrics)
        {
            services.AddFerryMetrics(new FerryMetricsOptions { Role = metricsRole });
        }
        services.AddHostedService(sp => new ApiStartup(sp, options));
        return services;
    }

    /// <summary>Maps each API the options serve on its own port, and the healthcheck on every one.</summary>
    public static void MapFerryApiRole(this WebApplication app, FerryHostOptions options)
    {
        if (options.Metrics)
        {
            app.MapFerryMetrics(options.ServiceByPort()); // every API port, no token (as /healthcheck)
        }
        if (options.Serves("compute"))
        {
            app.MapGroup("").RequireLocalPort(options.ComputeApiPort).MapFerryComputeApi();
        }
        if (options.Serves("placement"))
        {
            var placement = app.MapGroup("").RequireLocalPort(options.PlacementPort);
            placement.AddEndpointFilter(PlacementAuthFilter.InvokeAsync);
            placement.MapPlacementApi();
        }
        if (options.UsesKeystone && options.Serves("identity"))
        {
            app.MapGroup("").RequireLocalPort(options.IdentityPort).MapIdentityApi();
        }
        if (options.Serves("image"))
        {
            app.MapGroup("").RequireLocalPort(options.ImagePort).MapImageApi();
        }
        if (options.Serves("network"))
        {
            app.MapGroup("").RequireLocalPort(options.NetworkPort).MapNetworkApi();
        }
        if (options.Serves("volume"))
        {
            app.MapGroup("").RequireLocalPort(options.VolumePort).MapVolumeApi();
        }
        app.MapHealthcheck(Healthcheck.DisableFilePath(options.DataDirectory)); // every API port, before any authentication
    }
}

/// <summary>Connects a broker transport when its host starts: a broker that cannot be reached fails the start in one line.</summary>
internal sealed class TransportConnection(IRpcTransport transport) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) =>
        transport is Messaging.RabbitMqTransport rabbitMq ? rabbitMq.StartAsync(cancellationToken) : Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
