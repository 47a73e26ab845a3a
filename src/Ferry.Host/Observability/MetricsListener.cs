using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;

namespace Ferry.Host.Observability;

/// <summary>
/// <c>GET /metrics</c> on a port of its own, for a process without an API (Prometheus' usual <c>--metrics-port</c>): a
/// small Kestrel server that scrapes the process's <see cref="MeterProvider"/>.
/// </summary>
internal sealed class MetricsListener(IPAddress address, int port, MeterProvider meterProvider) : IHostedService, IAsyncDisposable
{
    private WebApplication? _app;

    /// <summary>Where it serves, once started (port 0 resolved to the one bound): http://address:port/metrics.</summary>
    public string Url { get; private set; } = "";

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        // Its own HTTP server meters must not share the process's: an instrument of the same meter and name feeds the
        // same OpenTelemetry stream, and disposing this server's meters at stop would end the API's request series.
        builder.Services.AddSingleton<IMeterFactory, PrivateMeterFactory>();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(address, port));
        var app = builder.Build();
        app.Use(FerryMetrics.AppendRunningMigrationsAsync);
        app.MapPrometheusScrapingEndpoint(FerryMetrics.Path, meterProvider, configureBranchedPipeline: null, optionsName: null);
        await app.StartAsync(cancellationToken);
        _app = app;
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
            ?? $"http://{address}:{port}";
        Url = bound.Replace("[::]", address.ToString(), StringComparison.Ordinal) + FerryMetrics.Path;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_app is not null)
        {
            await _app.StopAsync(cancellationToken);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.DisposeAsync();
        }
    }
}

/// <summary>Meters under a prefixed name, which no <c>AddMeter</c> of the process's provider selects.</summary>
internal sealed class PrivateMeterFactory : IMeterFactory
{
    private readonly ConcurrentBag<Meter> _meters = [];

    public Meter Create(MeterOptions options)
    {
        var meter = new Meter(new MeterOptions("ferry.metrics-listener." + options.Name) { Version = options.Version, Tags = options.Tags, Scope = this });
        _meters.Add(meter);
        return meter;
    }

    public void Dispose()
    {
        foreach (var meter in _meters)
        {
            meter.Dispose();
        }
    }
}
