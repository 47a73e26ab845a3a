using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Ferry.ControlPlane.Api;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Networking;
using Microsoft.AspNetCore.Http;
using static Ferry.ControlPlane.Networking.NetworkEndpoints;

namespace Ferry.ControlPlane.Networking;

/// <summary>
/// <c>/v2.0/ports</c> and the port-binding extension. A port is visible to its project, its network's owner and the admin;
/// where it is bound (<c>binding:*</c>) is the admin's to set and see, as Neutron's policy has it.
/// </summary>
internal static partial class PortHandlers
{
    private static readonly string[] s_createKeys =
        ["name", "network_id", "tenant_id", "project_id", "admin_state_up", "mac_address", "fixed_ips", "device_id", "device_owner", "description",
         "security_groups", "port_security_enabled", "allowed_address_pairs", "extra_dhcp_opts", "dns_name", "qos_policy_id",
         "binding:host_id", "binding:profile", "binding:vnic_type", "tags"];

    private static readonly string[] s_updateKeys =
        ["name", "admin_state_up", "mac_address", "fixed_ips", "device_id", "device_owner", "description", "security_groups", "port_security_enabled",
         "allowed_address_pairs", "extra_dhcp_opts", "dns_name", "qos_policy_id", "binding:host_id", "binding:profile", "binding:vnic_type"];

    private static readonly string[] s_vnicTypes = ["normal", "direct", "macvtap", "baremetal", "direct-physical", "virtio-forwarder", "smart-nic", "remote-managed"];

    /// <summary>How a port is bound on a Ferry host: a tap device on the host's Linux bridge (Neutron's linuxbridge driver).</summary>
    public static BindingChange BindingFor(string host, string vnicType, Dictionary<string, string>? profile) =>
        new(host, VifTypes.Bridge, new() { ["connectivity"] = "l2", ["port_filter"] = "false" }, vnicType, profile ?? []);

    public static async Task<IResult> ListAsync(HttpContext http, NetworkStore store)
    {
        var caller = Caller(http);
        var query = http.Request.Query;
        var owned = caller.IsAdmin ? null : (await store.ListNetworksAsync(http.RequestAborted)).Where(n => n.ProjectId == caller.ProjectId).Select(n => n.Id).ToHashSet();
        // The indexed filters go to the database; a project's page may still thin out after the visibility check, so read on until it is full.
        var limit = query["limit"].ToString() is { Length: > 0 } l && int.TryParse(l, out var n) && n > 0 ? Math.Min(n, MaxPage) : MaxPage;
        var marker = query["marker"].ToString() is { Length: > 0 } m ? m : null;
        var visible = new List<(string, JsonObject)>();
        while (true)
        {
            var batch = await store.ListPortsAsync(new PortQuery
            {
                Ids = Values(query, "id"),
                NetworkIds = Values(query, "network_id"),
                DeviceIds = Values(query, "device_id"),
                ProjectIds = Values(query, "project_id") ?? Values(query, "tenant_id"),
                Marker = marker,
                Limit = MaxPage + 1,
            }, http.RequestAborted);
            visible.AddRange(batch.Where(p => owned is null || p.Port.ProjectId == caller.ProjectId || owned.Contains(p.Port.NetworkId))
                .Select(p => (p.Port.Id, NetworkViews.Port(p, caller.IsAdmin))));
            if (batch.Count <= MaxPage || visible.Count > limit)
            {
                break;
            }
            marker = batch[^1].Port.Id;
        }
        return Page(http, "ports", visible);
    }

    public static async Task<IResult> ShowAsync(HttpContext http, string id) =>
        One(http, "port", NetworkViews.Port(await VisibleAsync(http, id), Caller(http).IsAdmin));

    public static async Task<IResult> CreateAsync(HttpContext http, NetworkStore store)
    {
        var caller = Caller(http);
        RequireWriter(caller, "create_port");
        var body = await BodyAsync(http, "port");
        OnlyKnown(body, s_createKeys);
        var networkId = Text(body, "network_id") ?? throw NeutronException.BadRequest("Failed to parse request. Required attribute 'network_id' not specified");
        var network = await NetworkHandlers.VisibleAsync(http, networkId);
        AdminOnly(caller, body, "create_port", "mac_address", "binding:host_id", "binding:profile");
        var now = Time(http).GetUtcNow();
        var port = new Port
        {
            Id = NewId(),
            NetworkId = network.Id,
            ProjectId = NetworkHandlers.Owner(caller, body),
            Name = Text(body, "name") ?? "",
            Description = Text(body, "description") ?? "",
            MacAddress = Mac(body) ?? "",
            AdminStateUp = Bool(body, "admin_state_up") ?? true,
            DeviceId = Text(body, "device_id") ?? "",
            DeviceOwner = Text(body, "device_owner") ?? "",
            PortSecurityEnabled = Bool(body, "port_security_enabled") ?? network.PortSecurityEnabled,
            VnicType = VnicType(body) ?? "normal",
            CreatedAt = now,
            UpdatedAt = now,
            RevisionNumber = 1,
        };
        var created = await store.CreatePortAsync(port, FixedIps(body), http.RequestAborted);
        if (Text(body, "binding:host_id") is { Length: > 0 } host)
        {
            created = await store.UpdatePortAsync(port.Id, p => p, null, BindingFor(host, port.VnicType, Profile(body)), http.RequestAborted);
        }
        return One(http, "port", NetworkViews.Port(created, caller.IsAdmin), 201);
    }

    public static async Task<IResult> UpdateAsync(HttpContext http, string id)
    {
        var caller = Caller(http);
        RequireWriter(caller, "update_port");
        var body = await BodyAsync(http, "port");
        OnlyKnown(body, s_updateKeys);
        var current = await VisibleAsync(http, id);
        AdminOnly(caller, body, "update_port", "mac_address", "binding:host_id", "binding:profile");
        var (name, description, up, deviceId, deviceOwner, security, vnic, mac) = (Text(body, "name"), Text(body, "description"), Bool(body, "admin_state_up"),
            Text(body, "device_id"), Text(body, "device_owner"), Bool(body, "port_security_enabled"), VnicType(body), Mac(body));
        var host = body.ContainsKey("binding:host_id") ? Text(body, "binding:host_id") ?? "" : null;
        var profile = Profile(body);
        BindingChange? binding = host is not null
            ? BindingFor(host, vnic ?? current.Port.VnicType, profile ?? current.ActiveBinding?.Profile)
            : profile is not null && current.ActiveBinding is { } active ? BindingFor(active.Host, vnic ?? current.Port.VnicType, profile) : null;
        var now = Time(http).GetUtcNow();
        var updated = await Store(http).UpdatePortAsync(id, p => p with
        {
            Name = name ?? p.Name,
            Description = description ?? p.Description,
            AdminStateUp = up ?? p.AdminStateUp,
            DeviceId = deviceId ?? p.DeviceId,
            DeviceOwner = deviceOwner ?? p.DeviceOwner,
            PortSecurityEnabled = security ?? p.PortSecurityEnabled,
            VnicType = vnic ?? p.VnicType,
            MacAddress = mac ?? p.MacAddress,
            UpdatedAt = now,
            RevisionNumber = p.RevisionNumber + 1,
        }, body.ContainsKey("fixed_ips") ? FixedIps(body) ?? [] : null, binding, http.RequestAborted);
        return One(http, "port", NetworkViews.Port(updated, caller.IsAdmin));
    }

    public static async Task<IResult> DeleteAsync(HttpContext http, string id)
    {
        RequireWriter(Caller(http), "delete_port");
        var port = await VisibleAsync(http, id);
        await Store(http).DeletePortAsync(port.Port.Id, http.RequestAborted);
        return Results.NoContent();
    }

    // --- /v2.0/ports/{id}/bindings: the admin's (Nova's service user) ---

    public static async Task<IResult> ListBindingsAsync(HttpContext http, string id)
    {
        await BindingAdminAsync(http, id, "get_port_binding");
        var bindings = await Store(http).ListBindingsAsync(id, http.RequestAborted);
        return Json(new JsonObject { ["bindings"] = new JsonArray([.. bindings.Select(b => (JsonNode)NetworkViews.Binding(b))]) });
    }

    public static async Task<IResult> ShowBindingAsync(HttpContext http, string id, string host)
    {
        await BindingAdminAsync(http, id, "get_port_binding");
        var binding = (await Store(http).ListBindingsAsync(id, http.RequestAborted)).FirstOrDefault(b => b.Host == host)
            ?? throw NeutronException.PortBindingNotFound(id, host);
        return Json(new JsonObject { ["binding"] = NetworkViews.Binding(binding) });
    }

    public static async Task<IResult> CreateBindingAsync(HttpContext http, string id)
    {
        var port = await BindingAdminAsync(http, id, "create_port_binding");
        var body = await BodyAsync(http, "binding");
        OnlyKnown(body, ["host", "vnic_type", "profile"]);
        var host = Text(body, "host") is { Length: > 0 } h ? h : throw NeutronException.BadRequest("Failed to parse request. Required attribute 'host' not specified");
        var vnic = body["vnic_type"] is { } v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : port.Port.VnicType;
        var binding = await Store(http).CreateBindingAsync(id, BindingFor(host, vnic, ProfileOf(body, "profile")), http.RequestAborted);
        return Json(new JsonObject { ["binding"] = NetworkViews.Binding(binding) }, 201);
    }

    public static async Task<IResult> ActivateBindingAsync(HttpContext http, string id, string host)
    {
        await BindingAdminAsync(http, id, "activate");
        var binding = await Store(http).ActivateBindingAsync(id, host, http.RequestAborted);
        return Json(new JsonObject { ["binding"] = NetworkViews.Binding(binding) });
    }

    public static async Task<IResult> DeleteBindingAsync(HttpContext http, string id, string host)
    {
        await BindingAdminAsync(http, id, "delete_port_binding");
        await Store(http).DeleteBindingAsync(id, host, http.RequestAborted);
        return Results.NoContent();
    }

    private static async Task<PortWithBindings> BindingAdminAsync(HttpContext http, string id, string rule)
    {
        var caller = Caller(http);
        var port = await VisibleAsync(http, id);
        if (!caller.IsAdmin)
        {
            throw PolicyRefused($"rule:{rule}");
        }
        // ML2 keeps several bindings only for a server's (or a share's) ports.
        return port.Port.DeviceOwner.StartsWith("compute:", StringComparison.Ordinal) || port.Port.DeviceOwner.StartsWith("manila:", StringComparison.Ordinal)
            ? port
            : throw NeutronException.BadRequest($"Bad port request: Invalid port {id}. Operation only valid on compute and shared filesystem ports.");
    }

    /// <summary>A port the caller can see (its project's, or on its network); PortNotFound otherwise.</summary>
    public static async Task<PortWithBindings> VisibleAsync(HttpContext http, string id)
    {
        var caller = Caller(http);
        var port = await Store(http).GetPortAsync(id, http.RequestAborted) ?? throw NeutronException.PortNotFound(id);
        if (caller.IsAdmin || port.Port.ProjectId == caller.ProjectId
            || (await Store(http).GetNetworkAsync(port.Port.NetworkId, http.RequestAborted))?.ProjectId == caller.ProjectId)
        {
            return port;
        }
        throw NeutronException.PortNotFound(id);
    }

    private static void AdminOnly(RequestIdentity caller, JsonObject body, string action, params string[] attributes)
    {
        if (!caller.IsAdmin && attributes.FirstOrDefault(body.ContainsKey) is { } attribute)
        {
            throw PolicyRefused($"rule:{action}:{attribute}");
        }
    }

    private static IReadOnlyList<string>? Values(IQueryCollection query, string key) =>
        query[key] is { Count: > 0 } values ? [.. values.Where(v => v is not null).Select(v => v!)] : null;

    private static List<FixedIpRequest>? FixedIps(JsonObject body)
    {
        if (!body.TryGetPropertyValue("fixed_ips", out var node) || node is null)
        {
            return null;
        }
        if (node is not JsonArray array)
        {
            throw NeutronException.BadRequest($"Invalid input for fixed_ips. Reason: Invalid data format for fixed IP: '{node.ToJsonString()}'.");
        }
        var requests = new List<FixedIpRequest>();
        foreach (var item in array)
        {
            if (item is not JsonObject o || o.Any(p => p.Key is not ("subnet_id" or "ip_address")) || o.Count == 0)
            {
                throw NeutronException.BadRequest($"Invalid input for fixed_ips. Reason: Invalid data format for fixed IP: '{item?.ToJsonString()}'.");
            }
            var subnet = Text(o, "subnet_id");
            var ip = Text(o, "ip_address");
            if (ip is not null && !Ipv4.TryParse(ip, out _))
            {
                throw NeutronException.BadRequest($"Invalid input for fixed_ips. Reason: '{ip}' is not a valid IP address.");
            }
            requests.Add(new FixedIpRequest(subnet, ip));
        }
        return requests;
    }

    private static string? Mac(JsonObject body) => Text(body, "mac_address") is { } mac
        ? MacPattern().IsMatch(mac) && (Convert.ToByte(mac[..2], 16) & 1) == 0
            ? mac.ToLowerInvariant()
            : throw NeutronException.BadRequest($"Invalid input for mac_address. Reason: '{mac}' is not a valid MAC address.")
        : null;

    private static string? VnicType(JsonObject body) => Text(body, "binding:vnic_type") is { } vnic
        ? s_vnicTypes.Contains(vnic) ? vnic : throw NeutronException.BadRequest($"Invalid input for binding:vnic_type. Reason: '{vnic}' is not in {string.Join(", ", s_vnicTypes)}.")
        : null;

    private static Dictionary<string, string>? Profile(JsonObject body) => ProfileOf(body, "binding:profile");

    private static Dictionary<string, string>? ProfileOf(JsonObject body, string key)
    {
        if (!body.TryGetPropertyValue(key, out var node) || node is null)
        {
            return null;
        }
        return node is JsonObject o
            ? o.ToDictionary(p => p.Key, p => p.Value is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : p.Value?.ToJsonString() ?? "")
            : throw NeutronException.BadRequest($"Invalid input for {key}. Reason: '{node.ToJsonString()}' is not a dictionary.");
    }

    [GeneratedRegex("^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")]
    private static partial Regex MacPattern();
}
