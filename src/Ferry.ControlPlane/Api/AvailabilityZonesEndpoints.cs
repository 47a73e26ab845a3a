using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.ControlPlane.Api;

/// <summary><c>/os-availability-zone</c>: the zones compute services are in (nova/api/openstack/compute/availability_zone.py).</summary>
public static class AvailabilityZonesEndpoints
{
    public static RouteGroupBuilder MapAvailabilityZones(this RouteGroupBuilder api)
    {
        api.MapGet("/os-availability-zone", (HttpContext http, ServiceStore services, ComputeApi compute) => ListAsync(http, services, compute, detail: false));
        api.MapGet("/os-availability-zone/detail", (HttpContext http, ServiceStore services, ComputeApi compute) => ListAsync(http, services, compute, detail: true));
        return api;
    }

    internal static async Task<IResult> ListAsync(HttpContext http, ServiceStore services, ComputeApi compute, bool detail)
    {
        var ctx = RequestContext.Of(http);
        if (detail)
        {
            ctx.RequireAdmin("os_compute_api:os-availability-zone:detail");
        }
        var all = await services.ListAsync(http.RequestAborted);
        var zones = new JsonArray();
        foreach (var zone in all.GroupBy(s => s.Zone).OrderBy(z => z.Key == "internal" ? 1 : 0).ThenBy(z => z.Key, StringComparer.Ordinal))
        {
            if (!detail && zone.Key == "internal")
            {
                continue;
            }
            JsonObject? hosts = null;
            if (detail)
            {
                hosts = [];
                foreach (var byHost in zone.GroupBy(s => s.Host))
                {
                    var entry = new JsonObject();
                    foreach (var s in byHost)
                    {
                        entry[s.Binary] = new JsonObject
                        {
                            ["available"] = !s.Disabled && compute.IsUp(s),
                            ["active"] = !s.Disabled,
                            ["updated_at"] = NovaJson.Db(s.UpdatedAt),
                        };
                    }
                    hosts[byHost.Key] = entry;
                }
            }
            zones.Add((JsonNode)new JsonObject
            {
                ["zoneName"] = zone.Key,
                ["zoneState"] = new JsonObject { ["available"] = zone.Any(s => !s.Disabled && compute.IsUp(s)) },
                ["hosts"] = hosts,
            });
        }
        if (zones.Count == 0 && !detail)
        {
            zones.Add((JsonNode)new JsonObject { ["zoneName"] = "nova", ["zoneState"] = new JsonObject { ["available"] = false }, ["hosts"] = null });
        }
        return NovaJson.Ok(new JsonObject { ["availabilityZoneInfo"] = zones });
    }
}
