using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.ControlPlane.Api;

/// <summary><c>/os-server-groups</c> (nova/api/openstack/compute/server_groups.py).</summary>
public static class ServerGroupsEndpoints
{
    public static RouteGroupBuilder MapServerGroups(this RouteGroupBuilder api)
    {
        api.MapGet("/os-server-groups", ListAsync);
        api.MapGet("/os-server-groups/{id}", ShowAsync);
        api.MapPost("/os-server-groups", CreateAsync);
        api.MapDelete("/os-server-groups/{id}", DeleteAsync);
        return api;
    }

    internal static JsonObject View(RequestContext ctx, ServerGroupRow g)
    {
        var o = new JsonObject { ["id"] = g.Uuid, ["name"] = g.Name };
        if (ctx.Version.AtLeast(64))
        {
            o["policy"] = g.Policy;
            o["rules"] = g.Policy == "anti-affinity" && g.MaxServerPerHost is { } max
                ? new JsonObject { ["max_server_per_host"] = max }
                : new JsonObject();
        }
        else
        {
            o["policies"] = new JsonArray(g.Policy);
            o["metadata"] = new JsonObject();
        }
        o["members"] = NovaJson.Array(g.Members.Select(m => (JsonNode?)m));
        // Both owners appear from 2.13 (server_groups.py _format_server_group).
        if (ctx.Version.AtLeast(13))
        {
            o["project_id"] = g.ProjectId;
            o["user_id"] = g.UserId;
        }
        return o;
    }

    internal static async Task<IResult> ListAsync(HttpContext http, ServerGroupStore groups)
    {
        var ctx = RequestContext.Of(http);
        var all = http.Request.Query["all_projects"].FirstOrDefault() is { } a && BodySchema.TryBoolean(a.Length == 0 ? "true" : a, out var b) && b;
        if (all)
        {
            ctx.RequireAdmin("os_compute_api:os-server-groups:index:all_projects");
        }
        var list = await groups.ListAsync(all ? null : ctx.ProjectId, http.RequestAborted);
        return NovaJson.Ok(new JsonObject { ["server_groups"] = NovaJson.Array(list.Select(g => View(ctx, g))) });
    }

    private static async Task<ServerGroupRow> GetAsync(RequestContext ctx, ServerGroupStore groups, string id, CancellationToken cancellationToken)
    {
        var group = await groups.FindAsync(id, cancellationToken);
        if (group is null || (!ctx.IsAdmin && group.ProjectId != ctx.ProjectId))
        {
            throw new NotFoundException($"Instance group {id} could not be found.");
        }
        return group;
    }

    internal static async Task<IResult> ShowAsync(HttpContext http, string id, ServerGroupStore groups)
    {
        var ctx = RequestContext.Of(http);
        return NovaJson.Ok(new JsonObject { ["server_group"] = View(ctx, await GetAsync(ctx, groups, id, http.RequestAborted)) });
    }

    internal static async Task<IResult> DeleteAsync(HttpContext http, string id, ServerGroupStore groups)
    {
        var ctx = RequestContext.Of(http);
        await groups.DeleteAsync((await GetAsync(ctx, groups, id, http.RequestAborted)).Uuid, http.RequestAborted);
        return TypedResults.NoContent();
    }

    internal static async Task<IResult> CreateAsync(HttpContext http, ServerGroupStore groups, QuotaEngine quotas)
    {
        var ctx = RequestContext.Of(http);
        var body = await NovaJson.ReadBodyAsync(http);
        var g = BodySchema.RequiredObject(body, "server_group");
        var v = ctx.Version;
        string[] allowedPolicies = v.AtLeast(15) ? ["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"] : ["affinity", "anti-affinity"];
        string policy;
        int? maxPerHost = null;
        if (v.AtLeast(64))
        {
            BodySchema.NoAdditional(g, "server_group", "name", "policy", "rules");
            BodySchema.Required(g, "server_group", "name", "policy");
            policy = BodySchema.String(g, "policy", nullable: false)!;
            if (g["rules"] is JsonObject rules)
            {
                BodySchema.NoAdditional(rules, "rules", "max_server_per_host");
                maxPerHost = BodySchema.Integer(rules, "max_server_per_host", 1);
                if (maxPerHost is not null && policy != "anti-affinity")
                {
                    throw new BadRequestException("Only anti-affinity policy supports the rules.");
                }
            }
            else if (g.ContainsKey("rules"))
            {
                throw BodySchema.Invalid("rules", g["rules"], $"{NovaJson.Describe(g["rules"])} is not of type 'object'");
            }
        }
        else
        {
            BodySchema.NoAdditional(g, "server_group", "name", "policies");
            BodySchema.Required(g, "server_group", "name", "policies");
            if (g["policies"] is not JsonArray { Count: 1 } policies || policies[0] is not JsonValue pv || !pv.TryGetValue<string>(out var p))
            {
                throw BodySchema.Invalid("policies", g["policies"], $"{NovaJson.Describe(g["policies"])} is not a list of exactly one policy");
            }
            policy = p;
        }
        if (!allowedPolicies.Contains(policy))
        {
            throw BodySchema.Invalid("policy", JsonValue.Create(policy), $"'{policy}' is not one of [{string.Join(", ", allowedPolicies.Select(x => $"'{x}'"))}]");
        }
        var name = BodySchema.String(g, "name", nullable: false, minLength: 1)!;
        await quotas.CheckServerGroupsAsync(ctx.ProjectId, ctx.UserId, http.RequestAborted);
        var group = await groups.CreateAsync(name, policy, maxPerHost, ctx.ProjectId, ctx.UserId, http.RequestAborted);
        return NovaJson.Ok(new JsonObject { ["server_group"] = View(ctx, group) });
    }
}
