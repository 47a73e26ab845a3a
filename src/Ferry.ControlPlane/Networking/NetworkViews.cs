using System.Globalization;
using System.Text.Json.Nodes;
using Ferry.Core.Networking;

namespace Ferry.ControlPlane.Networking;

/// <summary>Networks, subnets, ports and bindings as Neutron's API shows them (ML2 with its default extensions).</summary>
internal static class NetworkViews
{
    /// <summary>Neutron's timestamp format (standard-attr-timestamp): seconds, UTC, a Z.</summary>
    public static string Time(DateTimeOffset value) => value.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    public static JsonObject Network(Core.Networking.Network n, IEnumerable<string> subnetIds, bool admin)
    {
        var view = new JsonObject
        {
            ["id"] = n.Id,
            ["name"] = n.Name,
            ["tenant_id"] = n.ProjectId,
            ["project_id"] = n.ProjectId,
            ["admin_state_up"] = n.AdminStateUp,
            ["mtu"] = n.Mtu,
            ["status"] = "ACTIVE",
            ["subnets"] = new JsonArray([.. subnetIds.Select(s => (JsonNode)JsonValue.Create(s))]),
            ["shared"] = n.Shared,
            ["availability_zone_hints"] = new JsonArray(),
            ["availability_zones"] = new JsonArray("nova"),
            ["ipv4_address_scope"] = null,
            ["ipv6_address_scope"] = null,
            ["router:external"] = n.External,
            ["description"] = n.Description,
            ["port_security_enabled"] = n.PortSecurityEnabled,
            ["is_default"] = false,
            ["l2_adjacency"] = true,
            ["tags"] = new JsonArray(),
            ["created_at"] = Time(n.CreatedAt),
            ["updated_at"] = Time(n.UpdatedAt),
            ["revision_number"] = n.RevisionNumber,
        };
        if (admin)
        {
            // The provider extension's attributes are the admin's to see (Neutron's policy).
            view["provider:network_type"] = "flat";
            view["provider:physical_network"] = "ferry";
            view["provider:segmentation_id"] = null;
        }
        return view;
    }

    public static JsonObject Subnet(Core.Networking.Subnet s) => new()
    {
        ["id"] = s.Id,
        ["name"] = s.Name,
        ["tenant_id"] = s.ProjectId,
        ["project_id"] = s.ProjectId,
        ["network_id"] = s.NetworkId,
        ["ip_version"] = 4,
        ["subnetpool_id"] = null,
        ["enable_dhcp"] = s.EnableDhcp,
        ["ipv6_ra_mode"] = null,
        ["ipv6_address_mode"] = null,
        ["gateway_ip"] = s.GatewayIp,
        ["cidr"] = s.Cidr,
        ["allocation_pools"] = new JsonArray([.. s.AllocationPools.Select(p => (JsonNode)new JsonObject { ["start"] = p.Start, ["end"] = p.End })]),
        ["host_routes"] = new JsonArray([.. s.HostRoutes.Select(r => (JsonNode)new JsonObject { ["destination"] = r.Destination, ["nexthop"] = r.Nexthop })]),
        ["dns_nameservers"] = new JsonArray([.. s.DnsNameservers.Select(d => (JsonNode)JsonValue.Create(d))]),
        ["description"] = s.Description,
        ["service_types"] = new JsonArray(),
        ["segment_id"] = null,
        ["tags"] = new JsonArray(),
        ["created_at"] = Time(s.CreatedAt),
        ["updated_at"] = Time(s.UpdatedAt),
        ["revision_number"] = s.RevisionNumber,
    };

    public static JsonObject Port(PortWithBindings pb, bool admin)
    {
        var p = pb.Port;
        var active = pb.ActiveBinding;
        var view = new JsonObject
        {
            ["id"] = p.Id,
            ["name"] = p.Name,
            ["network_id"] = p.NetworkId,
            ["tenant_id"] = p.ProjectId,
            ["project_id"] = p.ProjectId,
            ["mac_address"] = p.MacAddress,
            ["admin_state_up"] = p.AdminStateUp,
            ["status"] = Status(pb),
            ["device_id"] = p.DeviceId,
            ["device_owner"] = p.DeviceOwner,
            ["fixed_ips"] = new JsonArray([.. p.FixedIps.Select(ip => (JsonNode)new JsonObject { ["subnet_id"] = ip.SubnetId, ["ip_address"] = ip.IpAddress })]),
            ["allowed_address_pairs"] = new JsonArray(),
            ["extra_dhcp_opts"] = new JsonArray(),
            ["security_groups"] = new JsonArray(),
            ["description"] = p.Description,
            ["binding:vnic_type"] = p.VnicType,
            ["port_security_enabled"] = p.PortSecurityEnabled,
            ["qos_policy_id"] = null,
            ["qos_network_policy_id"] = null,
            ["ip_allocation"] = "immediate",
            ["dns_name"] = "",
            ["dns_assignment"] = new JsonArray(),
            ["propagate_uplink_status"] = false,
            ["tags"] = new JsonArray(),
            ["created_at"] = Time(p.CreatedAt),
            ["updated_at"] = Time(p.UpdatedAt),
            ["revision_number"] = p.RevisionNumber,
        };
        if (admin)
        {
            // Neutron shows where and how a port is bound to admins only.
            view["binding:host_id"] = active?.Host ?? "";
            view["binding:vif_type"] = active?.VifType ?? VifTypes.Unbound;
            view["binding:vif_details"] = Details(active?.VifDetails);
            view["binding:profile"] = Details(active?.Profile);
        }
        return view;
    }

    /// <summary>ACTIVE once bound to a host and up; DOWN otherwise (no agent reports wiring here).</summary>
    public static string Status(PortWithBindings pb) =>
        pb.Port.AdminStateUp && pb.ActiveBinding is { Host.Length: > 0, VifType: not VifTypes.Unbound } ? "ACTIVE" : "DOWN";

    public static JsonObject Binding(PortBinding b) => new()
    {
        ["host"] = b.Host,
        ["vif_type"] = b.VifType,
        ["vif_details"] = Details(b.VifDetails),
        ["vnic_type"] = b.VnicType,
        ["profile"] = Details(b.Profile),
        ["status"] = b.Status,
    };

    /// <summary>A string map as JSON, with "true"/"false" as booleans (Neutron's vif_details carry port_filter: true).</summary>
    private static JsonObject Details(Dictionary<string, string>? values)
    {
        var details = new JsonObject();
        foreach (var (key, value) in values ?? [])
        {
            details[key] = value switch { "true" => true, "false" => false, _ => value };
        }
        return details;
    }
}
