using System.Net;
using Ferry.ControlPlane.Persistence;
using Ferry.Host;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Flows;

/// <summary>A Ferry of its own: its tests delete a host.</summary>
public sealed class ServiceDeleteFixture : FerryFixture
{
    protected override void Configure(FerryHostOptions options) => options.Hosts = 2;
}

/// <summary>`openstack compute service delete` of a compute service, as Nova's services API does it.</summary>
public sealed class ServiceDeleteTests(ServiceDeleteFixture fixture) : IClassFixture<ServiceDeleteFixture>
{
    [Fact]
    public async Task Delete_ComputeService_DeletesItsResourceProviderInPlacement()
    {
        var host = "compute2";
        var nodeUuid = fixture.Ferry.Services.GetRequiredService<ComputeNodeStore>().FindByHost(host)!.Uuid;
        using var placement = new HttpClient { BaseAddress = new Uri(fixture.Ferry.Options.PlacementUrl + "/") };
        placement.DefaultRequestHeaders.Add("X-Auth-Token", "admin:admin");
        Assert.Equal(HttpStatusCode.OK, (await placement.GetAsync($"resource_providers/{nodeUuid}")).StatusCode);
        // The agent is gone first (an operator deletes the service of a host taken away), so nothing re-registers it.
        await fixture.Ferry.Computes[host].StopAsync();
        var serviceId = (await fixture.Admin.GetAsync($"os-services?host={host}&binary=nova-compute", "2.53")).Body!["services"]![0]!["id"]!.GetValue<string>();

        var (status, _) = await fixture.Admin.SendAsync(HttpMethod.Delete, $"os-services/{serviceId}", microversion: "2.53");

        Assert.Equal(HttpStatusCode.NoContent, status);
        Assert.Equal(HttpStatusCode.NotFound, (await placement.GetAsync($"resource_providers/{nodeUuid}")).StatusCode);
        var providers = await (await placement.GetAsync("resource_providers")).Content.ReadAsStringAsync();
        Assert.DoesNotContain(nodeUuid, providers, StringComparison.Ordinal);
        Assert.Empty((await fixture.Admin.GetAsync($"os-services?host={host}")).Body!["services"]!.AsArray());
    }
}
