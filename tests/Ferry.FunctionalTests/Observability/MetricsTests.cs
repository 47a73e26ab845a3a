using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Rpc;
using Ferry.Host;
using Ferry.Host.Observability;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Ferry.FunctionalTests.Observability;

/// <summary>
/// The counters of one process are shared by every Ferry in it (the meter is static, as the BCL's are): tests that
/// count run alone so that no other test's migration or request lands in their deltas.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MetricsCollection
{
    public const string Name = "Metrics counted alone";
}

/// <summary>
/// A non-converging guest (dirty rate above the link) migrates until forced, so its progress series can be scraped
/// while it runs; a hundred-times-faster simulated clock with the completion timeout off.
/// </summary>
public sealed class MetricsFixture : FerryFixture
{
    protected override void Configure(FerryHostOptions options) => options.FakeTimeScale = 0.01;

    protected override void Configure(AllInOne ferry) => ferry.ConfigureCompute = c => c.LiveMigrationCompletionTimeoutSecondsPerGiB = 0;
}

[Collection(MetricsCollection.Name)]
public sealed class MetricsTests(MetricsFixture fixture) : FlowTest<MetricsFixture>(fixture)
{
    private static readonly string[] s_progressSeries =
    [
        "kubevirt_vmi_migration_data_processed_bytes",
        "kubevirt_vmi_migration_data_remaining_bytes",
        "kubevirt_vmi_migration_dirty_memory_rate_bytes",
        "kubevirt_vmi_migration_memory_transfer_rate_bytes",
        "kubevirt_vmi_migration_disk_transfer_rate_bytes",
        "ferry_live_migration_expected_downtime_seconds",
    ];

    private Task<List<PrometheusSample>> ScrapeAsync() => MetricsScraper.ScrapeAsync(Fixture.Ferry.Options.ComputeApiUrl);

    [Fact]
    public async Task LiveMigration_FakeGuest_ProgressGaugesWhileRunningGoneAfterAndSucceededPlusOne()
    {
        var before = await ScrapeAsync();
        var id = await BootAsync("compute1", metadata: new() { ["ferry:dirty_rate_mibps"] = "4000" });
        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var running = await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.Running, "running");
        var labels = new[] { ("vmi", id), ("vmim", running.Uuid) };

        // Two monitor samples make a transfer rate; the guest never converges by itself, so this only waits for them.
        List<PrometheusSample> during;
        try
        {
            during = await ScrapeUntilAsync(s => s.Sum("kubevirt_vmi_migration_memory_transfer_rate_bytes", labels) > 0, "a memory transfer rate");
        }
        catch
        {
            // The guest never converges by itself: abort it so the tests after this one find a quiet Ferry.
            await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}/migrations/{running.Id}");
            await WaitForMoveEndAsync(id);
            throw;
        }
        Assert.All(s_progressSeries, name => Assert.Single(during, s => s.Name == name && s.Has(labels)));
        Assert.True(during.Sum("kubevirt_vmi_migration_data_processed_bytes", labels) > 0, "bytes processed");
        Assert.True(during.Sum("kubevirt_vmi_migration_data_remaining_bytes", labels) > 0, "bytes remaining");
        Assert.Equal(4000.0 * 1024 * 1024, during.Sum("kubevirt_vmi_migration_dirty_memory_rate_bytes", labels));
        var (forced, _) = await Admin.PostAsync($"servers/{id}/migrations/{running.Id}/action", JsonNode.Parse("""{"force_complete": null}"""));
        Assert.Equal(HttpStatusCode.Accepted, forced);
        var (_, migration) = await WaitForMoveEndAsync(id);
        Assert.Equal(MigrationStatus.Completed, migration.Status);
        var after = await ScrapeAsync();

        Assert.DoesNotContain(after, s => s.Labels.TryGetValue("vmim", out var m) && m == running.Uuid);
        Assert.Equal(before.Sum("kubevirt_vmi_migration_succeeded") + 1, after.Sum("kubevirt_vmi_migration_succeeded"));
        Assert.Equal(before.Sum("kubevirt_vmi_migration_failed"), after.Sum("kubevirt_vmi_migration_failed"));
        Assert.Equal(before.Sum("ferry_moves_total", ("type", "live-migration"), ("status", "completed")) + 1,
            after.Sum("ferry_moves_total", ("type", "live-migration"), ("status", "completed")));
    }

    [Fact]
    public async Task RpcCall_NoReplyInTime_CountedAsTimeout()
    {
        var labels = new[] { ("topic", "compute"), ("method", "metrics_probe"), ("outcome", "timeout") };
        var before = await ScrapeAsync();
        // A host whose agent is gone: nobody takes the message, as for a compute that died (Nova's MessagingTimeout).
        var client = new ProbeClient(Fixture.Ferry.Services.GetRequiredService<IRpcTransport>(), new RpcOptions { CallTimeout = TimeSpan.FromMilliseconds(50) });

        await Assert.ThrowsAsync<RpcTimeoutException>(() => client.ProbeAsync("metrics-gone-host"));

        var after = await ScrapeAsync();
        Assert.Equal(before.Sum("ferry_rpc_client_call_duration_seconds_count", labels) + 1, after.Sum("ferry_rpc_client_call_duration_seconds_count", labels));
        Assert.Equal(0, after.Sum("ferry_rpc_client_call_duration_seconds_count", ("method", "metrics_probe"), ("outcome", "ok")));
    }

    [Fact]
    public async Task GetServer_UnknownId_404CountedByRouteTemplateAndStatusClass()
    {
        var missing = Guid.NewGuid().ToString();
        var labels = new[]
        {
            ("ferry_service", "compute"), ("http_route", "/v2.1/servers/{id}"), ("http_request_method", "GET"),
            ("http_response_status_code", "404"), ("http_response_status_class", "4xx"),
        };
        var before = await ScrapeAsync();

        var (status, _) = await Admin.GetAsync($"servers/{missing}");

        Assert.Equal(HttpStatusCode.NotFound, status);
        var after = await ScrapeAsync();
        Assert.Equal(before.Sum("http_server_request_duration_seconds_count", labels) + 1, after.Sum("http_server_request_duration_seconds_count", labels));
        Assert.DoesNotContain(after, s => s.Labels.Values.Any(v => v.Contains(missing, StringComparison.Ordinal)));
    }

    private async Task<List<PrometheusSample>> ScrapeUntilAsync(Func<List<PrometheusSample>, bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + WaitLimit;
        while (true)
        {
            var samples = await ScrapeAsync();
            if (condition(samples))
            {
                return samples;
            }
            Assert.True(DateTime.UtcNow < deadline, $"Waiting for {what} in /metrics: the scrape has {samples.Count} samples, none with it");
            await Task.Delay(10);
        }
    }

    private sealed class ProbeClient(IRpcTransport transport, RpcOptions options) : RpcClient(transport, options)
    {
        public Task<RpcEmpty> ProbeAsync(string host) =>
            CallAsync<RpcEmpty, RpcEmpty>(Topics.Compute(host), "metrics_probe", RpcEmpty.Instance, CancellationToken.None);
    }
}

/// <summary>An all-in-one with Keystone auth, so that all four APIs listen.</summary>
public sealed class MetricsKeystoneFixture : FerryFixture
{
    protected override void Configure(FerryHostOptions options) => options.Auth = "keystone";
}

/// <summary>
/// <c>/metrics</c> on every API port and on the listener of a process without an API. Alone too: every all-in-one in
/// the process records on ASP.NET Core's meters of the same name, and OpenTelemetry ends a shared stream when any of
/// them is disposed (another test's Ferry stopping), so request series are only reliable with one Ferry running.
/// </summary>
[Collection(MetricsCollection.Name)]
public sealed class MetricsEndpointTests(MetricsKeystoneFixture fixture) : IClassFixture<MetricsKeystoneFixture>
{
    [Fact]
    public async Task Get_EveryApiPortWithoutToken_PrometheusTextWithFerrySeries()
    {
        var o = fixture.Ferry.Options;
        using var http = new HttpClient();
        using var guarded = await http.GetAsync($"{o.ComputeApiUrl}/v2.1/servers");
        Assert.Equal(HttpStatusCode.Unauthorized, guarded.StatusCode); // the same port wants a token for the API itself

        foreach (var url in new[] { o.ComputeApiUrl, o.PlacementUrl, o.IdentityUrl, o.ImageUrl })
        {
            var samples = await MetricsScraper.ScrapeAsync(url);

            Assert.Equal(1, samples.Sum("ferry_db_up"));
            Assert.Equal(1, samples.Sum("ferry_bus_up", ("transport", "in-process")));
            Assert.Single(samples, s => s.Name == "target_info" && s.Has(("service_name", "ferry-all-in-one")));
            Assert.Contains(samples, s => s.Name == "ferry_rpc_client_call_duration_seconds_count" && s.Has(("topic", "conductor")));
        }
        // Each scrape above is itself a request of its API's port, tagged with that API.
        var last = await MetricsScraper.ScrapeAsync(o.ComputeApiUrl);
        foreach (var service in new[] { "compute", "placement", "identity", "image" })
        {
            Assert.True(last.Sum("http_server_request_duration_seconds_count", ("ferry_service", service), ("http_route", "/metrics"), ("http_response_status_class", "2xx")) >= 1, service);
        }
    }

    [Fact]
    public async Task MetricsListener_ProcessWithoutApi_ServesPrometheusTextOnItsPort()
    {
        var port = FreePort();
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.Services.AddFerryMetrics(new FerryMetricsOptions { Role = "conductor", ListenPort = port });
        using var host = builder.Build();
        await host.StartAsync();
        try
        {
            var samples = await MetricsScraper.ScrapeAsync($"http://127.0.0.1:{port}");

            Assert.Single(samples, s => s.Name == "target_info" && s.Has(("service_name", "ferry-conductor")));
            Assert.Contains(samples, s => s.Name.StartsWith("dotnet_", StringComparison.Ordinal));
        }
        finally
        {
            await host.StopAsync();
        }
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }
}
