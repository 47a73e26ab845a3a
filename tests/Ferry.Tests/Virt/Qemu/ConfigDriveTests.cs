using System.Text.Json.Nodes;
using Ferry.Core.Domain;
using Ferry.Virt;
using Ferry.Virt.Qemu;

namespace Ferry.Tests.Virt.Qemu;

/// <summary>network_data.json as Nova's get_network_metadata writes it, which cloud-init configures the guest's NICs from.</summary>
public sealed class ConfigDriveTests
{
    private static GuestSpec Guest(params Vif[] vifs) =>
        new() { Uuid = "u1", Name = "instance-00000001", Vcpus = 1, MemoryMb = 64, RootGb = 1, ImageRef = "img", Vifs = vifs };

    private static Vif Vif(string portId, bool dhcp) => new()
    {
        Id = portId, MacAddress = "fa:16:3e:00:00:01", NetworkId = "net-1", NetworkLabel = "private", Mtu = 1450,
        Ips = [new VifIp("192.168.233.5", "sub-1", "192.168.233.0/24", "192.168.233.1", dhcp, ["192.168.233.53"])],
    };

    [Fact]
    public void NetworkData_SubnetWithoutDhcp_StaticAddressNetmaskDefaultRouteAndDns()
    {
        var data = ConfigDrive.NetworkData(Guest(Vif("1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809", dhcp: false)));

        Assert.Equal("""
            {"links":[{"id":"tap1a2b3c4d-5e","vif_id":"1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809","type":"bridge","mtu":1450,"ethernet_mac_address":"fa:16:3e:00:00:01"}],"networks":[{"id":"network0","type":"ipv4","link":"tap1a2b3c4d-5e","network_id":"net-1","ip_address":"192.168.233.5","netmask":"255.255.255.0","routes":[{"network":"0.0.0.0","netmask":"0.0.0.0","gateway":"192.168.233.1"}],"services":[{"type":"dns","address":"192.168.233.53"}]}],"services":[{"type":"dns","address":"192.168.233.53"}]}
            """, data.ToJsonString());
    }

    [Fact]
    public void NetworkData_SubnetWithDhcp_OnlyTheDhcpFormAndNoMtu()
    {
        var data = ConfigDrive.NetworkData(Guest(Vif("port-a", dhcp: true), Vif("port-b", dhcp: true)));

        Assert.Equal(["network0", "network1"], data["networks"]!.AsArray().Select(n => (string)n!["id"]!));
        var network = data["networks"]![0]!.AsObject();
        Assert.Equal(["id", "link", "network_id", "type"], network.Select(p => p.Key).Order());
        Assert.Equal("ipv4_dhcp", (string)network["type"]!);
        Assert.Null(data["links"]![0]!["mtu"]);
        Assert.Empty(data["services"]!.AsArray());
    }

    [Fact]
    public void NetworkData_NoNics_EmptyLists()
    {
        Assert.Equal("""{"links":[],"networks":[],"services":[]}""", ConfigDrive.NetworkData(Guest()).ToJsonString());
    }
}
