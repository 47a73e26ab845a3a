using System.Collections.Concurrent;
using Ferry.Compute;
using Ferry.ControlPlane.Identity;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Identity;
using Ferry.Core.Rpc;
using Ferry.Core.Volumes;
using Ferry.Host.Roles;
using Ferry.Virt;
using Ferry.Virt.Fake;
using Ferry.Virt.Qemu;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Ferry.Host;

/// <summary>
/// The all-in-one (`./ferry up`, <c>ferry all-in-one</c>): every role in one process. The api, conductor and scheduler
/// roles share one generic host (a <see cref="WebApplication"/>), on the in-process bus and the SQLite file of one
/// <see cref="FerryInfrastructure"/>, and N compute agents (<see cref="ComputeAgents"/>) run beside them.
/// </summary>
public sealed class AllInOne : IAsyncDisposable
{
    private readonly FerryInfrastructure _infrastructure;
    private readonly ComputeAgents _agents;

    private AllInOne(FerryHostOptions options, WebApplication app, FerryInfrastructure infrastructure)
    {
        Options = options;
        App = app;
        _infrastructure = infrastructure;
        _agents = new ComputeAgents(options, app.Services.GetRequiredService<IRpcTransport>(), app.Services.GetRequiredService<RpcOptions>(),
            app.Services.GetRequiredService<TimeProvider>(), app.Services.GetRequiredService<ILoggerFactory>());
    }

    public FerryHostOptions Options { get; }
    public WebApplication App { get; }

    /// <summary>Running (or stopped) compute agents by host; agents start concurrently, hence concurrent.</summary>
    public ConcurrentDictionary<string, ComputeManager> Computes => _agents.Computes;

    /// <summary>Each host's virt driver (the last one started for the host).</summary>
    public ConcurrentDictionary<string, IComputeDriver> Drivers => _agents.Drivers;

    /// <summary>Adjusts each fake host's driver before it starts (CPU features, bandwidth…).</summary>
    public Action<FakeDriverOptions>? ConfigureDriver { get => _agents.ConfigureDriver; set => _agents.ConfigureDriver = value; }

    /// <summary>Adjusts each QEMU host's driver before it starts.</summary>
    public Action<QemuDriverOptions>? ConfigureQemuDriver { get => _agents.ConfigureQemuDriver; set => _agents.ConfigureQemuDriver = value; }

    /// <summary>Adjusts each compute agent's options before it starts (live-migration policy…).</summary>
    public Action<ComputeOptions>? ConfigureCompute { get => _agents.ConfigureCompute; set => _agents.ConfigureCompute = value; }

    public IServiceProvider Services => App.Services;

    /// <summary>The agents' service credentials for placement (keystone mode); null: the admin user and project.</summary>
    public KeystoneCredentials? PlacementCredentials { get; set; }

    /// <summary>The agents' Keystone session (keystone mode, once started); null under noauth2.</summary>
    public KeystoneSession? PlacementSession => _agents.Session;

    public static AllInOne Build(FerryHostOptions options, Action<ILoggingBuilder>? logging = null)
    {
        var infrastructure = new FerryInfrastructure(options);
        var builder = WebApplication.CreateSlimBuilder(RoleHosts.WebOptions);
        var listeners = ListenSockets.Bind(options);
        builder.WebHost.ConfigureKestrel(kestrel => listeners.Configure(kestrel));
        RoleHosts.ConfigureLogging(builder.Logging, options, logging);
        builder.Services
            .AddFerryBus(infrastructure)
            .AddFerryControlPlane(options, infrastructure)
            .AddFerryApiRole(options, metricsRole: "all-in-one")
            .AddFerryConductorRole(options)
            .AddFerrySchedulerRole(options);
        var app = builder.Build();
        app.MapFerryApiRole(options);
        return new AllInOne(options, app, infrastructure);
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
            new CatalogService("network", "neutron", options.NetworkUrl),
            // Cinder's form, the token's project in the path (Keystone substitutes it): Nova needs the v3 in it.
            new CatalogService("volumev3", "cinderv3", $"{options.VolumeUrl}/v3/$(project_id)s"),
            new CatalogService("block-storage", "cinder", $"{options.VolumeUrl}/v3/$(project_id)s"),
        ],
    };

    /// <summary>Starts the APIs, the conductor and scheduler, then every compute agent.</summary>
    public async Task StartAsync(CancellationToken ct)
    {
        var services = App.Services;
        await FerryInfrastructure.ConnectAsync(services, ct); // a missing broker: one line, before anything starts
        await App.StartAsync(ct);
        if (Options.UsesKeystone)
        {
            // The agents log in to the identity API with Nova's [placement] service credentials (here the admin
            // user) and find placement and images in the token's catalog; one session serves every agent of this process.
            await _agents.LogInAsync(PlacementCredentials ?? new KeystoneCredentials
            {
                AuthUrl = new Uri(Options.IdentityUrl + "/v3"),
                Username = "admin",
                Password = services.GetRequiredService<IdentityOptions>().AdminPassword,
                ProjectName = "admin",
            }, ct);
        }
        // Compute hosts of an earlier run (more --hosts, another driver) are down from the first second.
        var hosts = Enumerable.Range(1, Options.Hosts).Select(i => $"compute{i}").ToList();
        await services.GetRequiredService<ServiceStore>().MarkComputesDownExceptAsync(hosts.ToHashSet(), ct);
        await _agents.StartAllAsync(hosts, ct);
    }

    /// <summary>
    /// The agents talk to placement as the admin user, like Nova's [placement] service credentials; in one process the
    /// token is issued directly, lives as long as this process and never leaves it.
    /// </summary>
    /// <summary>Starts (or restarts) one compute agent; a restarted agent finds the guests its host kept.</summary>
    public Task<ComputeManager> StartComputeAsync(string host, CancellationToken ct, Action<ComputeOptions>? configure = null) =>
        _agents.StartAsync(host, ct, configure);

    public async ValueTask DisposeAsync()
    {
        await _agents.DisposeAsync();
        if (Options.KillGuestsOnStop)
        {
            await VolumeBackends.StopAsync(App.Services.GetService<IVolumeBackend>());
        }
        await App.StopAsync();
        await App.DisposeAsync();
        await _infrastructure.DisposeAsync();
    }
}
