using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.ControlPlane.Api;

/// <summary>
/// <c>GET /os-aggregates</c>: Ferry has no host aggregates yet, so the list is empty (the openstack CLI
/// reads it to fill in a hypervisor's aggregates).
/// </summary>
public static class AggregatesEndpoints
{
    public static RouteGroupBuilder MapAggregates(this RouteGroupBuilder api)
    {
        api.MapGet("/os-aggregates", List);
        return api;
    }

    internal static IResult List(HttpContext http)
    {
        RequestContext.Of(http).RequireAdmin("os_compute_api:os-aggregates:index");
        return NovaJson.Ok(new JsonObject { ["aggregates"] = new JsonArray() });
    }
}
