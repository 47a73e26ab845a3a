using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Networking;

namespace Ferry.ControlPlane.Api;

/// <summary>
/// A boot request's <c>networks</c> checked against the network service before anything is made (Nova's
/// validate_networks in the API): unknown networks and ports, ports in use and ambiguous automatic choices are refused
/// with Nova's codes, and <c>auto</c> becomes the one network the project may use.
/// </summary>
internal static class ServerNetworks
{
    private static readonly HashSet<string> s_entryKeys = ["uuid", "port", "fixed_ip", "tag"];

    /// <summary>The networks to make ports on, or the ports to take, in the request's order; empty for none.</summary>
    public static async Task<List<RequestedNetwork>> ResolveAsync(RequestContext ctx, JsonObject server, int maxCount, NetworkStore store, CancellationToken ct)
    {
        if (!server.TryGetPropertyValue("networks", out var node) || node is null)
        {
            // Before 2.37 no networks means every network the project may use, when that is one; none is fine too.
            return await AutoAsync(ctx, store, required: false, ct);
        }
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.String && v.GetValue<string>() is "none" or "auto")
        {
            return v.GetValue<string>() == "none" ? [] : await AutoAsync(ctx, store, required: true, ct);
        }
        if (node is not JsonArray entries || entries.Any(e => e is not JsonObject))
        {
            throw BodySchema.Invalid("networks", node, $"{NovaJson.Describe(node)} is not valid under any of the given schemas");
        }
        var requested = new List<RequestedNetwork>();
        foreach (var entry in entries.Cast<JsonObject>())
        {
            if (entry.Select(p => p.Key).FirstOrDefault(k => !s_entryKeys.Contains(k)) is { } unexpected)
            {
                throw BodySchema.Invalid("networks", entry, $"Additional properties are not allowed ('{unexpected}' was unexpected)");
            }
            var port = BodySchema.String(entry, "port");
            var uuid = BodySchema.String(entry, "uuid");
            var fixedIp = BodySchema.String(entry, "fixed_ip");
            if (fixedIp is not null && !Ipv4.TryParse(fixedIp, out _))
            {
                throw new BadRequestException($"Invalid input for field/attribute fixed_ip. Value: {fixedIp}. '{fixedIp}' is not a 'ipv4'");
            }
            if (port is not null)
            {
                if (maxCount > 1)
                {
                    throw new BadRequestException("Unable to launch multiple instances with a single configured port ID. Please launch your instance one by one with different ports.");
                }
                var found = await store.GetPortAsync(port, ct);
                if (found is null || (!ctx.IsAdmin && found.Port.ProjectId != ctx.ProjectId))
                {
                    throw new BadRequestException($"Port id {port} could not be found.");
                }
                if (found.Port.DeviceId.Length > 0 || requested.Any(r => r.PortId == port))
                {
                    throw new ConflictException($"Port {port} is still in use.");
                }
                requested.Add(new RequestedNetwork { PortId = port, NetworkId = found.Port.NetworkId });
                continue;
            }
            if (uuid is null)
            {
                throw new BadRequestException("Bad networks format: network uuid is not in proper format (None)");
            }
            if (await store.GetNetworkAsync(uuid, ct) is not { } network || !Usable(ctx, network))
            {
                throw new BadRequestException($"Network {uuid} could not be found.");
            }
            if (fixedIp is not null && maxCount > 1)
            {
                throw new BadRequestException("max_count cannot be greater than 1 if an fixed_ip is specified.");
            }
            requested.Add(new RequestedNetwork { NetworkId = network.Id, FixedIp = fixedIp });
        }
        return requested;
    }

    private static bool Usable(RequestContext ctx, Network n) => ctx.IsAdmin || n.Shared || n.ProjectId == ctx.ProjectId;

    /// <summary>The one network the project may use (its own and the shared ones); 409 when there are several, as Nova.</summary>
    private static async Task<List<RequestedNetwork>> AutoAsync(RequestContext ctx, NetworkStore store, bool required, CancellationToken ct)
    {
        var candidates = (await store.ListNetworksAsync(ct)).Where(n => !n.External && (n.Shared || n.ProjectId == ctx.ProjectId)).ToList();
        return candidates.Count switch
        {
            0 when required => throw new BadRequestException($"Unable to automatically allocate a network for project {ctx.ProjectId}"),
            0 => [],
            1 => [new RequestedNetwork { NetworkId = candidates[0].Id }],
            _ => throw new ConflictException("Multiple possible networks found, use a Network ID to be more specific."),
        };
    }
}
