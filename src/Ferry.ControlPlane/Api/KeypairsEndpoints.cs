using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.ControlPlane.Api;

/// <summary>
/// <c>/os-keypairs</c> (nova/api/openstack/compute/keypairs.py, schemas/keypairs.py; KeypairAPI in compute/api.py).
/// Key pairs belong to the calling user; from 2.10 an admin may name another user with <c>user_id</c>.
/// 2.2 adds <c>type</c> (ssh or x509) and answers create with 201 and delete with 204; 2.35 pages the list by
/// name (<c>limit</c>, <c>marker</c>); 2.75 refuses unknown query parameters; 2.92 requires <c>public_key</c>
/// (no server-side generation) and allows <c>@</c> and <c>.</c> in names.
/// </summary>
public static class KeypairsEndpoints
{
    private const string SafeChars = "_- 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    private const string SafeChars292 = "@._- 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

    public static RouteGroupBuilder MapKeypairs(this RouteGroupBuilder api)
    {
        api.MapGet("/os-keypairs", ListAsync);
        api.MapPost("/os-keypairs", CreateAsync);
        api.MapGet("/os-keypairs/{name}", ShowAsync);
        api.MapDelete("/os-keypairs/{name}", DeleteAsync);
        return api;
    }

    internal static async Task<IResult> ListAsync(HttpContext http, KeyPairStore keypairs)
    {
        var ctx = RequestContext.Of(http);
        var v = ctx.Version;
        CheckQuery(http, v, "user_id", "limit", "marker");
        var userId = TargetUser(http, ctx, "index");
        int? limit = null;
        string? marker = null;
        if (v.AtLeast(35))
        {
            limit = Paging.Limit(http);
            marker = http.Request.Query["marker"].FirstOrDefault();
        }
        var list = await keypairs.ListAsync(userId, limit, marker, http.RequestAborted);
        var body = new JsonObject
        {
            ["keypairs"] = NovaJson.Array(list.Select(k => (JsonNode?)new JsonObject { ["keypair"] = Summary(v, k) })),
        };
        if (limit is { } l && Paging.Links(http, "os-keypairs", list.Count, l, list.Count > 0 ? list[^1].Name : null) is { Count: > 0 } links)
        {
            body["keypairs_links"] = links;
        }
        return NovaJson.Ok(body);
    }

    internal static async Task<IResult> ShowAsync(HttpContext http, string name, KeyPairStore keypairs)
    {
        var ctx = RequestContext.Of(http);
        CheckQuery(http, ctx.Version, "user_id");
        var userId = TargetUser(http, ctx, "show");
        var k = await keypairs.FindAsync(userId, name, http.RequestAborted) ?? throw KeyPairStore.NotFound(userId, name);
        var o = Summary(ctx.Version, k);
        o["user_id"] = k.UserId;
        o["created_at"] = NovaJson.Db(k.CreatedAt);
        o["updated_at"] = null;
        o["deleted_at"] = null;
        o["deleted"] = false;
        o["id"] = k.Id;
        return NovaJson.Ok(new JsonObject { ["keypair"] = o });
    }

    internal static async Task<IResult> DeleteAsync(HttpContext http, string name, KeyPairStore keypairs)
    {
        var ctx = RequestContext.Of(http);
        CheckQuery(http, ctx.Version, "user_id");
        await keypairs.DeleteAsync(TargetUser(http, ctx, "delete"), name, http.RequestAborted);
        return ctx.Version.AtLeast(2) ? TypedResults.NoContent() : TypedResults.StatusCode(StatusCodes.Status202Accepted);
    }

    internal static async Task<IResult> CreateAsync(HttpContext http, KeyPairStore keypairs, QuotaEngine quotas, TimeProvider time)
    {
        var ctx = RequestContext.Of(http);
        var v = ctx.Version;
        var body = await NovaJson.ReadBodyAsync(http);
        if (body.Select(p => p.Key).Where(key => key != "keypair").ToList() is { Count: > 0 } extraKeys)
        {
            // An error at the schema's root has no field path, so Nova answers with the bare jsonschema message.
            throw new BadRequestException(AdditionalNotAllowed(extraKeys));
        }
        var k = BodySchema.RequiredObject(body, "keypair");
        string[] allowed = v.AtLeast(10) ? ["name", "type", "public_key", "user_id"] : v.AtLeast(2) ? ["name", "type", "public_key"] : ["name", "public_key"];
        BodySchema.NoAdditional(k, "keypair", allowed);
        BodySchema.Required(k, "keypair", v.AtLeast(92) ? ["name", "public_key"] : ["name"]);
        var rawName = BodySchema.String(k, "name", nullable: false, minLength: 1)!;
        var safe = v.AtLeast(92) ? SafeChars292 : SafeChars;
        if (rawName.Any(c => !safe.Contains(c, StringComparison.Ordinal)))
        {
            throw new BadRequestException($"An invalid 'name' value was provided. The name must be: Only expected characters: [{safe}]");
        }
        var type = BodySchema.String(k, "type", nullable: false) ?? KeypairCrypto.Ssh;
        if (type is not (KeypairCrypto.Ssh or KeypairCrypto.X509))
        {
            throw BodySchema.Invalid("type", k["type"], $"'{type}' is not one of ['ssh', 'x509']");
        }
        var publicKey = BodySchema.String(k, "public_key", nullable: false, maxLength: int.MaxValue);
        var requestedUser = BodySchema.String(k, "user_id", nullable: false);

        // common.normalize_name, then KeypairAPI._validate_new_key_pair.
        var name = rawName.Trim();
        var userId = string.IsNullOrEmpty(requestedUser) ? ctx.UserId : requestedUser;
        Authorize(ctx, userId, "create");
        if (name.Length is < 1 or > 255)
        {
            throw KeypairCrypto.Invalid("Keypair name must be string and between 1 and 255 characters long");
        }
        await quotas.CheckKeyPairsAsync(ctx.ProjectId, userId, http.RequestAborted);

        string? privateKey = null;
        string fingerprint;
        if (publicKey is not null)
        {
            fingerprint = KeypairCrypto.Fingerprint(publicKey, type);
        }
        else
        {
            var generated = type == KeypairCrypto.X509 ? KeypairCrypto.GenerateX509(userId, time.GetUtcNow()) : KeypairCrypto.GenerateSsh();
            (publicKey, privateKey, fingerprint) = (generated.PublicKey, generated.PrivateKey, generated.Fingerprint);
        }
        var row = await keypairs.CreateAsync(userId, name, type, fingerprint, publicKey, http.RequestAborted);
        var o = Summary(v, row);
        o["user_id"] = row.UserId;
        if (privateKey is not null)
        {
            o["private_key"] = privateKey;
        }
        return NovaJson.Ok(new JsonObject { ["keypair"] = o }, v.AtLeast(2) ? StatusCodes.Status201Created : StatusCodes.Status200OK);
    }

    /// <summary>What every view has: name, public_key, fingerprint, and from 2.2 the type.</summary>
    private static JsonObject Summary(ApiVersion v, KeyPairRow k)
    {
        var o = new JsonObject { ["name"] = k.Name, ["public_key"] = k.PublicKey, ["fingerprint"] = k.Fingerprint };
        if (v.AtLeast(2))
        {
            o["type"] = k.Type;
        }
        return o;
    }

    /// <summary>The <c>user_id</c> query parameter (honoured from 2.10), else the caller; checked against the policy.</summary>
    private static string TargetUser(HttpContext http, RequestContext ctx, string action)
    {
        var requested = ctx.Version.AtLeast(10) ? http.Request.Query["user_id"].FirstOrDefault() : null;
        var userId = string.IsNullOrEmpty(requested) ? ctx.UserId : requested;
        Authorize(ctx, userId, action);
        return userId;
    }

    /// <summary>Nova's keypairs policies: <c>rule:admin_api or user_id:%(user_id)s</c>.</summary>
    private static void Authorize(RequestContext ctx, string userId, string action)
    {
        if (!ctx.IsAdmin && userId != ctx.UserId)
        {
            throw RequestContext.PolicyDenied($"os_compute_api:os-keypairs:{action}");
        }
    }

    /// <summary>From 2.75 the query schemas refuse parameters they do not list.</summary>
    private static void CheckQuery(HttpContext http, ApiVersion v, params string[] allowed)
    {
        if (!v.AtLeast(75))
        {
            return;
        }
        var extra = http.Request.Query.Keys.Where(key => !allowed.Contains(key)).ToList();
        if (extra.Count > 0)
        {
            throw new BadRequestException(AdditionalNotAllowed(extra));
        }
    }

    private static string AdditionalNotAllowed(List<string> extra) =>
        $"Additional properties are not allowed ({string.Join(", ", extra.Select(e => $"'{e}'"))} {(extra.Count == 1 ? "was" : "were")} unexpected)";
}
