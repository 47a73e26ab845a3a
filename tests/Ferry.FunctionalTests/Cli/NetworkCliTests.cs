using System.Text.Json.Nodes;

namespace Ferry.FunctionalTests.Cli;

/// <summary>
/// <c>openstack network/subnet/port</c> and <c>server create --nic/--network/--port</c> through the real client against the
/// network API (the Neutron subset), in both shapes.
/// </summary>
public sealed class NetworkCliTests(CliFixture fixture) : IClassFixture<CliFixture>
{
    private Task<JsonNode> AdminAsync(params string[] args) => fixture.AdminJsonAsync("2.latest", args);

    [Fact]
    public async Task Network_subnet_port_and_servers_on_them_then_everything_deleted()
    {
        fixture.RequireOpenStack();
        var network = await AdminAsync("network", "create", "cli-net");
        var subnet = await AdminAsync("subnet", "create", "--network", "cli-net", "--subnet-range", "10.77.0.0/24", "cli-subnet");
        var port = await AdminAsync("port", "create", "--network", "cli-net", "--fixed-ip", "subnet=cli-subnet,ip-address=10.77.0.50", "cli-port");

        Assert.Equal(("cli-net", "ACTIVE"), ((string?)network["name"], (string?)network["status"]));
        Assert.Equal(("10.77.0.0/24", "10.77.0.1"), ((string?)subnet["cidr"], (string?)subnet["gateway_ip"]));
        Assert.Equal("10.77.0.2", (string?)subnet["allocation_pools"]![0]!["start"]);
        Assert.Equal("10.77.0.50", (string?)port["fixed_ips"]![0]!["ip_address"]);
        Assert.Matches("^fa:16:3e(:[0-9a-f]{2}){3}$", (string)port["mac_address"]!);

        var byNetwork = await AdminAsync("server", "create", "--flavor", "m1.tiny", "--image", "ferry-test-guest", "--network", "cli-net", "--wait", "cli-on-net");
        var byPort = await AdminAsync("server", "create", "--flavor", "m1.tiny", "--image", "ferry-test-guest", "--port", "cli-port", "--wait", "cli-on-port");
        var onPrivate = await AdminAsync("server", "create", "--flavor", "m1.tiny", "--image", "ferry-test-guest", "--nic",
            $"net-id={(string)(await AdminAsync("network", "show", "private"))["id"]!}", "--wait", "cli-on-private");

        Assert.Equal(["10.77.0.2"], Addresses(await AdminAsync("server", "show", "cli-on-net"), "cli-net"));
        Assert.Equal(["10.77.0.50"], Addresses(await AdminAsync("server", "show", "cli-on-port"), "cli-net"));
        Assert.StartsWith("192.168.233.", Assert.Single(Addresses(await AdminAsync("server", "show", "cli-on-private"), "private")), StringComparison.Ordinal);
        var ports = (await AdminAsync("port", "list", "--server", "cli-on-net")).AsArray();
        Assert.Equal("ACTIVE", (string?)Assert.Single(ports)!["Status"]);
        var shown = await AdminAsync("port", "show", "cli-port");
        Assert.Equal(((string?)byPort["id"], (string?)byPort["OS-EXT-SRV-ATTR:host"]), ((string?)shown["device_id"], (string?)shown["binding_host_id"]));

        var inUse = await fixture.RunAsync(fixture.AdminEnv, "network", "delete", "cli-net");
        Assert.NotEqual(0, inUse.ExitCode);
        Assert.Contains("There are one or more ports still in use on the network", inUse.Stderr, StringComparison.Ordinal);

        foreach (var server in new[] { byNetwork, byPort, onPrivate })
        {
            await fixture.AdminRunAsync("2.latest", "server", "delete", "--wait", (string)server["id"]!);
        }
        var kept = await AdminAsync("port", "show", "cli-port");
        Assert.Equal(("", "DOWN"), ((string?)kept["device_id"], (string?)kept["status"]));
        await fixture.AdminRunAsync("2.latest", "port", "delete", "cli-port");
        await fixture.AdminRunAsync("2.latest", "network", "delete", "cli-net");
        Assert.DoesNotContain((await AdminAsync("network", "list")).AsArray(), n => (string?)n!["Name"] == "cli-net");
        Assert.DoesNotContain((await AdminAsync("subnet", "list")).AsArray(), s => (string?)s!["Name"] == "cli-subnet");
    }

    [Fact]
    public async Task Port_create_address_taken_or_outside_the_subnet_refused_in_one_line_and_nothing_made()
    {
        fixture.RequireOpenStack();
        var taken = await AdminAsync("port", "create", "--network", "private", "--fixed-ip", "ip-address=192.168.233.240", "cli-taken");

        var again = await fixture.RunAsync(fixture.AdminEnv, "port", "create", "--network", "private", "--fixed-ip", "ip-address=192.168.233.240", "cli-again");
        var outside = await fixture.RunAsync(fixture.AdminEnv, "port", "create", "--network", "private", "--fixed-ip", "ip-address=10.1.2.3", "cli-outside");

        Assert.NotEqual(0, again.ExitCode);
        Assert.Contains("IP address 192.168.233.240 already allocated in subnet", again.Stderr, StringComparison.Ordinal);
        Assert.NotEqual(0, outside.ExitCode);
        Assert.Contains("is not a valid IP for any of the subnets on the specified network", outside.Stderr, StringComparison.Ordinal);
        var names = (await AdminAsync("port", "list")).AsArray().Select(p => (string?)p!["Name"]).ToList();
        Assert.DoesNotContain("cli-again", names);
        Assert.DoesNotContain("cli-outside", names);
        await fixture.AdminRunAsync("2.latest", "port", "delete", (string)taken["id"]!);
    }

    private static List<string> Addresses(JsonNode server, string network) =>
        [.. server["addresses"]![network]!.AsArray().Select(a => (string)a!)];
}
