using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Ferry.Core.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.ControlPlane.Api;

/// <summary>
/// <c>/servers/{id}/metadata[/{key}]</c> (nova/api/openstack/compute/server_metadata.py) and
/// <c>/servers/{id}/ips[/{network}]</c> (ips.py). Readers of the project may GET; changes need a member of the
/// server's project or an admin. Ferry has no network service, so a server has no addresses.
/// </summary>
public static partial class ServerMetadataEndpoints
{
    public static RouteGroupBuilder MapServerMetadata(this RouteGroupBuilder api)
    {
        api.MapGet("/servers/{id}/metadata", IndexAsync);
        api.MapPost("/servers/{id}/metadata", CreateAsync);
        api.MapPut("/servers/{id}/metadata", UpdateAllAsync);
        api.MapGet("/servers/{id}/metadata/{key}", ShowAsync);
        api.MapPut("/servers/{id}/metadata/{key}", UpdateAsync);
        api.MapDelete("/servers/{id}/metadata/{key}", DeleteAsync);
        api.MapGet("/servers/{id}/ips", IpsAsync);
        api.MapGet("/servers/{id}/ips/{network}", IpsOfNetworkAsync);
        return api;
    }

    private const string PolicyRoot = "os_compute_api:server-metadata:";

    internal static async Task<IResult> IndexAsync(HttpContext http, string id, ComputeApi compute)
    {
        var ctx = RequestContext.Of(http);
        var instance = await compute.GetInstanceAsync(ctx, id, http.RequestAborted);
        ctx.RequireOwnerOrAdmin(PolicyRoot + "index", instance.ProjectId);
        return NovaJson.Ok(new JsonObject { ["metadata"] = NovaJson.ToJson(instance.Metadata) });
    }

    internal static async Task<IResult> ShowAsync(HttpContext http, string id, string key, ComputeApi compute)
    {
        var ctx = RequestContext.Of(http);
        var instance = await compute.GetInstanceAsync(ctx, id, http.RequestAborted);
        ctx.RequireOwnerOrAdmin(PolicyRoot + "show", instance.ProjectId);
        if (!instance.Metadata.TryGetValue(key, out var value))
        {
            throw new NotFoundException("Metadata item was not found");
        }
        return NovaJson.Ok(new JsonObject { ["meta"] = new JsonObject { [key] = value } });
    }

    /// <summary>POST merges the body's items into the server's; answers 200 (not 201, as Nova) with all of them.</summary>
    internal static Task<IResult> CreateAsync(HttpContext http, string id, ComputeApi compute) =>
        WriteAllAsync(http, id, compute, "create", replace: false);

    /// <summary>PUT on the collection replaces every item.</summary>
    internal static Task<IResult> UpdateAllAsync(HttpContext http, string id, ComputeApi compute) =>
        WriteAllAsync(http, id, compute, "update_all", replace: true);

    private static async Task<IResult> WriteAllAsync(HttpContext http, string id, ComputeApi compute, string rule, bool replace)
    {
        var ctx = RequestContext.Of(http);
        var body = await NovaJson.ReadBodyAsync(http);
        var metadata = MetadataBody(body, "metadata");
        var instance = await compute.GetInstanceAsync(ctx, id, http.RequestAborted);
        ctx.RequireOwnerOrAdmin(PolicyRoot + rule, instance.ProjectId);
        var result = await compute.UpdateMetadataAsync(ctx, instance, metadata, replace, http.RequestAborted);
        return NovaJson.Ok(new JsonObject { ["metadata"] = NovaJson.ToJson(result) });
    }

    /// <summary>PUT on one key: the body's <c>meta</c> holds exactly that key.</summary>
    internal static async Task<IResult> UpdateAsync(HttpContext http, string id, string key, ComputeApi compute)
    {
        var ctx = RequestContext.Of(http);
        var body = await NovaJson.ReadBodyAsync(http);
        var meta = MetadataBody(body, "meta", exactlyOne: true);
        var instance = await compute.GetInstanceAsync(ctx, id, http.RequestAborted);
        ctx.RequireOwnerOrAdmin(PolicyRoot + "update", instance.ProjectId);
        if (!meta.ContainsKey(key))
        {
            throw new BadRequestException("Request body and URI mismatch");
        }
        await compute.UpdateMetadataAsync(ctx, instance, meta, replace: false, http.RequestAborted);
        return NovaJson.Ok(new JsonObject { ["meta"] = NovaJson.ToJson(meta) });
    }

    internal static async Task<IResult> DeleteAsync(HttpContext http, string id, string key, ComputeApi compute)
    {
        var ctx = RequestContext.Of(http);
        var instance = await compute.GetInstanceAsync(ctx, id, http.RequestAborted);
        ctx.RequireOwnerOrAdmin(PolicyRoot + "delete", instance.ProjectId);
        if (!instance.Metadata.ContainsKey(key))
        {
            throw new NotFoundException("Metadata item was not found");
        }
        await compute.DeleteMetadataKeyAsync(ctx, instance, key, http.RequestAborted);
        return TypedResults.NoContent();
    }

    internal static async Task<IResult> IpsAsync(HttpContext http, string id, ComputeApi compute)
    {
        var ctx = RequestContext.Of(http);
        var instance = await compute.GetInstanceAsync(ctx, id, http.RequestAborted);
        ctx.RequireOwnerOrAdmin("os_compute_api:ips:index", instance.ProjectId);
        return NovaJson.Ok(new JsonObject { ["addresses"] = ServerViewBuilder.Addresses(instance, extended: false) });
    }

    internal static async Task<IResult> IpsOfNetworkAsync(HttpContext http, string id, string network, ComputeApi compute)
    {
        var ctx = RequestContext.Of(http);
        var instance = await compute.GetInstanceAsync(ctx, id, http.RequestAborted);
        ctx.RequireOwnerOrAdmin("os_compute_api:ips:show", instance.ProjectId);
        return ServerViewBuilder.Addresses(instance, extended: false)[network] is JsonArray ips
            ? NovaJson.Ok(new JsonObject { [network] = ips.DeepClone() })
            : throw new NotFoundException("Instance is not a member of specified network");
    }

    /// <summary>
    /// The body <c>{"&lt;member&gt;": {...}}</c> with nothing else, the member Nova's <c>parameter_types.metadata</c>:
    /// keys of 1–255 characters from <c>[a-zA-Z0-9-_:. ]</c>, string values of at most 255.
    /// </summary>
    internal static Dictionary<string, string> MetadataBody(JsonObject body, string member, bool exactlyOne = false)
    {
        BodySchema.Required(body, member, member);
        BodySchema.NoAdditional(body, member, member);
        var node = body[member];
        if (node is not JsonObject map)
        {
            throw BodySchema.Invalid(member, node, $"{NovaJson.Describe(node)} is not of type 'object'");
        }
        if (exactlyOne && map.Count == 0)
        {
            throw BodySchema.Invalid(member, map, "{} should be non-empty");
        }
        if (exactlyOne && map.Count > 1)
        {
            throw BodySchema.Invalid(member, map, $"{NovaJson.Describe(map)} has too many properties");
        }
        return Metadata(map, member);
    }

    /// <summary>Nova's <c>parameter_types.metadata</c> (server create's <c>metadata</c> too).</summary>
    internal static Dictionary<string, string> Metadata(JsonObject map, string member)
    {
        var bad = map.Select(p => p.Key).Where(k => !KeyPattern().IsMatch(k)).ToList();
        if (bad.Count > 0)
        {
            throw BodySchema.Invalid(member, map,
                $"Additional properties are not allowed ({string.Join(", ", bad.Select(e => $"'{e}'"))} {(bad.Count == 1 ? "was" : "were")} unexpected)");
        }
        var result = new Dictionary<string, string>();
        foreach (var (k, v) in map)
        {
            if (v is not JsonValue s || s.GetValueKind() != JsonValueKind.String)
            {
                throw BodySchema.Invalid($"{member}/{k}", v, $"{NovaJson.Describe(v)} is not of type 'string'");
            }
            var text = s.GetValue<string>();
            if (text.Length > 255)
            {
                throw BodySchema.Invalid($"{member}/{k}", v, $"'{text}' is too long");
            }
            result[k] = text;
        }
        return result;
    }

    [GeneratedRegex("^[a-zA-Z0-9-_:. ]{1,255}$")]
    private static partial Regex KeyPattern();
}
