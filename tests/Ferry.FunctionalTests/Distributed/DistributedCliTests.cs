using System.Diagnostics;
using System.Text.Json.Nodes;
using Ferry.FunctionalTests.Observability;

namespace Ferry.FunctionalTests.Distributed;

/// <summary>
/// The README's `openstack` session against `./ferry up --distributed`: every role its own process over PostgreSQL and
/// RabbitMQ, the api replicas sharing their ports. Runs alone: it starts a dozen processes of its own.
/// </summary>
[Collection(ProcessRestartCollection.Name)]
public sealed class DistributedCliTests(DistributedFixture fixture) : IClassFixture<DistributedFixture>
{
    [Fact]
    public async Task ServiceList_EveryRoleProcess_ReportsUp()
    {
        var services = (await fixture.JsonAsync("compute", "service", "list")).AsArray();

        var up = services.Where(s => (string?)s!["State"] == "up").Select(s => $"{s!["Binary"]}@{s["Host"]}").ToList();
        Assert.Equal(2, up.Count(s => s.StartsWith("nova-conductor@", StringComparison.Ordinal)));
        Assert.Equal(2, up.Count(s => s.StartsWith("nova-scheduler@", StringComparison.Ordinal)));
        Assert.Contains("nova-compute@compute1", up);
        Assert.Contains("nova-compute@compute2", up);
        Assert.Contains("PostgreSQL 127.0.0.1:", fixture.ReadyLine, StringComparison.Ordinal);
        Assert.Contains("RabbitMQ 127.0.0.1:", fixture.ReadyLine, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Server_BootLiveMigrateColdMigrateConfirmDelete_EachStepLandsWhereAsked()
    {
        var id = await BootAsync("dist-a", "compute1");

        await RunAsync("server", "migrate", "--live-migration", "--host", "compute2", "--wait", id);
        Assert.Equal("compute2", await HostOfAsync(id));

        await RunAsync("--os-compute-api-version", "2.56", "server", "migrate", "--host", "compute1", "--wait", id);
        Assert.Equal("VERIFY_RESIZE", (string?)(await fixture.JsonAsync("server", "show", id))["status"]);
        await RunAsync("server", "resize", "confirm", id);
        await WaitForStatusAsync(id, "ACTIVE");
        Assert.Equal("compute1", await HostOfAsync(id));

        var allocations = (await fixture.JsonAsync("--os-placement-api-version", "1.12", "resource", "provider", "allocation", "show", id)).AsArray();
        var provider = Assert.Single(allocations);
        var providers = (await fixture.JsonAsync("resource", "provider", "list", "--name", "compute1")).AsArray();
        Assert.Equal((string?)Assert.Single(providers)!["uuid"], (string?)provider!["resource_provider"]);

        await RunAsync("server", "delete", "--wait", id);
        Assert.Empty((await fixture.JsonAsync("--os-placement-api-version", "1.12", "resource", "provider", "allocation", "show", id)).AsArray());
    }

    [Fact]
    public async Task Replicas_OneApiAndOneConductorKilled_TheOthersCarryOn()
    {
        var children = fixture.Children();
        var before = await BootAsync("dist-b", "compute1");
        Process.GetProcessById(children["api-1"]).Kill();
        Process.GetProcessById(children["conductor-1"]).Kill();

        // Every request now lands on api-2 (the kernel drops a closed listener from the port), every cast on conductor-2.
        await RunAsync("server", "migrate", "--live-migration", "--host", "compute2", "--wait", before);
        Assert.Equal("compute2", await HostOfAsync(before));
        var after = await BootAsync("dist-c", "compute1");
        await RunAsync("server", "delete", "--wait", before, after);
    }

    [Fact]
    public void Schedulers_DatabaseOpened_LoadNoKerberosLibraries()
    {
        var children = fixture.Children();

        // The launcher's PostgreSQL connections turn GSS encryption off: Npgsql's default would look for Kerberos
        // credentials at every connection, mapping libgssapi_krb5 and libkrb5 into each process (~1 MB of each's memory).
        foreach (var name in new[] { "scheduler-1", "scheduler-2" })
        {
            var maps = File.ReadAllText($"/proc/{children[name]}/maps");
            Assert.DoesNotContain("libgssapi_krb5", maps, StringComparison.Ordinal);
            Assert.DoesNotContain("libkrb5", maps, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Metrics_ConductorAndComputeProcesses_ServeRpcBusAndMigrationSeries()
    {
        var urls = fixture.MetricsUrls();
        Assert.Equal(["compute1", "compute2", "conductor-1", "conductor-2", "scheduler-1", "scheduler-2"], urls.Keys.Order());
        var id = await BootAsync("dist-m", "compute1");

        await RunAsync("server", "migrate", "--live-migration", "--host", "compute2", "--wait", id);

        Assert.Equal("compute2", await HostOfAsync(id));
        // Either conductor replica may have run the move (one may be gone: another test kills conductor-1); the
        // migration turns completed just after the server shows ACTIVE on its destination.
        var children = fixture.Children();
        List<PrometheusSample> conductors = [];
        for (var started = Stopwatch.StartNew(); conductors.Sum("ferry_moves_total", ("type", "live-migration"), ("status", "completed")) < 1; await Task.Delay(200))
        {
            Assert.True(started.Elapsed < TimeSpan.FromSeconds(60), $"no completed live migration counted by a conductor: {string.Join('\n', conductors.Where(s => s.Name.StartsWith("ferry_moves", StringComparison.Ordinal)))}");
            conductors = [];
            foreach (var name in new[] { "conductor-1", "conductor-2" }.Where(n => Directory.Exists($"/proc/{children[n]}")))
            {
                conductors.AddRange(await ScrapeAsync(urls[name]));
            }
        }
        Assert.True(conductors.Sum("ferry_rpc_server_duration_seconds_count", ("method", "live_migrate_instance"), ("outcome", "ok")) >= 1);
        Assert.True(conductors.Sum("kubevirt_vmi_migration_succeeded") >= 1);
        var source = await ScrapeAsync(urls["compute1"]);
        var destination = await ScrapeAsync(urls["compute2"]);
        Assert.True(source.Sum("ferry_rpc_server_duration_seconds_count", ("method", "live_migration"), ("outcome", "ok")) >= 1);
        Assert.True(source.Sum("ferry_rpc_client_call_duration_seconds_count", ("topic", "compute"), ("method", "pre_live_migration"), ("outcome", "ok")) >= 1);
        Assert.True(destination.Sum("ferry_rpc_server_duration_seconds_count", ("method", "pre_live_migration"), ("outcome", "ok")) >= 1);
        Assert.All(new[] { conductors, source, destination }, samples => Assert.Contains(samples, s => s.Name == "ferry_bus_up" && s.Has(("transport", "rabbitmq")) && s.Value == 1));
        Assert.Contains(source, s => s.Name == "target_info" && s.Has(("service_name", "ferry-compute")));
        await RunAsync("server", "delete", "--wait", id);
    }

    private static Task<List<PrometheusSample>> ScrapeAsync(string url) => MetricsScraper.ScrapeAsync(url[..^"/metrics".Length]);

    private async Task<string> BootAsync(string name, string host)
    {
        var created = await fixture.JsonAsync("server", "create", "--flavor", "m1.tiny", "--image", "ferry-test-guest", "--nic", "none",
            "--availability-zone", $"nova:{host}", "--wait", name);
        Assert.Equal("ACTIVE", (string?)created["status"]);
        return (string)created["id"]!;
    }

    private async Task RunAsync(params string[] args)
    {
        var result = await fixture.OpenStackAsync(args);
        Assert.True(result.ExitCode == 0, result.ToString());
    }

    private async Task<string?> HostOfAsync(string id) => (string?)(await fixture.JsonAsync("server", "show", id))["OS-EXT-SRV-ATTR:host"];

    private async Task WaitForStatusAsync(string id, string status)
    {
        for (var i = 0; i < 300; i++)
        {
            if ((string?)(await fixture.JsonAsync("server", "show", id))["status"] == status)
            {
                return;
            }
            await Task.Delay(200);
        }
        Assert.Fail($"server {id} never reached {status}");
    }
}
