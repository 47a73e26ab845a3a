using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.ControlPlane.Api;

/// <summary><c>/flavors</c>: list, detail, show (by id or name), create and delete (admin), extra specs.</summary>
public static class FlavorsEndpoints
{
    public static RouteGroupBuilder MapFlavors(this RouteGroupBuilder api)
    {
        api.MapGet("/flavors", (HttpContext http, CatalogStore catalog) => ListAsync(http, catalog, detail: false));
        api.MapGet("/flavors/detail", (HttpContext http, CatalogStore catalog) => ListAsync(http, catalog, detail: true));
        api.MapGet("/flavors/{id}", ShowAsync);
        api.MapPost("/flavors", CreateAsync);
        api.MapDelete("/flavors/{id}", DeleteAsync);
        api.MapGet("/flavors/{id}/os-extra_specs", ExtraSpecsAsync);
        api.MapGet("/flavors/{id}/os-extra_specs/{key}", ExtraSpecAsync);
        return api;
    }

    internal static JsonObject View(HttpContext http, ApiVersion v, Flavor f, bool detail)
    {
        var o = new JsonObject
        {
            ["id"] = f.Id,
            ["name"] = f.Name,
            ["links"] = NovaJson.Links(http, $"flavors/{f.Id}"),
        };
        if (v.AtLeast(55))
        {
            o["description"] = f.Description;
        }
        if (!detail)
        {
            return o;
        }
        o["ram"] = f.MemoryMb;
        o["disk"] = f.RootGb;
        o["vcpus"] = f.Vcpus;
        o["OS-FLV-EXT-DATA:ephemeral"] = f.EphemeralGb;
        o["OS-FLV-DISABLED:disabled"] = f.Disabled;
        o["swap"] = f.SwapMb == 0 && !v.AtLeast(75) ? "" : f.SwapMb;
        o["rxtx_factor"] = f.RxtxFactor;
        o["os-flavor-access:is_public"] = f.IsPublic;
        if (v.AtLeast(61))
        {
            o["extra_specs"] = NovaJson.ToJson(f.ExtraSpecs);
        }
        return o;
    }

    /// <summary>
    /// The flavor when the caller may use it: a private flavor is the admin's alone (Ferry keeps no flavor access
    /// lists), and Nova answers as if it did not exist (404 on show, 400 on create and resize).
    /// </summary>
    internal static Flavor? Accessible(RequestContext ctx, Flavor? flavor) =>
        flavor is not null && (flavor.IsPublic || ctx.IsAdmin) ? flavor : null;

    internal static async Task<IResult> ListAsync(HttpContext http, CatalogStore catalog, bool detail)
    {
        var ctx = RequestContext.Of(http);
        var flavors = (await catalog.ListFlavorsAsync(http.RequestAborted)).Where(f => (f.IsPublic || ctx.IsAdmin) && !f.Disabled).ToList();
        if (http.Request.Query["marker"].FirstOrDefault() is { } marker)
        {
            var index = flavors.FindIndex(f => f.Id == marker);
            if (index < 0)
            {
                throw new BadRequestException($"marker [{marker}] not found");
            }
            flavors = flavors[(index + 1)..];
        }
        var limit = Paging.Limit(http);
        flavors = flavors.Take(limit).ToList();
        var body = new JsonObject { ["flavors"] = NovaJson.Array(flavors.Select(f => View(http, ctx.Version, f, detail))) };
        if (Paging.Links(http, detail ? "flavors/detail" : "flavors", flavors.Count, limit, flavors.Count > 0 ? flavors[^1].Id : null) is { Count: > 0 } links)
        {
            body["flavors_links"] = links;
        }
        return NovaJson.Ok(body);
    }

    internal static async Task<IResult> ShowAsync(HttpContext http, string id, CatalogStore catalog)
    {
        var ctx = RequestContext.Of(http);
        var flavor = Accessible(ctx, await catalog.FindFlavorAsync(id, http.RequestAborted)) ?? throw new FlavorNotFoundException(id);
        return NovaJson.Ok(new JsonObject { ["flavor"] = View(http, ctx.Version, flavor, detail: true) });
    }

    internal static async Task<IResult> ExtraSpecsAsync(HttpContext http, string id, CatalogStore catalog)
    {
        var ctx = RequestContext.Of(http);
        var flavor = Accessible(ctx, await catalog.FindFlavorAsync(id, http.RequestAborted)) ?? throw new FlavorNotFoundException(id);
        return NovaJson.Ok(new JsonObject { ["extra_specs"] = NovaJson.ToJson(flavor.ExtraSpecs) });
    }

    internal static async Task<IResult> ExtraSpecAsync(HttpContext http, string id, string key, CatalogStore catalog)
    {
        var ctx = RequestContext.Of(http);
        var flavor = Accessible(ctx, await catalog.FindFlavorAsync(id, http.RequestAborted)) ?? throw new FlavorNotFoundException(id);
        return flavor.ExtraSpecs.TryGetValue(key, out var value)
            ? NovaJson.Ok(new JsonObject { [key] = value })
            : throw new NotFoundException($"Flavor {id} has no extra specs with key {key}.");
    }

    internal static async Task<IResult> CreateAsync(HttpContext http, CatalogStore catalog)
    {
        var ctx = RequestContext.Of(http);
        ctx.RequireAdmin("os_compute_api:os-flavor-manage:create");
        var body = await NovaJson.ReadBodyAsync(http);
        var f = BodySchema.RequiredObject(body, "flavor");
        var allowed = new List<string> { "name", "id", "ram", "vcpus", "disk", "OS-FLV-EXT-DATA:ephemeral", "swap", "rxtx_factor", "os-flavor-access:is_public" };
        if (ctx.Version.AtLeast(55))
        {
            allowed.Add("description");
        }
        BodySchema.NoAdditional(f, "flavor", [.. allowed]);
        BodySchema.Required(f, "flavor", "name", "ram", "vcpus", "disk");
        var name = BodySchema.String(f, "name", nullable: false, minLength: 1)!.Trim();
        var id = f["id"] is JsonValue idv && idv.TryGetValue<long>(out var n) ? n.ToString(System.Globalization.CultureInfo.InvariantCulture) : BodySchema.String(f, "id");
        var ram = BodySchema.Integer(f, "ram", 1)!.Value;
        var vcpus = BodySchema.Integer(f, "vcpus", 1)!.Value;
        var disk = BodySchema.Integer(f, "disk", 0)!.Value;
        var ephemeral = BodySchema.Integer(f, "OS-FLV-EXT-DATA:ephemeral", 0) ?? 0;
        var swap = BodySchema.Integer(f, "swap", 0) ?? 0;
        var isPublic = BodySchema.Boolean(f, "os-flavor-access:is_public") ?? true;
        var description = BodySchema.String(f, "description", maxLength: 65535);
        double rxtx = 1.0;
        if (f["rxtx_factor"] is JsonValue rv && !rv.TryGetValue(out rxtx))
        {
            throw BodySchema.Invalid("rxtx_factor", rv, $"{rv.ToJsonString()} is not of type 'number'");
        }
        var flavor = await catalog.CreateFlavorAsync(internalId => new Flavor
        {
            InternalId = internalId,
            Id = id ?? Guid.NewGuid().ToString(),
            Name = name,
            Vcpus = vcpus,
            MemoryMb = ram,
            RootGb = disk,
            EphemeralGb = ephemeral,
            SwapMb = swap,
            RxtxFactor = rxtx,
            IsPublic = isPublic,
            Description = description,
        }, http.RequestAborted);
        return NovaJson.Ok(new JsonObject { ["flavor"] = View(http, ctx.Version, flavor, detail: true) });
    }

    internal static async Task<IResult> DeleteAsync(HttpContext http, string id, CatalogStore catalog)
    {
        var ctx = RequestContext.Of(http);
        ctx.RequireAdmin("os_compute_api:os-flavor-manage:delete");
        await catalog.DeleteFlavorAsync(id, http.RequestAborted);
        return TypedResults.StatusCode(StatusCodes.Status202Accepted);
    }
}
