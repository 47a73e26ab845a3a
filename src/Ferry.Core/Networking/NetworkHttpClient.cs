using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.Core.Errors;
using Ferry.Core.Identity;

namespace Ferry.Core.Networking;

/// <summary>
/// The compute agent's client of the network service (Neutron v2.0), as Nova's neutron API module: ports made, bound,
/// moved between hosts and released for its servers. The endpoint is configured or taken from the token's catalog
/// (type <c>network</c>); tokens come from a <see cref="KeystoneSession"/> (a new login after a 401) or are fixed (noauth2).
/// A Neutron error is rethrown as a <see cref="NeutronException"/> of the same type and status.
/// </summary>
public sealed class NetworkHttpClient
{
    private readonly ServiceApiCaller _api;

    /// <summary>A fixed token (noauth2) and a known endpoint.</summary>
    public NetworkHttpClient(HttpClient httpClient, Uri endpoint, string? authToken)
    {
        _api = new ServiceApiCaller(httpClient, null, authToken, endpoint, "network", Failure);
    }

    /// <summary>As a service: tokens from <paramref name="session"/>, the endpoint configured or from its catalog.</summary>
    public NetworkHttpClient(HttpClient httpClient, KeystoneSession session, Uri? endpoint = null)
    {
        _api = new ServiceApiCaller(httpClient, session, null, endpoint, "network", Failure);
    }

    public async Task<Network> GetNetworkAsync(string id, CancellationToken cancellationToken) =>
        NetworkJson.Network((await SendAsync(HttpMethod.Get, $"v2.0/networks/{Uri.EscapeDataString(id)}", null, cancellationToken))!["network"]!);

    public async Task<List<Subnet>> ListSubnetsAsync(string networkId, CancellationToken cancellationToken)
    {
        var body = await SendAsync(HttpMethod.Get, $"v2.0/subnets?network_id={Uri.EscapeDataString(networkId)}", null, cancellationToken);
        return [.. body!["subnets"]!.AsArray().Select(s => NetworkJson.Subnet(s!))];
    }

    public async Task<PortWithBindings> GetPortAsync(string id, CancellationToken cancellationToken) =>
        NetworkJson.Port((await SendAsync(HttpMethod.Get, $"v2.0/ports/{Uri.EscapeDataString(id)}", null, cancellationToken))!["port"]!);

    /// <summary>The ports a server owns (<c>device_id</c>).</summary>
    public async Task<List<PortWithBindings>> ListPortsOfDeviceAsync(string deviceId, CancellationToken cancellationToken)
    {
        var body = await SendAsync(HttpMethod.Get, $"v2.0/ports?device_id={Uri.EscapeDataString(deviceId)}", null, cancellationToken);
        return [.. body!["ports"]!.AsArray().Select(p => NetworkJson.Port(p!))];
    }

    /// <summary>POSTs a port with <paramref name="port"/>'s attributes (Neutron names: network_id, device_id, binding:host_id…).</summary>
    public async Task<PortWithBindings> CreatePortAsync(JsonObject port, CancellationToken cancellationToken) =>
        NetworkJson.Port((await SendAsync(HttpMethod.Post, "v2.0/ports", new JsonObject { ["port"] = port }, cancellationToken))!["port"]!);

    public async Task<PortWithBindings> UpdatePortAsync(string id, JsonObject changes, CancellationToken cancellationToken) =>
        NetworkJson.Port((await SendAsync(HttpMethod.Put, $"v2.0/ports/{Uri.EscapeDataString(id)}", new JsonObject { ["port"] = changes }, cancellationToken))!["port"]!);

    /// <summary>Deletes the port; one already gone is no error (a retried delete, or a user's).</summary>
    public async Task DeletePortAsync(string id, CancellationToken cancellationToken)
    {
        try
        {
            await SendAsync(HttpMethod.Delete, $"v2.0/ports/{Uri.EscapeDataString(id)}", null, cancellationToken);
        }
        catch (NeutronException ex) when (ex.HttpStatus == 404)
        {
        }
    }

    /// <summary>The port's bindings, active and inactive.</summary>
    public async Task<List<PortBinding>> ListBindingsAsync(string portId, CancellationToken cancellationToken)
    {
        var body = await SendAsync(HttpMethod.Get, $"v2.0/ports/{Uri.EscapeDataString(portId)}/bindings", null, cancellationToken);
        return [.. body!["bindings"]!.AsArray().Select(b => new PortBinding
        {
            PortId = portId,
            Host = b!["host"]?.GetValue<string>() ?? "",
            Status = b["status"]?.GetValue<string>() ?? PortBindingStatus.Inactive,
            VifType = b["vif_type"]?.GetValue<string>() ?? VifTypes.Unbound,
        })];
    }

    /// <summary>Adds an inactive binding of the port for <paramref name="host"/> (a live migration's destination).</summary>
    public async Task CreateBindingAsync(string portId, string host, CancellationToken cancellationToken) =>
        await SendAsync(HttpMethod.Post, $"v2.0/ports/{Uri.EscapeDataString(portId)}/bindings",
            new JsonObject { ["binding"] = new JsonObject { ["host"] = host } }, cancellationToken);

    /// <summary>Makes the port's binding for <paramref name="host"/> the active one; already active is no error (a retried switch-over).</summary>
    public async Task ActivateBindingAsync(string portId, string host, CancellationToken cancellationToken)
    {
        try
        {
            await SendAsync(HttpMethod.Put, $"v2.0/ports/{Uri.EscapeDataString(portId)}/bindings/{Uri.EscapeDataString(host)}/activate", null, cancellationToken);
        }
        catch (NeutronException ex) when (ex.Type == "PortBindingAlreadyActive")
        {
        }
    }

    /// <summary>Deletes the port's binding for <paramref name="host"/>; none there (or no port) is no error, as Nova's delete_port_binding.</summary>
    public async Task DeleteBindingAsync(string portId, string host, CancellationToken cancellationToken)
    {
        try
        {
            await SendAsync(HttpMethod.Delete, $"v2.0/ports/{Uri.EscapeDataString(portId)}/bindings/{Uri.EscapeDataString(host)}", null, cancellationToken);
        }
        catch (NeutronException ex) when (ex.HttpStatus == 404)
        {
        }
    }

    private Task<JsonNode?> SendAsync(HttpMethod method, string path, JsonNode? body, CancellationToken cancellationToken) =>
        _api.SendAsync(method, path, body, cancellationToken);

    /// <summary>Neutron's error as the exception of its type; anything else (no NeutronError body) as a 502 naming the call.</summary>
    private static FerryException Failure(HttpStatusCode status, string text, HttpMethod method, string path)
    {
        try
        {
            if (JsonNode.Parse(text)?["NeutronError"] is JsonObject error && error["type"]?.GetValue<string>() is { } type)
            {
                return new NeutronException((int)status, type, error["message"]?.GetValue<string>() ?? type);
            }
        }
        catch (JsonException)
        {
        }
        return new FerryException(string.Create(CultureInfo.InvariantCulture,
            $"The network service answered {(int)status} to {method} {path}: {(text.Length > 300 ? text[..300] : text)}"), 502);
    }
}

/// <summary>Neutron's JSON views read back into Ferry's records (what the compute agent needs of them).</summary>
public static class NetworkJson
{
    public static Network Network(JsonNode n) => new()
    {
        Id = Text(n, "id")!,
        ProjectId = Text(n, "project_id") ?? Text(n, "tenant_id") ?? "",
        Name = Text(n, "name") ?? "",
        Mtu = n["mtu"] is JsonValue mtu && mtu.TryGetValue<int>(out var m) ? m : 1500,
        Shared = n["shared"] is JsonValue shared && shared.GetValueKind() == JsonValueKind.True,
    };

    public static Subnet Subnet(JsonNode s) => new()
    {
        Id = Text(s, "id")!,
        NetworkId = Text(s, "network_id")!,
        ProjectId = Text(s, "project_id") ?? "",
        Name = Text(s, "name") ?? "",
        Cidr = Text(s, "cidr")!,
        GatewayIp = Text(s, "gateway_ip"),
        EnableDhcp = s["enable_dhcp"] is not JsonValue dhcp || dhcp.GetValueKind() != JsonValueKind.False,
        DnsNameservers = s["dns_nameservers"] is JsonArray dns ? [.. dns.Select(d => d!.GetValue<string>())] : [],
    };

    public static PortWithBindings Port(JsonNode p)
    {
        var port = new Port
        {
            Id = Text(p, "id")!,
            NetworkId = Text(p, "network_id")!,
            ProjectId = Text(p, "project_id") ?? Text(p, "tenant_id") ?? "",
            Name = Text(p, "name") ?? "",
            MacAddress = Text(p, "mac_address")!,
            DeviceId = Text(p, "device_id") ?? "",
            DeviceOwner = Text(p, "device_owner") ?? "",
            AdminStateUp = p["admin_state_up"] is not JsonValue up || up.GetValueKind() != JsonValueKind.False,
            FixedIps = p["fixed_ips"] is JsonArray ips ? [.. ips.Select(ip => new FixedIp(Text(ip!, "subnet_id")!, Text(ip!, "ip_address")!))] : [],
            VnicType = Text(p, "binding:vnic_type") ?? "normal",
        };
        // Only an admin sees where a port is bound; the agent is one.
        List<PortBinding> bindings = Text(p, "binding:host_id") is { Length: > 0 } host
            ? [new PortBinding { PortId = port.Id, Host = host, Status = PortBindingStatus.Active, VifType = Text(p, "binding:vif_type") ?? VifTypes.Unbound }]
            : [];
        return new PortWithBindings(port, bindings);
    }

    private static string? Text(JsonNode node, string name) =>
        node[name] is JsonValue value && value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : null;
}
