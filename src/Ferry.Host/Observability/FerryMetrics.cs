using System.Net;
using System.Text;
using Ferry.Compute.Observability;
using Ferry.Core.Observability;
using Ferry.Core.Rpc;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace Ferry.Host.Observability;

/// <summary>
/// Prometheus metrics for a Ferry process: Ferry's own meter (RPC, database, bus, moves), ASP.NET Core's HTTP server
/// metrics and the .NET runtime's, through OpenTelemetry's Prometheus exporter, plus the per-migration progress
/// families that <see cref="LiveMigrationMetrics"/> renders itself. API processes serve <c>GET /metrics</c> on every
/// API port (<see cref="MapFerryMetrics"/>); processes without an API (conductor, scheduler, a compute agent on its
/// own) get a listener of their own (<see cref="FerryMetricsOptions.ListenPort"/>).
/// </summary>
public static class FerryMetrics
{
    public const string Path = "/metrics";

    /// <summary>The tag naming which API (compute, placement, identity, image) answered a request.</summary>
    public const string ServiceTag = "ferry.service";

    /// <summary>The tag with the status class (2xx, 4xx…) of a request.</summary>
    public const string StatusClassTag = "http.response.status_class";

    /// <summary>Collects every Ferry metric in this process; with a listen port, serves them on a listener of their own.</summary>
    public static IServiceCollection AddFerryMetrics(this IServiceCollection services, FerryMetricsOptions options)
    {
        services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("ferry-" + options.Role, serviceInstanceId: Environment.MachineName + "/" + Environment.ProcessId))
            .WithMetrics(metrics => metrics
                .AddMeter(FerryMeters.Name)
                .AddAspNetCoreInstrumentation()
                .AddRuntimeInstrumentation()
                // Every scrape sees the values of now: a migration that just ended must not linger.
                .AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0));
        if (options.ListenPort is { } port)
        {
            services.AddSingleton(sp => new MetricsListener(IPAddress.Parse(options.ListenAddress), port, sp.GetRequiredService<MeterProvider>()));
            services.AddHostedService(sp => sp.GetRequiredService<MetricsListener>());
        }
        return services;
    }

    /// <summary>
    /// Serves <c>GET /metrics</c> on every port of <paramref name="app"/>, without a token (as <c>/healthcheck</c>), and tags
    /// each request's HTTP metrics with the API that answered it (by local port) and its status class.
    /// </summary>
    public static IEndpointConventionBuilder MapFerryMetrics(this WebApplication app, IReadOnlyDictionary<int, string> serviceByPort)
    {
        app.Use((http, next) => TagRequestAsync(http, next, serviceByPort));
        app.Use(AppendRunningMigrationsAsync);
        if (app.Services.GetService<IRpcTransport>() is InProcessTransport)
        {
            BusMetrics.ReportUp("in-process", true); // a bus in memory cannot be down while the process runs
        }
        return app.MapPrometheusScrapingEndpoint(Path);
    }

    public static string StatusClass(int status) => status switch
    {
        >= 100 and < 200 => "1xx",
        >= 200 and < 300 => "2xx",
        >= 300 and < 400 => "3xx",
        >= 400 and < 500 => "4xx",
        _ => "5xx",
    };

    private static async Task TagRequestAsync(HttpContext http, RequestDelegate next, IReadOnlyDictionary<int, string> serviceByPort)
    {
        var tags = http.Features.Get<IHttpMetricsTagsFeature>();
        if (tags is null)
        {
            await next(http);
            return;
        }
        tags.Tags.Add(new(ServiceTag, serviceByPort.GetValueOrDefault(http.Connection.LocalPort, "other")));
        try
        {
            await next(http);
            tags.Tags.Add(new(StatusClassTag, StatusClass(http.Response.StatusCode)));
        }
        catch
        {
            tags.Tags.Add(new(StatusClassTag, "5xx")); // the host answers an escaped exception with a 500
            throw;
        }
    }

    /// <summary>Adds the running migrations' families to the exporter's answer (before OpenMetrics' closing <c># EOF</c>).</summary>
    internal static async Task AppendRunningMigrationsAsync(HttpContext http, RequestDelegate next)
    {
        if (!http.Request.Path.Equals(Path, StringComparison.Ordinal))
        {
            await next(http);
            return;
        }
        var body = http.Response.Body;
        using var buffer = new MemoryStream();
        http.Response.Body = buffer;
        try
        {
            await next(http);
        }
        finally
        {
            http.Response.Body = body;
        }
        var text = Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
        if (http.Response.StatusCode == StatusCodes.Status200OK)
        {
            const string Eof = "# EOF\n";
            var extra = new StringBuilder();
            LiveMigrationMetrics.WritePrometheus(extra);
            text = text.EndsWith(Eof, StringComparison.Ordinal) ? text[..^Eof.Length] + extra + Eof : text + extra;
        }
        var bytes = Encoding.UTF8.GetBytes(text);
        http.Response.ContentLength = bytes.Length;
        await http.Response.Body.WriteAsync(bytes, http.RequestAborted);
    }
}

/// <summary>How a process exports its metrics.</summary>
public sealed record FerryMetricsOptions
{
    /// <summary>The role the process runs (all-in-one, api, conductor, scheduler, compute): its service name is ferry-&lt;role&gt;.</summary>
    public required string Role { get; init; }

    /// <summary>A port for a metrics listener of its own (processes without an API); null for none.</summary>
    public int? ListenPort { get; init; }

    public string ListenAddress { get; init; } = "127.0.0.1";
}

public static class FerryHostOptionsMetricsExtensions
{
    /// <summary>The API each port of an all-in-one serves, to tag HTTP metrics with it.</summary>
    public static IReadOnlyDictionary<int, string> ServiceByPort(this FerryHostOptions options)
    {
        var ports = new Dictionary<int, string>
        {
            [options.ComputeApiPort] = "compute",
            [options.PlacementPort] = "placement",
            [options.ImagePort] = "image",
            [options.NetworkPort] = "network",
            [options.VolumePort] = "volume",
        };
        if (options.UsesKeystone)
        {
            ports[options.IdentityPort] = "identity";
        }
        return ports;
    }
}
