using System.Net;
using System.Text.Json.Nodes;
using Ferry.Core.Domain;
using Ferry.Host;

namespace Ferry.FunctionalTests.Flows;

/// <summary>Fake hosts that each have their own address: compute1 127.0.0.2, compute2 127.0.0.3, compute3 127.0.0.4.</summary>
public sealed class HostAddressFerryFixture : FerryFixture
{
    public static string AddressOf(string host) => "127.0.0." + (int.Parse(host["compute".Length..], System.Globalization.CultureInfo.InvariantCulture) + 1);

    protected override void Configure(AllInOne ferry) => ferry.ConfigureCompute = o => o.MyIp = AddressOf(o.Host);
}

/// <summary>
/// Nova's my_ip and live_migration_inbound_addr: every address a move uses comes from the host that owns it, carried
/// in the RPC messages (the migrate data, the migration's dest_host), never a hard-coded 127.0.0.1.
/// </summary>
public sealed class HostAddressTests(HostAddressFerryFixture fixture) : FlowTest<HostAddressFerryFixture>(fixture)
{
    [Fact]
    public async Task HypervisorDetail_HostsWithTheirOwnMyIp_ShowsEachHostIp()
    {
        var (status, body) = await Admin.GetAsync("os-hypervisors/detail");

        Assert.Equal(HttpStatusCode.OK, status);
        var ips = body!["hypervisors"]!.AsArray().ToDictionary(h => h!["hypervisor_hostname"]!.GetValue<string>(), h => h!["host_ip"]!.GetValue<string>());
        Assert.Equal("127.0.0.2", ips["compute1"]);
        Assert.Equal("127.0.0.3", ips["compute2"]);
    }

    [Fact]
    public async Task LiveMigrate_HostsWithTheirOwnAddresses_SourceSendsToTheDestinationsInboundAddress()
    {
        var id = await BootAsync("compute1");

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        // The fake source refuses a stream to any address but the one the destination put in the migrate data.
        Assert.True(migration.Status == MigrationStatus.Completed, $"{migration.Status}: {LastFault(id)}");
        Assert.Equal("compute2", instance.Host);
    }

    [Fact]
    public async Task LiveMigrate_InboundAddressApartFromMyIp_SourceSendsToTheInboundAddress()
    {
        await Fixture.Ferry.StartComputeAsync("compute3", CancellationToken.None, o => o.LiveMigrationInboundAddress = "127.0.0.14");
        try
        {
            var id = await BootAsync("compute1");

            Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute3"));
            var (instance, migration) = await WaitForMoveEndAsync(id);

            Assert.True(migration.Status == MigrationStatus.Completed, $"{migration.Status}: {LastFault(id)}");
            Assert.Equal("compute3", instance.Host);
        }
        finally
        {
            await Fixture.Ferry.StartComputeAsync("compute3", CancellationToken.None);
        }
    }

    [Fact]
    public async Task ColdMigrate_HostsWithTheirOwnAddresses_MigrationRecordsTheDestinationsMyIp()
    {
        var id = await BootAsync("compute1");

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"migrate": {"host": "compute2"}}""")!)).Status);
        var (_, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal(MigrationStatus.Finished, migration.Status);
        Assert.Equal("127.0.0.3", migration.DestHost);
        var listed = (await Admin.GetAsync($"os-migrations?instance_uuid={id}", "2.80")).Body!["migrations"]!.AsArray();
        Assert.Equal("127.0.0.3", Assert.Single(listed)!["dest_host"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.NoContent, (await Admin.ActionAsync(id, JsonNode.Parse("""{"confirmResize": null}""")!)).Status);
        await WaitForAsync(id, i => i.VmState == VmState.Active, "ACTIVE after confirm");
    }
}
