namespace Ferry.Core.Networking;

/// <summary>A Neutron network: one L2 segment (Ferry serves flat networks only).</summary>
public sealed record Network
{
    public required string Id { get; init; }
    public required string ProjectId { get; init; }
    public string Name { get; init; } = "";
    public string Description { get; init; } = "";
    public bool AdminStateUp { get; init; } = true;
    /// <summary>Visible to and usable by every project.</summary>
    public bool Shared { get; init; }
    public bool External { get; init; }
    public int Mtu { get; init; } = 1500;
    public bool PortSecurityEnabled { get; init; } = true;
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }
    public int RevisionNumber { get; init; }
}

/// <summary>A Neutron subnet: an IPv4 range of a network that ports take their fixed IPs from.</summary>
public sealed record Subnet
{
    public required string Id { get; init; }
    public required string NetworkId { get; init; }
    public required string ProjectId { get; init; }
    public string Name { get; init; } = "";
    public string Description { get; init; } = "";
    /// <summary>The subnet in CIDR notation, normalised (<c>10.0.0.0/24</c>).</summary>
    public required string Cidr { get; init; }
    /// <summary>Null when the subnet has no gateway (<c>--gateway none</c>).</summary>
    public string? GatewayIp { get; init; }
    public List<IpRange> AllocationPools { get; init; } = [];
    public bool EnableDhcp { get; init; } = true;
    public List<string> DnsNameservers { get; init; } = [];
    public List<HostRoute> HostRoutes { get; init; } = [];
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }
    public int RevisionNumber { get; init; }
}

/// <summary>An inclusive range of addresses (an allocation pool).</summary>
public sealed record IpRange(string Start, string End);

public sealed record HostRoute(string Destination, string Nexthop);

/// <summary>A Neutron port: a MAC and fixed IPs on a network, owned by a device (a server's uuid) and bound to a host.</summary>
public sealed record Port
{
    public required string Id { get; init; }
    public required string NetworkId { get; init; }
    public required string ProjectId { get; init; }
    public string Name { get; init; } = "";
    public string Description { get; init; } = "";
    public required string MacAddress { get; init; }
    public bool AdminStateUp { get; init; } = true;
    public List<FixedIp> FixedIps { get; init; } = [];
    public string DeviceId { get; init; } = "";
    public string DeviceOwner { get; init; } = "";
    public bool PortSecurityEnabled { get; init; } = true;
    public string VnicType { get; init; } = "normal";
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }
    public int RevisionNumber { get; init; }
}

public sealed record FixedIp(string SubnetId, string IpAddress);

/// <summary>
/// A port's binding to a host (ML2's port binding): at most one is ACTIVE, and the port's <c>binding:*</c>
/// attributes are that one's; a live migration adds an INACTIVE one for the destination and activates it at switch-over.
/// </summary>
public sealed record PortBinding
{
    public required string PortId { get; init; }
    public required string Host { get; init; }
    /// <summary><see cref="PortBindingStatus.Active"/> or <see cref="PortBindingStatus.Inactive"/>.</summary>
    public required string Status { get; init; }
    public string VifType { get; init; } = VifTypes.Unbound;
    public Dictionary<string, string> VifDetails { get; init; } = [];
    public string VnicType { get; init; } = "normal";
    public Dictionary<string, string> Profile { get; init; } = [];
}

public static class PortBindingStatus
{
    public const string Active = "ACTIVE";
    public const string Inactive = "INACTIVE";
}

/// <summary>Neutron's <c>binding:vif_type</c> values Ferry uses.</summary>
public static class VifTypes
{
    public const string Unbound = "unbound";
    /// <summary>A tap device on a Linux bridge (Neutron's linuxbridge mechanism driver).</summary>
    public const string Bridge = "bridge";
}

/// <summary>A port with its bindings, as the network service returns it.</summary>
public sealed record PortWithBindings(Port Port, List<PortBinding> Bindings)
{
    public PortBinding? ActiveBinding => Bindings.FirstOrDefault(b => b.Status == PortBindingStatus.Active);
}
