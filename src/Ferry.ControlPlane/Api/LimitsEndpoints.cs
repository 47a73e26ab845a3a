using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.ControlPlane.Api;

/// <summary>
/// <c>GET /limits</c>: the project's quota limits and usage under Nova's names (views/limits.py). 2.36 drops the
/// network limits, 2.39 maxImageMeta, 2.57 the personality limits; <c>?tenant_id=</c> is admin only.
/// </summary>
public static class LimitsEndpoints
{
    /// <summary>Quota resource → the absolute limit names it is shown as.</summary>
    private static readonly (string Resource, string[] Names)[] s_limitNames =
    [
        ("ram", ["maxTotalRAMSize"]),
        ("instances", ["maxTotalInstances"]),
        ("cores", ["maxTotalCores"]),
        ("key_pairs", ["maxTotalKeypairs"]),
        ("floating_ips", ["maxTotalFloatingIps"]),
        ("metadata_items", ["maxServerMeta", "maxImageMeta"]),
        ("injected_files", ["maxPersonality"]),
        ("injected_file_content_bytes", ["maxPersonalitySize"]),
        ("security_groups", ["maxSecurityGroups"]),
        ("security_group_rules", ["maxSecurityGroupRules"]),
        ("server_groups", ["maxServerGroups"]),
        ("server_group_members", ["maxServerGroupMembers"]),
    ];

    private static readonly (string Name, string Resource)[] s_usedNames =
    [
        ("totalRAMUsed", "ram"),
        ("totalCoresUsed", "cores"),
        ("totalInstancesUsed", "instances"),
        ("totalFloatingIpsUsed", "floating_ips"),
        ("totalSecurityGroupsUsed", "security_groups"),
        ("totalServerGroupsUsed", "server_groups"),
    ];

    public static RouteGroupBuilder MapLimits(this RouteGroupBuilder api)
    {
        api.MapGet("/limits", GetAsync);
        return api;
    }

    internal static async Task<IResult> GetAsync(HttpContext http, QuotaEngine quotas)
    {
        var ctx = RequestContext.Of(http);
        var project = ctx.ProjectId;
        if (ctx.Version.AtLeast(75))
        {
            QuerySchema.NoAdditional(http, "tenant_id");
        }
        if (http.Request.Query.ContainsKey("tenant_id"))
        {
            ctx.RequireAdmin("os_compute_api:limits:other_project");
            project = http.Request.Query["tenant_id"].FirstOrDefault() ?? "";
        }
        var values = await quotas.ProjectQuotasAsync(project, http.RequestAborted);
        var v = ctx.Version;
        bool Filtered(string resource) =>
            (v.AtLeast(36) && resource is "floating_ips" or "security_groups" or "security_group_rules")
            || (v.AtLeast(57) && resource is "injected_files" or "injected_file_content_bytes");
        var absolute = new JsonObject();
        foreach (var (resource, names) in s_limitNames)
        {
            if (Filtered(resource))
            {
                continue;
            }
            foreach (var name in names.Where(n => n != "maxImageMeta" || !v.AtLeast(39)))
            {
                absolute[name] = values[resource].Limit;
            }
        }
        foreach (var (name, resource) in s_usedNames)
        {
            if (!Filtered(resource))
            {
                absolute[name] = values[resource].InUse;
            }
        }
        return NovaJson.Ok(new JsonObject { ["limits"] = new JsonObject { ["rate"] = new JsonArray(), ["absolute"] = absolute } });
    }
}
