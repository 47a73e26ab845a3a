using Ferry.ControlPlane.Persistence;
using Ferry.Core.Networking;
using Ferry.Tests.Shared;

namespace Ferry.Tests.Persistence;

public sealed class SqliteNetworkStoreTests() : NetworkStoreTests(DatabaseEngine.Sqlite);

[Collection(PostgresServer.Collection)]
public sealed class PostgresNetworkStoreTests() : NetworkStoreTests(DatabaseEngine.PostgreSql)
{
    [Fact]
    public async Task CreatePort_TwoProcessesAtOnce_EveryPortGetsItsOwnAddressAndMac()
    {
        var other = new NetworkStore(Files.Open());
        await SeedAsync("10.1.0.0/27");
        var ports = Enumerable.Range(0, 24).Select(i => (i % 2 == 0 ? Store : other).CreatePortAsync(NewPort(), null, CancellationToken.None));

        var created = await Task.WhenAll(ports);

        Assert.Equal(24, created.Select(p => Assert.Single(p.Port.FixedIps).IpAddress).Distinct().Count());
        Assert.Equal(24, created.Select(p => p.Port.MacAddress).Distinct().Count());
    }
}

/// <summary>The network service's state over each engine: addresses, MACs, in-use checks and port bindings.</summary>
public abstract class NetworkStoreTests : IDisposable
{
    protected const string NetworkId = "net-1";
    protected const string SubnetId = "sub-1";

    protected NetworkStoreTests(DatabaseEngine engine)
    {
        Files = new TestDatabase(engine);
        var db = Files.Open();
        DatabaseSchema.Sync(db);
        Store = new NetworkStore(db);
    }

    internal TestDatabase Files { get; }

    internal NetworkStore Store { get; }

    public void Dispose() => Files.Dispose();

    private static CancellationToken Ct => CancellationToken.None;

    protected async Task SeedAsync(string cidr = "10.0.0.0/24")
    {
        await Store.CreateNetworkAsync(new Network { Id = NetworkId, ProjectId = "p1", Name = "n1" }, Ct);
        Ipv4Cidr.TryParse(cidr, out var c);
        await Store.CreateSubnetAsync(new Subnet
        {
            Id = SubnetId, NetworkId = NetworkId, ProjectId = "p1", Cidr = c!.Value.ToString(), GatewayIp = Ipv4.Format(c.Value.FirstHost),
            AllocationPools = [new IpRange(Ipv4.Format(c.Value.FirstHost + 1), Ipv4.Format(c.Value.LastHost))],
        }, Ct);
    }

    protected static Port NewPort(string? deviceOwner = null) =>
        new() { Id = Guid.NewGuid().ToString(), NetworkId = NetworkId, ProjectId = "p1", MacAddress = "", DeviceOwner = deviceOwner ?? "" };

    [Fact]
    public async Task CreatePort_NoAddressAsked_TakesTheLowestFreeOneOfThePoolAndAnOpenStackMac()
    {
        await SeedAsync();
        var first = await Store.CreatePortAsync(NewPort(), null, Ct);
        var second = await Store.CreatePortAsync(NewPort(), null, Ct);
        await Store.DeletePortAsync(first.Port.Id, Ct);

        var third = await Store.CreatePortAsync(NewPort(), null, Ct);

        Assert.Equal(new FixedIp(SubnetId, "10.0.0.2"), Assert.Single(first.Port.FixedIps));
        Assert.Equal("10.0.0.3", Assert.Single(second.Port.FixedIps).IpAddress);
        Assert.Equal("10.0.0.2", Assert.Single(third.Port.FixedIps).IpAddress);
        Assert.Matches("^fa:16:3e(:[0-9a-f]{2}){3}$", first.Port.MacAddress);
    }

    [Fact]
    public async Task CreatePort_AddressTakenOrOutsideTheSubnet_RefusedWithNeutronsTypesAndNothingMade()
    {
        await SeedAsync();
        await Store.CreatePortAsync(NewPort(), [new FixedIpRequest(SubnetId, "10.0.0.9")], Ct);

        var taken = await Assert.ThrowsAsync<NeutronException>(() => Store.CreatePortAsync(NewPort(), [new FixedIpRequest(null, "10.0.0.9")], Ct));
        var outside = await Assert.ThrowsAsync<NeutronException>(() => Store.CreatePortAsync(NewPort(), [new FixedIpRequest(SubnetId, "10.0.1.9")], Ct));
        var noSubnet = await Assert.ThrowsAsync<NeutronException>(() => Store.CreatePortAsync(NewPort(), [new FixedIpRequest(null, "172.16.0.1")], Ct));

        Assert.Equal(("IpAddressAlreadyAllocated", 409), (taken.Type, taken.HttpStatus));
        Assert.Equal(("InvalidIpForSubnet", 400), (outside.Type, outside.HttpStatus));
        Assert.Equal(("InvalidIpForNetwork", 400), (noSubnet.Type, noSubnet.HttpStatus));
        Assert.Single(await Store.ListPortsAsync(new PortQuery(), Ct));
    }

    [Fact]
    public async Task CreatePort_PoolExhausted_IpAddressGenerationFailure()
    {
        await SeedAsync("10.0.0.0/30"); // one address in the pool: .2
        await Store.CreatePortAsync(NewPort(), null, Ct);

        var full = await Assert.ThrowsAsync<NeutronException>(() => Store.CreatePortAsync(NewPort(), null, Ct));

        Assert.Equal(("IpAddressGenerationFailure", 409), (full.Type, full.HttpStatus));
    }

    [Fact]
    public async Task DeleteNetwork_WithAPort_NetworkInUseUntilThePortGoes()
    {
        await SeedAsync();
        var port = await Store.CreatePortAsync(NewPort(), null, Ct);

        var inUse = await Assert.ThrowsAsync<NeutronException>(() => Store.DeleteNetworkAsync(NetworkId, Ct));
        var subnetInUse = await Assert.ThrowsAsync<NeutronException>(() => Store.DeleteSubnetAsync(SubnetId, Ct));
        await Store.DeletePortAsync(port.Port.Id, Ct);
        await Store.DeleteNetworkAsync(NetworkId, Ct);

        Assert.Equal(("NetworkInUse", 409), (inUse.Type, inUse.HttpStatus));
        Assert.Equal(("SubnetInUse", 409), (subnetInUse.Type, subnetInUse.HttpStatus));
        Assert.Null(await Store.GetNetworkAsync(NetworkId, Ct));
        Assert.Empty(await Store.ListSubnetsAsync(NetworkId, Ct));
    }

    [Fact]
    public async Task CreateSubnet_OverlapsAnotherOfTheNetwork_InvalidInput()
    {
        await SeedAsync("10.0.0.0/24");

        var overlap = await Assert.ThrowsAsync<NeutronException>(() => Store.CreateSubnetAsync(new Subnet
        {
            Id = "sub-2", NetworkId = NetworkId, ProjectId = "p1", Cidr = "10.0.0.128/25",
        }, Ct));

        Assert.Equal(("InvalidInput", 400), (overlap.Type, overlap.HttpStatus));
        Assert.Single(await Store.ListSubnetsAsync(NetworkId, Ct));
    }

    [Fact]
    public async Task Bindings_LiveMigrationSequence_InactiveForTheDestinationThenActivatedThenTheSourceDeleted()
    {
        await SeedAsync();
        var port = await Store.CreatePortAsync(NewPort("compute:nova"), null, Ct);
        var source = new BindingChange("host-a", VifTypes.Bridge, [], "normal", []);
        var dest = source with { Host = "host-b" };
        await Store.UpdatePortAsync(port.Port.Id, p => p, null, source, Ct);

        var inactive = await Store.CreateBindingAsync(port.Port.Id, dest, Ct);
        var twice = await Assert.ThrowsAsync<NeutronException>(() => Store.CreateBindingAsync(port.Port.Id, dest, Ct));
        var beforeSwitch = (await Store.GetPortAsync(port.Port.Id, Ct))!.ActiveBinding!.Host;
        await Store.ActivateBindingAsync(port.Port.Id, "host-b", Ct);
        var again = await Assert.ThrowsAsync<NeutronException>(() => Store.ActivateBindingAsync(port.Port.Id, "host-b", Ct));
        await Store.DeleteBindingAsync(port.Port.Id, "host-a", Ct);

        Assert.Equal(PortBindingStatus.Inactive, inactive.Status);
        Assert.Equal(("PortBindingAlreadyExists", 409), (twice.Type, twice.HttpStatus));
        Assert.Equal("host-a", beforeSwitch);
        Assert.Equal(("PortBindingAlreadyActive", 409), (again.Type, again.HttpStatus));
        var after = (await Store.GetPortAsync(port.Port.Id, Ct))!;
        Assert.Equal(("host-b", PortBindingStatus.Active), (Assert.Single(after.Bindings).Host, after.Bindings[0].Status));
        Assert.Empty(await Store.ListBindingsOnHostAsync("host-a", Ct));
    }

    [Fact]
    public async Task UpdatePort_BindingHostChangedOrCleared_TheActiveBindingFollows()
    {
        await SeedAsync();
        var port = await Store.CreatePortAsync(NewPort(), null, Ct);
        var binding = new BindingChange("host-a", VifTypes.Bridge, [], "normal", []);

        await Store.UpdatePortAsync(port.Port.Id, p => p, null, binding, Ct);
        var moved = await Store.UpdatePortAsync(port.Port.Id, p => p, null, binding with { Host = "host-b" }, Ct);
        var cleared = await Store.UpdatePortAsync(port.Port.Id, p => p with { DeviceId = "" }, null, binding with { Host = "" }, Ct);

        Assert.Equal("host-b", Assert.Single(moved.Bindings).Host);
        Assert.Empty(cleared.Bindings);
    }

    [Fact]
    public async Task ListPorts_ByDeviceAndInPages_FollowsTheMarker()
    {
        await SeedAsync();
        var mine = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            var port = NewPort() with { DeviceId = i < 3 ? "server-1" : "server-2" };
            await Store.CreatePortAsync(port, null, Ct);
            if (i < 3)
            {
                mine.Add(port.Id);
            }
        }

        var byDevice = await Store.ListPortsAsync(new PortQuery { DeviceIds = ["server-1"] }, Ct);
        var page1 = await Store.ListPortsAsync(new PortQuery { Limit = 2 }, Ct);
        var page2 = await Store.ListPortsAsync(new PortQuery { Limit = 2, Marker = page1[^1].Port.Id }, Ct);

        Assert.Equal(mine.Order(StringComparer.Ordinal), byDevice.Select(p => p.Port.Id));
        Assert.Equal(4, page1.Concat(page2).Select(p => p.Port.Id).Distinct().Count());
        Assert.True(string.CompareOrdinal(page1[^1].Port.Id, page2[0].Port.Id) < 0);
    }
}
