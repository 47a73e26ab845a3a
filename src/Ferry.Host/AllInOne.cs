using System.Collections.Concurrent;
using Ferry.Compute;
using Ferry.ControlPlane;
using Ferry.ControlPlane.Api;
using Ferry.ControlPlane.Conductor;
using Ferry.ControlPlane.Identity;
using Ferry.ControlPlane.Images;
using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Ferry.ControlPlane.Scheduler;
using Ferry.Core.Identity;
using Ferry.Core.Images;
using Ferry.Core.Placement;
using Ferry.Core.Rpc;
using Ferry.Core.Rpc.Compute;
using Ferry.Core.Rpc.Conductor;
using Ferry.Core.Rpc.Scheduler;
using Ferry.Host.Logging;
using Ferry.Virt;
using Ferry.Virt.Fake;
using Ferry.Virt.Qemu;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace Ferry.Host;

/// <summary>
/// The all-in-one composition: API and placement on Kestrel, conductor and scheduler on the bus,
/// and N compute agents with fake drivers, all in one process. The only place that picks concrete
/// infrastructure (SQLite file, in-process transport, fake driver).
/// </summary>
public sealed class AllInOne : IAsyncDisposable
{
    private readonly List<IAsyncDisposable> _listeners = [];
    private readonly ConcurrentDictionary<string, FakeHypervisorState> _hypervisors = new();
    private readonly HttpClient _identityHttp = new();
    private readonly CancellationTokenSource _stopping = new();
    private Task _controlServices = Task.CompletedTask;

    private AllInOne(FerryHostOptions options, WebApplication app)
    {
        Options = options;
        App = app;
    }

    public FerryHostOptions Options { get; }
    public WebApplication App { get; }
    /// <summary>Running (or stopped) compute agents by host; agents start concurrently, hence concurrent.</summary>
    public ConcurrentDictionary<string, ComputeManager> Computes { get; } = new();

    /// <summary>Each host's virt driver (the last one started for the host).</summary>
    public ConcurrentDictionary<string, IComputeDriver> Drivers { get; } = new();

    /// <summary>Adjusts each fake host's driver before it starts (CPU features, bandwidth…).</summary>
    public Action<FakeDriverOptions>? ConfigureDriver { get; set; }

    /// <summary>Adjusts each QEMU host's driver before it starts.</summary>
    public Action<QemuDriverOptions>? ConfigureQemuDriver { get; set; }

    /// <summary>Adjusts each compute agent's options before it starts (live-migration policy…).</summary>
    public Action<ComputeOptions>? ConfigureCompute { get; set; }

    public IServiceProvider Services => App.Services;

    /// <summary>The agents' service credentials for placement (keystone mode); null: the admin user and project.</summary>
    public KeystoneCredentials? PlacementCredentials { get; set; }

    /// <summary>The agents' Keystone session (keystone mode, once started); null under noauth2.</summary>
    public KeystoneSession? PlacementSession { get; private set; }

    public static AllInOne Build(FerryHostOptions options, Action<ILoggingBuilder>? logging = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        var listeners = ListenSockets.Bind(options);
        builder.WebHost.ConfigureKestrel(kestrel => listeners.Configure(kestrel));
        builder.Logging.ClearProviders();
        if (logging is null)
        {
            builder.Logging.AddFerryLogging(options.LogLevel, options.LogFilePath, Console.Out);
        }
        else
        {
            logging(builder.Logging);
        }
        var services = builder.Services;
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton(_ =>
        {
            var db = new FerryDatabase(options.DatabasePath);
            db.Migrate(ComputeSchema.Component, ComputeSchema.Scripts);
            return db;
        });
        services.AddSingleton(new ControlPlaneOptions { ServiceDownTime = options.ServiceDownTime, ImageApiUrl = options.ImageUrl });
        services.AddSingleton(new RpcOptions());
        services.AddSingleton<IRpcTransport, InProcessTransport>();
        services.AddFerryStores();
        services.AddSingleton(new ImageServiceOptions(Path.GetFullPath(Path.Combine(options.DataDirectory, "images"))) { ImageSizeCap = options.ImageSizeCap });
        services.AddSingleton<ConductorClient>();
        services.AddSingleton<SchedulerClient>();
        services.AddSingleton<ComputeClient>();
        services.AddFerryPlacement();
        services.AddSingleton<IHostStateSource, DatabaseHostStateSource>();
        services.AddFerryScheduler(s => s.ServiceDownTime = options.ServiceDownTime);
        services.AddSingleton<ConductorContext>();
        services.AddSingleton<ComputeTaskManager>();
        services.AddSingleton<BuildTimeoutCheck>();
        services.AddHostedService(sp => sp.GetRequiredService<BuildTimeoutCheck>());
        if (options.UsesKeystone)
        {
            services.AddFerryIdentity(IdentityOptionsOf(options));
        }
        services.AddFerryComputeApi();

        services.AddLocalPortRouting();

        var app = builder.Build();
        app.MapGroup("").RequireLocalPort(options.ComputeApiPort).MapFerryComputeApi();
        var placement = app.MapGroup("").RequireLocalPort(options.PlacementPort);
        placement.AddEndpointFilter(PlacementAuthFilter.InvokeAsync);
        if (options.UsesKeystone)
        {
            app.MapGroup("").RequireLocalPort(options.IdentityPort).MapIdentityApi();
        }
        placement.MapPlacementApi();
        app.MapGroup("").RequireLocalPort(options.ImagePort).MapImageApi();
        app.MapHealthcheck(Healthcheck.DisableFilePath(options.DataDirectory)); // every API port, before any authentication
        return new AllInOne(options, app);
    }

    /// <summary>The identity service's settings: its file under the data directory, and a catalog of this host's APIs.</summary>
    public static IdentityOptions IdentityOptionsOf(FerryHostOptions options) => new()
    {
        ConfigPath = options.IdentityConfigPath,
        TokenLifetime = options.TokenLifetime,
        LockoutFailureAttempts = options.LockoutFailureAttempts,
        LockoutDuration = options.LockoutDuration,
        Catalog =
        [
            new CatalogService("compute", "nova", $"{options.ComputeApiUrl}/v2.1"),
            new CatalogService("placement", "placement", options.PlacementUrl),
            new CatalogService("identity", "keystone", $"{options.IdentityUrl}/v3"),
            new CatalogService("image", "glance", options.ImageUrl),
        ],
    };

    /// <summary>Starts the APIs, the conductor and scheduler, then every compute agent.</summary>
    public async Task StartAsync(CancellationToken ct)
    {
        var services = App.Services;
        if (Options.Seed)
        {
            Seed.Apply(services.GetRequiredService<CatalogStore>(), services.GetRequiredService<TimeProvider>());
        }
        services.StartFerryPlacement();
        if (Options.UsesKeystone)
        {
            // The agents log in to the identity API with Nova's [placement] service credentials (here the admin
            // user) and find placement in the token's catalog; one session serves every agent of this process.
            PlacementSession = new KeystoneSession(_identityHttp, PlacementCredentials ?? new KeystoneCredentials
            {
                AuthUrl = new Uri(Options.IdentityUrl + "/v3"),
                Username = "admin",
                Password = services.GetRequiredService<IdentityOptions>().AdminPassword,
                ProjectName = "admin",
            }, services.GetRequiredService<TimeProvider>());
        }
        await App.StartAsync(ct);
        var transport = services.GetRequiredService<IRpcTransport>();
        _listeners.Add(transport.Listen(Topics.Conductor, services.GetRequiredService<ComputeTaskManager>().CreateRpcServer()));
        var scheduler = services.GetRequiredService<SchedulerManager>();
        _listeners.Add(transport.Listen(Topics.Scheduler, new RpcServer()
            .On<SelectDestinationsRequest, SelectDestinationsReply>("select_destinations", (r, _) =>
                Task.FromResult(new SelectDestinationsReply([.. scheduler.SelectDestinations(r.RequestSpec, r.NumAlternates)])))));
        _controlServices = ReportControlServicesAsync(_stopping.Token);
        // Compute hosts of an earlier run (more --hosts, another driver) are down from the first second.
        services.GetRequiredService<ServiceStore>().MarkComputesDownExcept([.. Enumerable.Range(1, Options.Hosts).Select(i => $"compute{i}")]);
        await Task.WhenAll(Enumerable.Range(1, Options.Hosts).Select(i => StartComputeAsync($"compute{i}", ct)));
    }

    /// <summary>
    /// The conductor and scheduler heartbeat their own service rows, as Nova's do, so `compute service list`
    /// shows them (zone internal) and an operator sees when they stop.
    /// </summary>
    private async Task ReportControlServicesAsync(CancellationToken ct)
    {
        var services = App.Services.GetRequiredService<ServiceStore>();
        using var timer = new PeriodicTimer(Options.ReportInterval);
        do
        {
            services.Report(Options.ControllerHost, "nova-conductor", Topics.Conductor, 1);
            services.Report(Options.ControllerHost, "nova-scheduler", Topics.Scheduler, 1);
        }
        while (await WaitAsync(timer, ct));
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

    /// <summary>Starts (or restarts) one compute agent; a restarted agent finds the guests its host kept.</summary>
    public async Task<ComputeManager> StartComputeAsync(string host, CancellationToken ct, Action<ComputeOptions>? configure = null)
    {
        if (Computes.TryGetValue(host, out var running))
        {
            await running.StopAsync();
        }
        var services = App.Services;
        if (Drivers.TryRemove(host, out var previous) && previous is IAsyncDisposable disposable)
        {
            await disposable.DisposeAsync(); // QMP connections only, unless guests die with their agent (KillGuestsOnStop)
        }
        var computeOptions = new ComputeOptions
        {
            Host = host,
            MyIp = Options.ListenAddress,
            ReportInterval = Options.ReportInterval,
            MaxConcurrentLiveMigrations = Options.MaxConcurrentLiveMigrations,
            // With credentials the endpoints come from the token's catalog, as in a Nova deployment.
            PlacementUrl = PlacementSession is null ? new Uri(Options.PlacementUrl + "/") : null,
            ImageUrl = PlacementSession is null ? new Uri(Options.ImageUrl + "/") : null,
            ServiceCredentials = PlacementSession?.Credentials,
            LiveMigrationBandwidthMiBps = Options.LiveMigrationBandwidthMiBps,
            LiveMigrationPermitPostCopy = Options.LiveMigrationPermitPostCopy,
            LiveMigrationPermitAutoConverge = Options.LiveMigrationPermitAutoConverge,
            LiveMigrationTimeoutAction = Options.LiveMigrationTimeoutAction,
            LiveMigrationCompletionTimeoutSecondsPerGiB = Options.LiveMigrationCompletionTimeoutSecondsPerGiB,
            LiveMigrationPostCopyRecoveryAttempts = Options.LiveMigrationPostCopyRecoveryAttempts,
            LiveMigrationPostCopyStallSeconds = Options.LiveMigrationPostCopyStallSeconds,
            LiveMigrationParallelConnections = Options.LiveMigrationParallelConnections,
        };
        ConfigureCompute?.Invoke(computeOptions);
        configure?.Invoke(computeOptions);
        // Every agent of this process shares the one login, unless it was given credentials of its own.
        var clients = ServiceClients.Create(computeOptions, _identityHttp, services.GetRequiredService<TimeProvider>(),
            computeOptions.ServiceCredentials is { } own && own == PlacementSession?.Credentials ? PlacementSession : null);
        // The driver binds what the agent advertises: its my_ip and live_migration_inbound_addr.
        IComputeDriver driver = Options.Driver == "qemu" ? CreateQemuDriver(host, computeOptions, clients.Images) : CreateFakeDriver(host, computeOptions);
        Drivers[host] = driver;
        var compute = new ComputeManager(computeOptions, driver, services.GetRequiredService<IRpcTransport>(), services.GetRequiredService<RpcOptions>(),
            clients.Placement, services.GetRequiredService<TimeProvider>(), services.GetRequiredService<ILoggerFactory>());
        await compute.StartAsync(ct);
        Computes[host] = compute;
        return compute;
    }

    private string InstancesPath(string host) =>
        Path.GetFullPath(Path.Combine(Options.DataDirectory, "instances", Options.SharedStorage ? "shared" : host));

    private FakeDriver CreateFakeDriver(string host, ComputeOptions compute)
    {
        var services = App.Services;
        var driverOptions = new FakeDriverOptions
        {
            HostName = host,
            MigrationAddress = compute.InboundAddress,
            HostAddress = compute.MyIp,
            InstancesPath = InstancesPath(host),
            TimeScale = Options.FakeTimeScale,
            LinkBandwidthMiBps = Options.FakeBandwidthMiBps,
        };
        ConfigureDriver?.Invoke(driverOptions);
        var hypervisor = _hypervisors.GetOrAdd(host, _ => new FakeHypervisorState());
        return new FakeDriver(driverOptions, hypervisor, services.GetRequiredService<TimeProvider>(), services.GetRequiredService<ILoggerFactory>().CreateLogger<FakeDriver>());
    }

    /// <summary>Hosts share this machine: each has its own instances directory (or all one, for shared storage) and image cache.</summary>
    private QemuDriver CreateQemuDriver(string host, ComputeOptions compute, IImageService images)
    {
        var driverOptions = new QemuDriverOptions
        {
            HostName = host,
            InstancesPath = InstancesPath(host),
            TestGuestImageRefs = [Seed.TestImageId, QemuTestGuest.DefaultImageRef],
            TestGuestKernelPath = Path.GetFullPath(Options.TestGuestKernelPath),
            MigrationAddress = compute.InboundAddress,
            HostAddress = compute.MyIp,
            KillGuestsOnDispose = Options.KillGuestsOnStop,
        };
        ConfigureQemuDriver?.Invoke(driverOptions);
        // Images reach the host through the image API with the agent's token, never the controller's directory.
        return new QemuDriver(driverOptions, App.Services.GetRequiredService<ILoggerFactory>().CreateLogger<QemuDriver>(), images);
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        await _controlServices;
        _stopping.Dispose();
        foreach (var compute in Computes.Values)
        {
            await compute.DisposeAsync();
        }
        foreach (var driver in Drivers.Values.OfType<IAsyncDisposable>())
        {
            await driver.DisposeAsync();
        }
        foreach (var listener in _listeners)
        {
            await listener.DisposeAsync();
        }
        await App.StopAsync();
        await App.DisposeAsync();
        _identityHttp.Dispose();
    }
}
