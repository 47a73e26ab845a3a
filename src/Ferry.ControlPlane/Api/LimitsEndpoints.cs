using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.ControlPlane.Api;

/// <summary><c>GET /limits</c>: Ferry enforces no quotas, so the absolute limits are generous constants.</summary>
public static class LimitsEndpoints
{
    public static RouteGroupBuilder MapLimits(this RouteGroupBuilder api)
    {
        api.MapGet("/limits", Get);
        return api;
    }

    internal static IResult Get(HttpContext http, InstanceStore instances, ServerGroupStore groups)
    {
        var ctx = RequestContext.Of(http);
        var mine = instances.List(ctx.ProjectId);
        var absolute = new JsonObject
        {
            ["maxServerMeta"] = 128,
            ["maxImageMeta"] = 128,
            ["maxTotalKeypairs"] = 100,
            ["maxServerGroups"] = 1000,
            ["maxServerGroupMembers"] = 1000,
            ["maxTotalCores"] = 100000,
            ["maxTotalInstances"] = 10000,
            ["maxTotalRAMSize"] = 100000000,
            ["totalCoresUsed"] = mine.Sum(i => i.Flavor.Vcpus),
            ["totalRAMUsed"] = mine.Sum(i => i.Flavor.MemoryMb),
            ["totalInstancesUsed"] = mine.Count,
            ["totalServerGroupsUsed"] = groups.List(ctx.ProjectId).Count,
        };
        if (!ctx.Version.AtLeast(36))
        {
            absolute["maxSecurityGroups"] = 1000;
            absolute["maxSecurityGroupRules"] = 1000;
            absolute["maxTotalFloatingIps"] = 1000;
            absolute["totalSecurityGroupsUsed"] = 0;
            absolute["totalFloatingIpsUsed"] = 0;
        }
        if (!ctx.Version.AtLeast(57))
        {
            absolute["maxPersonality"] = 5;
            absolute["maxPersonalitySize"] = 10240;
        }
        return NovaJson.Ok(new JsonObject { ["limits"] = new JsonObject { ["rate"] = new JsonArray(), ["absolute"] = absolute } });
    }
}
