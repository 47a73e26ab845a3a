using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.ControlPlane.Api;

/// <summary>
/// <c>/os-quota-class-sets/{class}</c> (admin): the <c>default</c> class overrides the configured defaults of
/// every project (nova/api/openstack/compute/quota_classes.py). Below 2.50 the answer leaves out
/// server_groups and server_group_members but keeps the network quotas; 2.50 swaps that; 2.57 also drops the
/// personality quotas.
/// </summary>
public static class QuotaClassSetsEndpoints
{
    public static RouteGroupBuilder MapQuotaClassSets(this RouteGroupBuilder api)
    {
        api.MapGet("/os-quota-class-sets/{id}", ShowAsync);
        api.MapPut("/os-quota-class-sets/{id}", UpdateAsync);
        return api;
    }

    internal static bool Hidden(ApiVersion version, string resource) =>
        version.AtLeast(50)
            ? QuotaEngine.NetworkResources.Contains(resource) || (version.AtLeast(57) && QuotaEngine.InjectedFileResources.Contains(resource))
            : resource is "server_groups" or "server_group_members";

    internal static async Task<IResult> ShowAsync(HttpContext http, string id, QuotaEngine quotas)
    {
        var ctx = RequestContext.Of(http);
        ctx.RequireAdmin("os_compute_api:os-quota-class-sets:show");
        return NovaJson.Ok(Format(ctx.Version, id, await quotas.ClassQuotasAsync(id, http.RequestAborted)));
    }

    internal static async Task<IResult> UpdateAsync(HttpContext http, string id, QuotaEngine quotas, QuotaStore store)
    {
        var ctx = RequestContext.Of(http);
        ctx.RequireAdmin("os_compute_api:os-quota-class-sets:update");
        var body = await NovaJson.ReadBodyAsync(http);
        BodySchema.NoAdditional(body, "", "quota_class_set");
        var set = BodySchema.RequiredObject(body, "quota_class_set");
        // Before 2.50 the schema does not list the server group quotas either.
        BodySchema.NoAdditional(set, "quota_class_set", QuotaEngine.Resources.Select(r => r.Name).Where(r => !Hidden(ctx.Version, r)).ToArray());
        if (id.Length > 255)
        {
            // oslo's check_string_length wording.
            throw new BadRequestException($"quota_class_name has {id.Length} characters, more than 255.");
        }
        await store.SetClassLimitsAsync(id, QuotaSetsEndpoints.ParseLimits(set, "quota_class_set"), http.RequestAborted);
        // The limits are set: the answer is read whatever became of the client.
        return NovaJson.Ok(Format(ctx.Version, null, await quotas.ClassQuotasAsync(id, CancellationToken.None)));
    }

    private static JsonObject Format(ApiVersion version, string? className, Dictionary<string, long> values)
    {
        var set = new JsonObject();
        if (className is not null)
        {
            set["id"] = className;
        }
        foreach (var (name, _) in QuotaEngine.Resources)
        {
            if (!Hidden(version, name))
            {
                set[name] = values[name];
            }
        }
        return new JsonObject { ["quota_class_set"] = set };
    }
}
