using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Api;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Networking;
using Microsoft.AspNetCore.Http;
using static Ferry.ControlPlane.Networking.NetworkEndpoints;

namespace Ferry.ControlPlane.Networking;

/// <summary><c>/v2.0/networks</c>: a project sees its own networks and the shared ones; an admin sees all.</summary>
internal static class NetworkHandlers
{
    private static readonly string[] s_createKeys =
        ["name", "admin_state_up", "shared", "tenant_id", "project_id", "mtu", "description", "router:external", "port_security_enabled",
         "availability_zone_hints", "provider:network_type", "provider:physical_network", "provider:segmentation_id"];

    private static readonly string[] s_updateKeys = ["name", "admin_state_up", "shared", "mtu", "description", "router:external", "port_security_enabled"];

    public static bool CanSee(RequestIdentity caller, Core.Networking.Network n) => caller.IsAdmin || n.Shared || n.ProjectId == caller.ProjectId;

    public static async Task<IResult> ListAsync(HttpContext http, NetworkStore store)
    {
        var caller = Caller(http);
        var subnets = (await store.ListSubnetsAsync(null, http.RequestAborted)).ToLookup(s => s.NetworkId, s => s.Id);
        var networks = (await store.ListNetworksAsync(http.RequestAborted)).Where(n => CanSee(caller, n)).OrderBy(n => n.Id, StringComparer.Ordinal);
        return Page(http, "networks", networks.Select(n => (n.Id, NetworkViews.Network(n, subnets[n.Id], caller.IsAdmin))));
    }

    public static async Task<IResult> ShowAsync(HttpContext http, string id)
    {
        var caller = Caller(http);
        var network = await VisibleAsync(http, id);
        var subnets = await Store(http).ListSubnetsAsync(id, http.RequestAborted);
        return One(http, "network", NetworkViews.Network(network, subnets.Select(s => s.Id), caller.IsAdmin));
    }

    public static async Task<IResult> CreateAsync(HttpContext http, NetworkStore store)
    {
        var caller = Caller(http);
        RequireWriter(caller, "create_network");
        var body = await BodyAsync(http, "network");
        OnlyKnown(body, s_createKeys);
        var shared = Bool(body, "shared") ?? false;
        var external = Bool(body, "router:external") ?? false;
        if (!caller.IsAdmin && (shared || external || body.ContainsKey("provider:network_type") || body.ContainsKey("provider:physical_network")))
        {
            throw PolicyRefused(shared ? "rule:create_network:shared" : external ? "rule:create_network:router:external" : "rule:create_network:provider:network_type");
        }
        var now = Time(http).GetUtcNow();
        var network = new Core.Networking.Network
        {
            Id = NewId(),
            ProjectId = Owner(caller, body),
            Name = Text(body, "name") ?? "",
            Description = Text(body, "description") ?? "",
            AdminStateUp = Bool(body, "admin_state_up") ?? true,
            Shared = shared,
            External = external,
            Mtu = Mtu(body) ?? 1500,
            PortSecurityEnabled = Bool(body, "port_security_enabled") ?? true,
            CreatedAt = now,
            UpdatedAt = now,
            RevisionNumber = 1,
        };
        await store.CreateNetworkAsync(network, http.RequestAborted);
        return One(http, "network", NetworkViews.Network(network, [], caller.IsAdmin), 201);
    }

    public static async Task<IResult> UpdateAsync(HttpContext http, string id)
    {
        var caller = Caller(http);
        var body = await BodyAsync(http, "network");
        OnlyKnown(body, s_updateKeys);
        var current = await OwnedAsync(http, id, "update_network");
        if (!caller.IsAdmin && (body.ContainsKey("shared") || body.ContainsKey("router:external")))
        {
            throw PolicyRefused(body.ContainsKey("shared") ? "rule:update_network:shared" : "rule:update_network:router:external");
        }
        var (name, description, up, shared, mtu, external, portSecurity) =
            (Text(body, "name"), Text(body, "description"), Bool(body, "admin_state_up"), Bool(body, "shared"), Mtu(body), Bool(body, "router:external"), Bool(body, "port_security_enabled"));
        var now = Time(http).GetUtcNow();
        var updated = await Store(http).UpdateNetworkAsync(current.Id, n => n with
        {
            Name = name ?? n.Name,
            Description = description ?? n.Description,
            AdminStateUp = up ?? n.AdminStateUp,
            Shared = shared ?? n.Shared,
            Mtu = mtu ?? n.Mtu,
            External = external ?? n.External,
            PortSecurityEnabled = portSecurity ?? n.PortSecurityEnabled,
            UpdatedAt = now,
            RevisionNumber = n.RevisionNumber + 1,
        }, http.RequestAborted);
        var subnets = await Store(http).ListSubnetsAsync(id, http.RequestAborted);
        return One(http, "network", NetworkViews.Network(updated, subnets.Select(s => s.Id), caller.IsAdmin));
    }

    public static async Task<IResult> DeleteAsync(HttpContext http, string id)
    {
        var network = await OwnedAsync(http, id, "delete_network");
        await Store(http).DeleteNetworkAsync(network.Id, http.RequestAborted);
        return Results.NoContent();
    }

    /// <summary>A network the caller can see; NetworkNotFound otherwise, so nothing is revealed.</summary>
    public static async Task<Core.Networking.Network> VisibleAsync(HttpContext http, string id) =>
        await Store(http).GetNetworkAsync(id, http.RequestAborted) is { } n && CanSee(Caller(http), n) ? n : throw NeutronException.NetworkNotFound(id);

    /// <summary>A network the caller may change: its own (or any, for an admin); a shared one of another project is 403.</summary>
    public static async Task<Core.Networking.Network> OwnedAsync(HttpContext http, string id, string rule)
    {
        var caller = Caller(http);
        RequireWriter(caller, rule);
        var network = await VisibleAsync(http, id);
        return caller.IsAdmin || network.ProjectId == caller.ProjectId ? network : throw PolicyRefused($"rule:{rule}");
    }

    /// <summary>The project a new resource belongs to: the caller's, or the one an admin names.</summary>
    public static string Owner(RequestIdentity caller, JsonObject body)
    {
        var named = Text(body, "project_id") ?? Text(body, "tenant_id");
        if (named is null || named == caller.ProjectId)
        {
            return caller.ProjectId;
        }
        return caller.IsAdmin ? named : throw PolicyRefused("rule:create:tenant_id");
    }

    private static int? Mtu(JsonObject body)
    {
        if (!body.TryGetPropertyValue("mtu", out var node) || node is null)
        {
            return null;
        }
        return node.GetValueKind() == JsonValueKind.Number && node.GetValue<JsonElement>().TryGetInt32(out var mtu) && mtu >= 68
            ? mtu
            : throw NeutronException.BadRequest($"Invalid input for mtu. Reason: '{node.ToJsonString().Trim('"')}' is not a valid MTU (68 or more).");
    }
}
