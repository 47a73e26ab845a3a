namespace Ferry.Core.Domain;

/// <summary>
/// One of an instance's network interfaces as its info cache keeps it (Nova's network model VIF): the port, its MAC,
/// its network and fixed IPs. The server view's <c>addresses</c> and the driver's NIC come from here, not from the
/// network service, so neither waits on it.
/// </summary>
public sealed record Vif
{
    /// <summary>The port's id.</summary>
    public required string Id { get; init; }
    public required string MacAddress { get; init; }
    public required string NetworkId { get; init; }
    /// <summary>The network's name: the key of the server's <c>addresses</c>.</summary>
    public required string NetworkLabel { get; init; }
    public int Mtu { get; init; } = 1500;
    public List<VifIp> Ips { get; init; } = [];
    public string VifType { get; init; } = "bridge";
    /// <summary>The user gave this port at create: a delete unbinds it instead of deleting it (Nova's preserve_on_delete).</summary>
    public bool PreserveOnDelete { get; init; }

    /// <summary>The host's device for this port: <c>tap</c> and the port id's first 11 characters (Nova's NIC_NAME_LEN 14).</summary>
    public string DeviceName => "tap" + Id[..Math.Min(11, Id.Length)];
}

/// <summary>
/// A fixed IPv4 address and the subnet it belongs to: its CIDR, gateway, whether a DHCP server hands the address out
/// (else the guest configures it from the config drive's network_data.json) and its DNS servers.
/// </summary>
public sealed record VifIp(string Address, string SubnetId, string Cidr, string? Gateway, bool Dhcp = false, IReadOnlyList<string>? Dns = null);

/// <summary>
/// One entry of a boot request's <c>networks</c>: a network to make a port on (with an optional fixed IP), or a port
/// the user made. Exactly one of <see cref="NetworkId"/> and <see cref="PortId"/> is set.
/// </summary>
public sealed record RequestedNetwork
{
    public string? NetworkId { get; init; }
    public string? PortId { get; init; }
    public string? FixedIp { get; init; }
}
