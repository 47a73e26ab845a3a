using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Ferry.FunctionalTests.Observability;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Scale;

/// <summary>
/// What one host's start costs, counted through the process's own <c>/metrics</c> (the placement API's requests, the
/// conductor calls): an all-in-one of many hosts registers each in two placement requests and one conductor call, and a
/// restart reports each in one request, with every host's provider carrying its inventory both times.
/// </summary>
[Collection(ProcessRestartCollection.Name)]
public sealed class HostStartTests
{
    private const int Hosts = 100;
    private const string PlacementRequests = "http_server_request_duration_seconds_count";
    private const string ConductorCalls = "ferry_rpc_client_call_duration_seconds_count";

    [Fact]
    public async Task StartAsync_ManyHostsFreshThenRestarted_FewPlacementRequestsAndConductorCallsPerHost()
    {
        await using var ferry = new RestartableFerry(o =>
        {
            o.Hosts = Hosts;
            // No periodic heartbeat or power sync inside the counted start.
            o.ReportInterval = TimeSpan.FromHours(1);
        });

        await ferry.StartAsync();
        var fresh = await MetricsScraper.ScrapeAsync(ferry.Ferry.Options.ComputeApiUrl);
        AssertEveryProviderHasInventory(ferry);
        await ferry.StopAsync();
        await ferry.StartAsync();
        var restarted = await MetricsScraper.ScrapeAsync(ferry.Ferry.Options.ComputeApiUrl);
        AssertEveryProviderHasInventory(ferry);

        // First start: POST /resource_providers and PUT its inventories (no read first: the node is new, so is its provider).
        Assert.Equal(2.0 * Hosts, fresh.Sum(PlacementRequests, ("ferry_service", "placement")));
        Assert.Equal(Hosts, fresh.Sum(PlacementRequests, ("ferry_service", "placement"), ("http_request_method", "POST")));
        // compute_start: service, node, and the host's instances and migrations for its recovery.
        Assert.Equal(1.0 * Hosts, fresh.Sum(ConductorCalls, ("topic", "conductor")));
        // Restart: one GET of each provider's inventories, unchanged.
        Assert.Equal(1.0 * Hosts, restarted.Sum(PlacementRequests, ("ferry_service", "placement")));
        Assert.Equal(1.0 * Hosts, restarted.Sum(ConductorCalls, ("topic", "conductor")));
    }

    private static void AssertEveryProviderHasInventory(RestartableFerry ferry)
    {
        var placement = ferry.Ferry.Services.GetRequiredService<IPlacementService>();
        var nodes = ferry.Ferry.Services.GetRequiredService<ComputeNodeStore>().List();
        var providers = placement.ListProviders().ToDictionary(p => p.Uuid, p => p.Name, StringComparer.Ordinal);
        Assert.Equal(Hosts, nodes.Count);
        Assert.All(nodes, node =>
        {
            var inventories = placement.GetInventories(node.Uuid);
            Assert.Equal(["DISK_GB", "MEMORY_MB", "VCPU"], inventories.Keys.Order(StringComparer.Ordinal));
            Assert.Equal(node.Vcpus, (int)inventories["VCPU"].Total);
            Assert.Equal(node.Host, providers[node.Uuid]);
        });
    }
}
