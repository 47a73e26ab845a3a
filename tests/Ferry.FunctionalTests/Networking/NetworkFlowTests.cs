using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Core.Networking;
using Ferry.Host;
using Ferry.Virt.Fake;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Networking;

/// <summary>
/// Servers on the seeded network through the compute API: a port made and bound at build, its binding following every
/// move (live migration by inactive binding and activation, cold migration, resize and revert, evacuation), released at
/// delete; the invariant check after each test holds every port to the host that runs its server.
/// </summary>
public sealed class NetworkFlowTests(FerryFixture fixture) : FlowTest<FerryFixture>(fixture)
{
    private static JsonNode OnPrivate => new JsonArray(new JsonObject { ["uuid"] = Seed.PrivateNetworkId });

    private NetworkStore Ports => Fixture.Ferry.Services.GetRequiredService<NetworkStore>();

    private async Task<PortWithBindings> PortOfAsync(string serverId) =>
        Assert.Single(await Ports.ListPortsAsync(new PortQuery { DeviceIds = [serverId] }, CancellationToken.None));

    [Fact]
    public async Task Boot_OnTheSeededNetwork_PortBoundToTheHostAndAddressesShownThenReleasedAtDelete()
    {
        var id = await BootAsync("compute1", networks: OnPrivate);

        var port = await PortOfAsync(id);
        var server = await Admin.GetServerAsync(id);
        var address = Assert.Single(port.Port.FixedIps).IpAddress;
        Assert.Equal("compute1", port.ActiveBinding?.Host);
        Assert.Equal("compute:nova", port.Port.DeviceOwner);
        var entry = server["addresses"]!["private"]![0]!;
        Assert.Equal((address, port.Port.MacAddress, "fixed", 4), ((string)entry["addr"]!, (string)entry["OS-EXT-IPS-MAC:mac_addr"]!, (string)entry["OS-EXT-IPS:type"]!, (int)entry["version"]!));
        Assert.StartsWith("192.168.233.", address, StringComparison.Ordinal);
        var ips = (await Admin.GetAsync($"servers/{id}/ips")).Body!["addresses"]!["private"]![0]!;
        Assert.Equal(address, (string)ips["addr"]!);
        Assert.Null(ips["OS-EXT-IPS-MAC:mac_addr"]);

        Assert.Equal(HttpStatusCode.NoContent, (await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}")).Status);
        await WaitForAsync(id, i => i.TerminatedAt is not null, "deleted");
        Assert.Null(await Ports.GetPortAsync(port.Port.Id, CancellationToken.None));
    }

    [Fact]
    public async Task Boot_WithAPortTheUserMade_PortTakenThenKeptUnboundAtDelete()
    {
        var made = await Ports.CreatePortAsync(new Port { Id = Guid.NewGuid().ToString(), NetworkId = Seed.PrivateNetworkId, ProjectId = "admin", MacAddress = "" },
            [new FixedIpRequest(null, "192.168.233.200")], CancellationToken.None);

        var id = await BootAsync("compute2", networks: new JsonArray(new JsonObject { ["port"] = made.Port.Id }));
        var taken = await PortOfAsync(id);
        await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}");
        await WaitForAsync(id, i => i.TerminatedAt is not null, "deleted");
        var kept = await Ports.GetPortAsync(made.Port.Id, CancellationToken.None);

        Assert.Equal(("compute2", "192.168.233.200"), (taken.ActiveBinding?.Host, taken.Port.FixedIps[0].IpAddress));
        Assert.NotNull(kept);
        Assert.Equal(("", ""), (kept.Port.DeviceId, kept.Port.DeviceOwner));
        Assert.Empty(kept.Bindings);
        await Ports.DeletePortAsync(made.Port.Id, CancellationToken.None);
    }

    [Fact]
    public async Task LiveMigrate_ServerWithAPort_BindingMovesToTheDestinationAndTheSourceBindingGoes()
    {
        var id = await BootAsync("compute1", networks: OnPrivate);
        var before = await PortOfAsync(id);

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var end = await WaitForMoveEndAsync(id);

        AssertMoveEnded(id, end, MigrationStatus.Completed, "compute2");
        var after = await PortOfAsync(id);
        Assert.Equal(("compute2", PortBindingStatus.Active), (Assert.Single(after.Bindings).Host, after.Bindings[0].Status));
        Assert.Equal(before.Port.FixedIps, after.Port.FixedIps);
        Assert.Equal(before.Port.MacAddress, after.Port.MacAddress);
        // The VIF moved with it: plugged on the destination, unplugged from the source.
        var tap = Assert.Single(Driver("compute2").TapDevices(), t => t.PortId == after.Port.Id);
        Assert.Equal(("tap" + after.Port.Id[..11], after.Port.MacAddress), (tap.Name, tap.MacAddress));
        Assert.DoesNotContain(Driver("compute1").TapDevices(), t => t.PortId == after.Port.Id);
    }

    [Fact]
    public async Task LiveMigrate_PreLiveMigrationFails_NoDestinationBindingLeftAndThePortStaysOnTheSource()
    {
        var id = await BootAsync("compute1", networks: OnPrivate);
        Driver("compute3").Faults.FailNext(FakeSteps.PreLiveMigration);

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute3"));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal(("compute1", MigrationStatus.Failed), (instance.Host, migration.Status));
        var port = await PortOfAsync(id);
        Assert.Equal("compute1", Assert.Single(port.Bindings).Host);
        Assert.Empty(await Ports.ListBindingsOnHostAsync("compute3", CancellationToken.None));
        Assert.DoesNotContain(Driver("compute3").TapDevices(), t => t.PortId == port.Port.Id);
        Assert.Single(Driver("compute1").TapDevices(), t => t.PortId == port.Port.Id);
    }

    [Fact]
    public async Task ColdMigrateConfirm_AndResizeRevert_TheBindingFollowsTheServer()
    {
        var id = await BootAsync("compute1", networks: OnPrivate);

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"migrate": {"host": "compute2"}}""")!)).Status);
        var migrated = await WaitForAsync(id, i => i.VmState == VmState.Resized && i.TaskState is null, "VERIFY_RESIZE");
        var atDestination = (await PortOfAsync(id)).ActiveBinding?.Host;
        Assert.Equal(HttpStatusCode.NoContent, (await Admin.ActionAsync(id, JsonNode.Parse("""{"confirmResize": null}""")!)).Status);
        await WaitForMoveEndAsync(id);

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"resize": {"flavorRef": "2"}}""")!)).Status);
        var resized = await WaitForAsync(id, i => i.VmState == VmState.Resized && i.TaskState is null, "VERIFY_RESIZE after resize");
        var resizedOn = (await PortOfAsync(id)).ActiveBinding?.Host;
        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"revertResize": null}""")!)).Status);
        var reverted = await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after revert");

        Assert.Equal(("compute2", "compute2"), (migrated.Host, atDestination));
        Assert.Equal(resized.Host, resizedOn);
        Assert.NotEqual("compute2", resizedOn);
        Assert.Equal(("compute2", "compute2"), (reverted.Host, (await PortOfAsync(id)).ActiveBinding?.Host));
    }

    [Fact]
    public async Task Evacuate_SourceDown_ThePortIsBoundOnTheNewHost()
    {
        var id = await BootAsync("compute3", networks: OnPrivate);
        await Fixture.Ferry.Computes["compute3"].StopAsync();
        await ForceDownAsync("compute3", true);
        try
        {
            var (status, body) = await Admin.ActionAsync(id, JsonNode.Parse("""{"evacuate": {}}""")!);
            Assert.True(status == HttpStatusCode.OK, body?.ToJsonString());
            var (instance, _) = await WaitForMoveEndAsync(id);

            Assert.NotEqual("compute3", instance.Host);
            Assert.Equal(instance.Host, Assert.Single((await PortOfAsync(id)).Bindings).Host);
        }
        finally
        {
            await Fixture.Ferry.StartComputeAsync("compute3", CancellationToken.None);
            await ForceDownAsync("compute3", false);
        }
    }

    [Fact]
    public async Task Delete_HostDown_TheApiDeletesTheServersPortItself()
    {
        var id = await BootAsync("compute2", networks: OnPrivate);
        var port = await PortOfAsync(id);
        await Fixture.Ferry.Computes["compute2"].StopAsync();
        await ForceDownAsync("compute2", true);
        try
        {
            Assert.Equal(HttpStatusCode.NoContent, (await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}")).Status);
            await WaitForAsync(id, i => i.TerminatedAt is not null, "deleted locally");

            Assert.Null(await Ports.GetPortAsync(port.Port.Id, CancellationToken.None));
        }
        finally
        {
            await Fixture.Ferry.StartComputeAsync("compute2", CancellationToken.None);
            await ForceDownAsync("compute2", false);
        }
        Assert.DoesNotContain(Driver("compute2").TapDevices(), t => t.PortId == port.Port.Id);
    }

    [Theory]
    [InlineData("""[{"uuid": "00000000-0000-0000-0000-000000000000"}]""", 400, "Network 00000000-0000-0000-0000-000000000000 could not be found.")]
    [InlineData("""[{"port": "no-such-port"}]""", 400, "Port id no-such-port could not be found.")]
    [InlineData("""[{"uuid": "7c1f0b6e-3a51-4c39-9d0e-5b2f8e6a0001", "fixed_ip": "10.0.0.300"}]""", 400, "fixed_ip")]
    [InlineData("""[{"uuid": "7c1f0b6e-3a51-4c39-9d0e-5b2f8e6a0001", "bogus": 1}]""", 400, "'bogus' was unexpected")]
    public async Task Boot_BadNetworks_RefusedWithNovasMessageAndNothingMade(string networks, int status, string message)
    {
        var before = Instances.List().Count;
        var portsBefore = (await Ports.ListPortsAsync(new PortQuery(), CancellationToken.None)).Count;

        var (code, body) = await Admin.PostAsync("servers", new JsonObject
        {
            ["server"] = new JsonObject { ["name"] = "bad", ["imageRef"] = "ferry-test-guest", ["flavorRef"] = "m1.tiny", ["networks"] = JsonNode.Parse(networks) },
        });

        Assert.Equal(status, (int)code);
        Assert.Contains(message, body!.ToJsonString().Replace("\\u0027", "'", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.Equal(before, Instances.List().Count);
        Assert.Equal(portsBefore, (await Ports.ListPortsAsync(new PortQuery(), CancellationToken.None)).Count);
    }

    [Fact]
    public async Task Boot_PortAlreadyUsedByAnotherServer_409PortInUse()
    {
        var id = await BootAsync("compute1", networks: OnPrivate);
        var port = await PortOfAsync(id);

        var (code, body) = await Admin.PostAsync("servers", new JsonObject
        {
            ["server"] = new JsonObject
            {
                ["name"] = "second", ["imageRef"] = "ferry-test-guest", ["flavorRef"] = "m1.tiny",
                ["networks"] = new JsonArray(new JsonObject { ["port"] = port.Port.Id }),
            },
        });

        Assert.Equal(HttpStatusCode.Conflict, code);
        Assert.Equal($"Port {port.Port.Id} is still in use.", (string)body!["conflictingRequest"]!["message"]!);
    }

    [Fact]
    public async Task NetworkApi_ErrorsInNeutronsShapeAndBindingsForComputePortsOnly()
    {
        using var http = new HttpClient { BaseAddress = new Uri(Fixture.Ferry.Options.NetworkUrl + "/") };
        http.DefaultRequestHeaders.Add("X-Auth-Token", "admin:admin");
        async Task<(HttpStatusCode, JsonNode?)> Send(HttpMethod method, string path, string? body = null)
        {
            using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : new StringContent(body, Encoding.UTF8, "application/json") };
            using var response = await http.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            return (response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text));
        }

        var (byName, notFound) = await Send(HttpMethod.Get, "v2.0/networks/private");
        var (unknownAttribute, unknownBody) = await Send(HttpMethod.Post, "v2.0/networks", """{"network": {"name": "x", "color": "red"}}""");
        var (overlap, overlapBody) = await Send(HttpMethod.Post, "v2.0/subnets",
            $$$"""{"subnet": {"network_id": "{{{Seed.PrivateNetworkId}}}", "cidr": "192.168.233.128/25", "ip_version": 4}}""");
        var (_, created) = await Send(HttpMethod.Post, "v2.0/ports", $$$"""{"port": {"network_id": "{{{Seed.PrivateNetworkId}}}", "name": "loose"}}""");
        var portId = (string)created!["port"]!["id"]!;
        var (inUse, inUseBody) = await Send(HttpMethod.Delete, $"v2.0/networks/{Seed.PrivateNetworkId}"); // the loose port holds it
        var (notCompute, notComputeBody) = await Send(HttpMethod.Post, $"v2.0/ports/{portId}/bindings", """{"binding": {"host": "compute2"}}""");
        var (deleted, _) = await Send(HttpMethod.Delete, $"v2.0/ports/{portId}");
        var (_, page) = await Send(HttpMethod.Get, "v2.0/networks?limit=1&fields=id&fields=name");

        Assert.Equal(HttpStatusCode.NotFound, byName);
        Assert.Equal("NetworkNotFound", (string)notFound!["NeutronError"]!["type"]!);
        Assert.Equal("", (string)notFound["NeutronError"]!["detail"]!);
        Assert.Equal((HttpStatusCode.BadRequest, "Unrecognized attribute(s) 'color'"), (unknownAttribute, (string)unknownBody!["NeutronError"]!["message"]!));
        Assert.Equal((HttpStatusCode.Conflict, "NetworkInUse"), (inUse, (string)inUseBody!["NeutronError"]!["type"]!));
        Assert.Equal((HttpStatusCode.BadRequest, "InvalidInput"), (overlap, (string)overlapBody!["NeutronError"]!["type"]!));
        Assert.Equal(HttpStatusCode.BadRequest, notCompute);
        Assert.Contains("Operation only valid on compute and shared filesystem ports", (string)notComputeBody!["NeutronError"]!["message"]!);
        Assert.Equal(HttpStatusCode.NoContent, deleted);
        var network = Assert.Single(page!["networks"]!.AsArray())!.AsObject();
        Assert.Equal(["id", "name"], network.Select(p => p.Key).Order());
    }

    private async Task<HttpStatusCode> ForceDownAsync(string host, bool down)
    {
        var services = (await Admin.GetAsync($"os-services?host={host}&binary=nova-compute")).Body!["services"]!.AsArray();
        var serviceId = services.Single()!["id"]!.GetValue<string>();
        var (status, _) = await Admin.SendAsync(HttpMethod.Put, $"os-services/{serviceId}", new JsonObject { ["forced_down"] = down });
        return status;
    }
}
