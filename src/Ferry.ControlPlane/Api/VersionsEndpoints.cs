using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.ControlPlane.Api;

/// <summary>The version documents keystoneauth discovers the API through (nova/api/openstack/compute/versions.py).</summary>
public static class VersionsEndpoints
{
    public static RouteGroupBuilder MapVersions(this RouteGroupBuilder api, string prefix)
    {
        api.MapGet("/", (HttpContext http) => GetVersion(http, prefix)).WithMetadata(AnonymousEndpoint.Instance);
        return api;
    }

    public static IResult GetVersions(HttpContext http) =>
        NovaJson.Ok(new JsonObject { ["versions"] = new JsonArray(Version(http, "v2.0"), Version(http, "v2.1")) });

    private static IResult GetVersion(HttpContext http, string prefix) =>
        NovaJson.Ok(new JsonObject { ["version"] = Version(http, prefix == "/v2" ? "v2.0" : "v2.1", detailed: true) });

    private static JsonObject Version(HttpContext http, string id, bool detailed = false)
    {
        var current = id == "v2.1";
        var links = new JsonArray(new JsonObject { ["rel"] = "self", ["href"] = $"{NovaJson.BaseUrl(http)}/{(current ? "v2.1" : "v2")}/" });
        if (detailed)
        {
            links.Add((JsonNode)new JsonObject { ["rel"] = "describedby", ["type"] = "text/html", ["href"] = "http://docs.openstack.org/" });
        }
        var version = new JsonObject
        {
            ["id"] = id,
            ["status"] = current ? "CURRENT" : "SUPPORTED",
            ["version"] = current ? ApiVersion.Max.ToString() : "",
            ["min_version"] = current ? ApiVersion.Min.ToString() : "",
            ["updated"] = current ? "2013-07-23T11:33:21Z" : "2011-01-21T11:33:21Z",
            ["links"] = links,
        };
        if (detailed)
        {
            version["media-types"] = new JsonArray(new JsonObject
            {
                ["base"] = "application/json",
                ["type"] = $"application/vnd.openstack.compute+json;version={(current ? "2.1" : "2")}",
            });
        }
        return version;
    }
}
