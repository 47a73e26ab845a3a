using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Networking;
using Microsoft.AspNetCore.Http;
using static Ferry.ControlPlane.Networking.NetworkEndpoints;

namespace Ferry.ControlPlane.Networking;

/// <summary><c>/v2.0/subnets</c>: IPv4 only; a subnet is visible with its network and changed by the network's owner.</summary>
internal static class SubnetHandlers
{
    private static readonly string[] s_createKeys =
        ["name", "network_id", "tenant_id", "project_id", "ip_version", "cidr", "gateway_ip", "allocation_pools", "dns_nameservers", "host_routes",
         "enable_dhcp", "description", "subnetpool_id", "prefixlen", "ipv6_ra_mode", "ipv6_address_mode", "service_types", "use_default_subnetpool", "segment_id"];

    private static readonly string[] s_updateKeys = ["name", "gateway_ip", "allocation_pools", "dns_nameservers", "host_routes", "enable_dhcp", "description"];

    public static async Task<IResult> ListAsync(HttpContext http, NetworkStore store)
    {
        var caller = Caller(http);
        var visible = (await store.ListNetworksAsync(http.RequestAborted)).Where(n => NetworkHandlers.CanSee(caller, n)).Select(n => n.Id).ToHashSet();
        var subnets = (await store.ListSubnetsAsync(null, http.RequestAborted)).Where(s => visible.Contains(s.NetworkId)).OrderBy(s => s.Id, StringComparer.Ordinal);
        return Page(http, "subnets", subnets.Select(s => (s.Id, NetworkViews.Subnet(s))));
    }

    public static async Task<IResult> ShowAsync(HttpContext http, string id) => One(http, "subnet", NetworkViews.Subnet(await VisibleAsync(http, id)));

    public static async Task<IResult> CreateAsync(HttpContext http, NetworkStore store)
    {
        var caller = Caller(http);
        var body = await BodyAsync(http, "subnet");
        OnlyKnown(body, s_createKeys);
        var networkId = Text(body, "network_id") ?? throw NeutronException.BadRequest("Failed to parse request. Required attribute 'network_id' not specified");
        var network = await NetworkHandlers.OwnedAsync(http, networkId, "create_subnet");
        if (body["ip_version"] is { } version && !(version.GetValueKind() == JsonValueKind.Number && version.GetValue<JsonElement>().TryGetInt32(out var v) && v == 4))
        {
            throw NeutronException.BadRequest($"Invalid input for ip_version. Reason: '{version.ToJsonString().Trim('"')}' is not in [4] (this network service serves IPv4 subnets).");
        }
        var cidrText = Text(body, "cidr") ?? throw NeutronException.BadRequest("Bad subnets request: a subnetpool must be specified in the absence of a cidr.");
        if (!Ipv4Cidr.TryParse(cidrText, out var parsed) || parsed.Value.PrefixLength > 30)
        {
            throw NeutronException.BadRequest($"Invalid input for cidr. Reason: '{cidrText}' is not a valid IP subnet.");
        }
        var cidr = parsed.Value;
        var gateway = body.TryGetPropertyValue("gateway_ip", out var g)
            ? (g is null ? null : Address(Text(body, "gateway_ip")!, "gateway_ip"))
            : Ipv4.Format(cidr.FirstHost);
        CheckGateway(gateway, cidr);
        var pools = body["allocation_pools"] is { } poolsNode ? Pools(poolsNode, cidr, gateway) : DefaultPools(cidr, gateway);
        var now = Time(http).GetUtcNow();
        var subnet = new Core.Networking.Subnet
        {
            Id = NewId(),
            NetworkId = network.Id,
            ProjectId = NetworkHandlers.Owner(caller, body),
            Name = Text(body, "name") ?? "",
            Description = Text(body, "description") ?? "",
            Cidr = cidr.ToString(),
            GatewayIp = gateway,
            AllocationPools = pools,
            EnableDhcp = Bool(body, "enable_dhcp") ?? true,
            DnsNameservers = body["dns_nameservers"] is { } dns ? Nameservers(dns) : [],
            HostRoutes = body["host_routes"] is { } routes ? Routes(routes) : [],
            CreatedAt = now,
            UpdatedAt = now,
            RevisionNumber = 0,
        };
        await store.CreateSubnetAsync(subnet, http.RequestAborted);
        return One(http, "subnet", NetworkViews.Subnet(subnet), 201);
    }

    public static async Task<IResult> UpdateAsync(HttpContext http, string id)
    {
        var body = await BodyAsync(http, "subnet");
        OnlyKnown(body, s_updateKeys);
        var current = await OwnedAsync(http, id, "update_subnet");
        Ipv4Cidr.TryParse(current.Cidr, out var cidr);
        var gateway = body.TryGetPropertyValue("gateway_ip", out var g) ? (g is null ? null : Address(Text(body, "gateway_ip")!, "gateway_ip")) : current.GatewayIp;
        CheckGateway(gateway, cidr!.Value);
        var pools = body["allocation_pools"] is { } poolsNode ? Pools(poolsNode, cidr.Value, gateway) : current.AllocationPools;
        if (!body.ContainsKey("allocation_pools") && gateway is not null && InPools(gateway, pools) && gateway != current.GatewayIp)
        {
            throw new NeutronException(409, "GatewayConflictWithAllocationPools", $"Gateway ip {gateway} conflicts with allocation pool {PoolText(pools)}.");
        }
        var (name, description, dhcp) = (Text(body, "name"), Text(body, "description"), Bool(body, "enable_dhcp"));
        var dns = body["dns_nameservers"] is { } d ? Nameservers(d) : null;
        var routes = body["host_routes"] is { } r ? Routes(r) : null;
        var now = Time(http).GetUtcNow();
        var updated = await Store(http).UpdateSubnetAsync(id, s => s with
        {
            Name = name ?? s.Name,
            Description = description ?? s.Description,
            GatewayIp = gateway,
            AllocationPools = pools,
            EnableDhcp = dhcp ?? s.EnableDhcp,
            DnsNameservers = dns ?? s.DnsNameservers,
            HostRoutes = routes ?? s.HostRoutes,
            UpdatedAt = now,
            RevisionNumber = s.RevisionNumber + 1,
        }, http.RequestAborted);
        return One(http, "subnet", NetworkViews.Subnet(updated));
    }

    public static async Task<IResult> DeleteAsync(HttpContext http, string id)
    {
        var subnet = await OwnedAsync(http, id, "delete_subnet");
        await Store(http).DeleteSubnetAsync(subnet.Id, http.RequestAborted);
        return Results.NoContent();
    }

    public static async Task<Core.Networking.Subnet> VisibleAsync(HttpContext http, string id)
    {
        var subnet = await Store(http).GetSubnetAsync(id, http.RequestAborted) ?? throw NeutronException.SubnetNotFound(id);
        return await Store(http).GetNetworkAsync(subnet.NetworkId, http.RequestAborted) is { } n && NetworkHandlers.CanSee(Caller(http), n)
            ? subnet
            : throw NeutronException.SubnetNotFound(id);
    }

    private static async Task<Core.Networking.Subnet> OwnedAsync(HttpContext http, string id, string rule)
    {
        var subnet = await VisibleAsync(http, id);
        _ = await NetworkHandlers.OwnedAsync(http, subnet.NetworkId, rule);
        return subnet;
    }

    /// <summary>A gateway must be a host address of the subnet (Neutron's _validate_gw_out_of_pools and gateway checks).</summary>
    private static void CheckGateway(string? gateway, Ipv4Cidr cidr)
    {
        if (gateway is not null && (!Ipv4.TryParse(gateway, out var gw) || gw < cidr.FirstHost || gw > cidr.LastHost))
        {
            throw NeutronException.InvalidInput("Gateway is not valid on subnet");
        }
    }

    private static string Address(string text, string attribute) =>
        Ipv4.TryParse(text, out var a) ? Ipv4.Format(a) : throw NeutronException.BadRequest($"Invalid input for {attribute}. Reason: '{text}' is not a valid IP address.");

    /// <summary>Neutron's default pools: every host address of the subnet except the gateway's.</summary>
    internal static List<IpRange> DefaultPools(Ipv4Cidr cidr, string? gateway)
    {
        var (first, last) = (cidr.FirstHost, cidr.LastHost);
        if (gateway is null || !Ipv4.TryParse(gateway, out var gw) || gw < first || gw > last)
        {
            return [new IpRange(Ipv4.Format(first), Ipv4.Format(last))];
        }
        var pools = new List<IpRange>();
        if (gw > first)
        {
            pools.Add(new IpRange(Ipv4.Format(first), Ipv4.Format(gw - 1)));
        }
        if (gw < last)
        {
            pools.Add(new IpRange(Ipv4.Format(gw + 1), Ipv4.Format(last)));
        }
        return pools;
    }

    private static List<IpRange> Pools(JsonNode node, Ipv4Cidr cidr, string? gateway)
    {
        if (node is not JsonArray array)
        {
            throw NeutronException.BadRequest($"Invalid input for allocation_pools. Reason: '{node.ToJsonString()}' is not a list.");
        }
        var pools = new List<(uint Start, uint End)>();
        foreach (var item in array)
        {
            if (item is not JsonObject o || o["start"]?.GetValueKind() != JsonValueKind.String || o["end"]?.GetValueKind() != JsonValueKind.String
                || !Ipv4.TryParse(o["start"]!.GetValue<string>(), out var start) || !Ipv4.TryParse(o["end"]!.GetValue<string>(), out var end))
            {
                throw NeutronException.BadRequest($"Invalid input for allocation_pools. Reason: '{item?.ToJsonString()}' is not a valid allocation pool (start and end IP addresses).");
            }
            if (!cidr.Contains(start) || !cidr.Contains(end) || start > end)
            {
                throw new NeutronException(400, "OutOfBoundsAllocationPool",
                    $"The allocation pool {Ipv4.Format(start)}-{Ipv4.Format(end)} spans beyond the subnet cidr {cidr}.");
            }
            if (pools.FirstOrDefault(p => start <= p.End && p.Start <= end) is { End: > 0 } clash)
            {
                throw new NeutronException(400, "OverlappingAllocationPools",
                    $"Found overlapping allocation pools: {Ipv4.Format(start)}-{Ipv4.Format(end)} and {Ipv4.Format(clash.Start)}-{Ipv4.Format(clash.End)} for subnet {cidr}.");
            }
            pools.Add((start, end));
        }
        var ranges = pools.Select(p => new IpRange(Ipv4.Format(p.Start), Ipv4.Format(p.End))).ToList();
        if (gateway is not null && InPools(gateway, ranges))
        {
            throw new NeutronException(409, "GatewayConflictWithAllocationPools", $"Gateway ip {gateway} conflicts with allocation pool {PoolText(ranges)}.");
        }
        return ranges;
    }

    private static bool InPools(string address, List<IpRange> pools) =>
        Ipv4.TryParse(address, out var a) && pools.Any(p => Ipv4.TryParse(p.Start, out var s) && Ipv4.TryParse(p.End, out var e) && a >= s && a <= e);

    private static string PoolText(List<IpRange> pools) => string.Join(", ", pools.Select(p => $"{p.Start}-{p.End}"));

    private static List<string> Nameservers(JsonNode node) =>
        node is JsonArray array && array.All(a => a?.GetValueKind() == JsonValueKind.String)
            ? [.. array.Select(a => Address(a!.GetValue<string>(), "dns_nameservers"))]
            : throw NeutronException.BadRequest($"Invalid input for dns_nameservers. Reason: '{node.ToJsonString()}' is not a list of IP addresses.");

    private static List<HostRoute> Routes(JsonNode node)
    {
        if (node is not JsonArray array)
        {
            throw NeutronException.BadRequest($"Invalid input for host_routes. Reason: '{node.ToJsonString()}' is not a list.");
        }
        return [.. array.Select(item => item is JsonObject o && o["destination"]?.GetValueKind() == JsonValueKind.String && o["nexthop"]?.GetValueKind() == JsonValueKind.String
            && Ipv4Cidr.TryParse(o["destination"]!.GetValue<string>(), out var destination)
            ? new HostRoute(destination.Value.ToString(), Address(o["nexthop"]!.GetValue<string>(), "host_routes"))
            : throw NeutronException.BadRequest($"Invalid input for host_routes. Reason: '{item?.ToJsonString()}' is not a valid host route (destination CIDR and nexthop)."))];
    }
}
