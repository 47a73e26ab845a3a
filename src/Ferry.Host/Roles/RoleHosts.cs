using Ferry.Core.Rpc;
using Ferry.Host.Logging;
using Ferry.Host.Observability;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Ferry.Host.Roles;

/// <summary>
/// Each role as its own generic host (<c>ferry api|conductor|scheduler|compute</c>): the api role a
/// <see cref="WebApplication"/>, the others a plain <see cref="IHost"/> of background services. Roles of one process
/// share its <see cref="FerryInfrastructure"/> (database connection and bus).
/// </summary>
public static class RoleHosts
{
    /// <summary>The APIs the options serve, each on its own port (port 0 is bound here and the options name the real one).</summary>
    public static WebApplication BuildApi(FerryHostOptions options, FerryInfrastructure infrastructure, Action<ILoggingBuilder>? logging = null)
    {
        var builder = WebApplication.CreateSlimBuilder(WebOptions);
        var listeners = ListenSockets.Bind(options);
        builder.WebHost.ConfigureKestrel(kestrel => listeners.Configure(kestrel));
        ConfigureLogging(builder.Logging, options, logging);
        builder.Services.AddFerryBus(infrastructure).AddFerryControlPlane(options, infrastructure).AddFerryApiRole(options);
        var app = builder.Build();
        app.MapFerryApiRole(options);
        return app;
    }

    public static IHost BuildConductor(FerryHostOptions options, FerryInfrastructure infrastructure, Action<ILoggingBuilder>? logging = null)
    {
        var builder = NewHost(options, logging);
        builder.Services.AddFerryBus(infrastructure).AddFerryControlPlane(options, infrastructure).AddFerryConductorRole(options);
        AddMetricsListener(builder.Services, options, "conductor", options.ListenAddress);
        return builder.Build();
    }

    public static IHost BuildScheduler(FerryHostOptions options, FerryInfrastructure infrastructure, Action<ILoggingBuilder>? logging = null)
    {
        var builder = NewHost(options, logging);
        builder.Services.AddFerryBus(infrastructure).AddFerryControlPlane(options, infrastructure).AddFerrySchedulerRole(options);
        AddMetricsListener(builder.Services, options, "scheduler", options.ListenAddress);
        return builder.Build();
    }

    /// <summary>One compute agent, <see cref="FerryHostOptions.ComputeHost"/>; it never opens the database.</summary>
    public static IHost BuildCompute(FerryHostOptions options, FerryInfrastructure infrastructure, Action<ILoggingBuilder>? logging = null,
        Action<ComputeAgents>? configure = null)
    {
        var builder = NewHost(options, logging);
        builder.Services.AddFerryBus(infrastructure);
        builder.Services.AddSingleton(sp =>
        {
            var agents = new ComputeAgents(options, sp.GetRequiredService<IRpcTransport>(), sp.GetRequiredService<RpcOptions>(),
                sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILoggerFactory>());
            configure?.Invoke(agents);
            return agents;
        });
        builder.Services.AddHostedService(sp => new ComputeAgentService(sp.GetRequiredService<ComputeAgents>(), options));
        AddMetricsListener(builder.Services, options, "compute", options.MigrationAddress);
        return builder.Build();
    }

    /// <summary>The URL of the role's own metrics listener once started (<c>--metrics-port</c>), or null when it has none.</summary>
    public static string? MetricsUrl(IHost host) => host.Services.GetService<MetricsListener>()?.Url;

    // A role without an API serves /metrics on a port of its own, and only when given one (--metrics-port).
    private static void AddMetricsListener(IServiceCollection services, FerryHostOptions options, string role, string address)
    {
        if (options.Metrics && options.MetricsPort is { } port)
        {
            services.AddFerryMetrics(new FerryMetricsOptions { Role = role, ListenPort = port, ListenAddress = address });
        }
    }
    /// <summary>
    /// The web hosts' defaults less appsettings.json's reload on change: Ferry reads no appsettings (its settings are
    /// FerrySettings), and the reload watches the content root (the working directory, where <c>var/</c> usually is)
    /// with every subdirectory: one inotify watch per instance directory, 100,000 of them at scale, each new one an event.
    /// </summary>
    internal static WebApplicationOptions WebOptions => new() { Args = ["--hostBuilder:reloadConfigOnChange=false"] };

    private static HostApplicationBuilder NewHost(FerryHostOptions options, Action<ILoggingBuilder>? logging)
    {
        // No appsettings, no host environment variables: Ferry's settings are already bound (FerryConfiguration).
        var builder = Microsoft.Extensions.Hosting.Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        ConfigureLogging(builder.Logging, options, logging);
        return builder;
    }

    internal static void ConfigureLogging(ILoggingBuilder builder, FerryHostOptions options, Action<ILoggingBuilder>? logging)
    {
        builder.ClearProviders();
        if (logging is null)
        {
            builder.AddFerryLogging(options.LogLevel, options.LogFilePath, Console.Out);
        }
        else
        {
            logging(builder);
        }
    }
}
