using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.ControlPlane.Api;

/// <summary>
/// <c>/os-quota-sets/{project_id}</c>: show, detail (with usage), defaults, update (admin) and delete (admin,
/// reverts to the defaults), for a project or with <c>?user_id=</c> for one user in it
/// (nova/api/openstack/compute/quota_sets.py). 2.36 hides the network quotas, 2.57 the personality ones.
/// </summary>
public static class QuotaSetsEndpoints
{
    public static RouteGroupBuilder MapQuotaSets(this RouteGroupBuilder api)
    {
        api.MapGet("/os-quota-sets/{id}", ShowAsync);
        api.MapGet("/os-quota-sets/{id}/detail", DetailAsync);
        api.MapGet("/os-quota-sets/{id}/defaults", DefaultsAsync);
        api.MapPut("/os-quota-sets/{id}", UpdateAsync);
        api.MapDelete("/os-quota-sets/{id}", DeleteAsync);
        return api;
    }

    /// <summary>The quota keys a microversion leaves out of os-quota-sets and limits.</summary>
    internal static bool Hidden(ApiVersion version, string resource) =>
        (version.AtLeast(36) && QuotaEngine.NetworkResources.Contains(resource))
        || (version.AtLeast(57) && QuotaEngine.InjectedFileResources.Contains(resource));

    internal static async Task<IResult> ShowAsync(HttpContext http, string id, QuotaEngine quotas)
    {
        var ctx = RequestContext.Of(http);
        ctx.RequireOwnerOrAdmin("os_compute_api:os-quota-sets:show", id);
        var values = await QuotasAsync(quotas, id, UserId(http), http.RequestAborted);
        return NovaJson.Ok(Format(ctx.Version, id, values.ToDictionary(v => v.Key, v => (JsonNode)v.Value.Limit)));
    }

    internal static async Task<IResult> DetailAsync(HttpContext http, string id, QuotaEngine quotas)
    {
        var ctx = RequestContext.Of(http);
        ctx.RequireOwnerOrAdmin("os_compute_api:os-quota-sets:detail", id);
        var values = await QuotasAsync(quotas, id, UserId(http), http.RequestAborted);
        // Reservations are gone since Pike; "reserved" stays in the contract as 0.
        return NovaJson.Ok(Format(ctx.Version, id, values.ToDictionary(v => v.Key, v => (JsonNode)new JsonObject
        {
            ["in_use"] = v.Value.InUse,
            ["limit"] = v.Value.Limit,
            ["reserved"] = 0,
        })));
    }

    internal static async Task<IResult> DefaultsAsync(HttpContext http, string id, QuotaEngine quotas)
    {
        var ctx = RequestContext.Of(http);
        return NovaJson.Ok(Format(ctx.Version, id, (await quotas.DefaultsAsync(http.RequestAborted)).ToDictionary(v => v.Key, v => (JsonNode)v.Value)));
    }

    internal static async Task<IResult> UpdateAsync(HttpContext http, string id, QuotaEngine quotas, QuotaStore store)
    {
        var ctx = RequestContext.Of(http);
        ctx.RequireAdmin("os_compute_api:os-quota-sets:update");
        var body = await NovaJson.ReadBodyAsync(http);
        BodySchema.NoAdditional(body, "", "quota_set");
        var set = BodySchema.RequiredObject(body, "quota_set");
        var allowed = QuotaEngine.Resources.Select(r => r.Name).Where(r => !Hidden(ctx.Version, r)).Append("force").ToArray();
        BodySchema.NoAdditional(set, "quota_set", allowed);
        var force = BodySchema.Boolean(set, "force") ?? false;
        var requested = ParseLimits(set, "quota_set");
        var userId = UserId(http);
        if (!force)
        {
            var settable = await quotas.SettableQuotasAsync(id, userId, http.RequestAborted);
            foreach (var (resource, limit) in requested)
            {
                ValidateLimit(resource, limit, settable[resource].Minimum, settable[resource].Maximum);
            }
        }
        await store.SetLimitsAsync(id, userId, requested, http.RequestAborted);
        // The limits are set: the answer is read whatever became of the client.
        var values = await QuotasAsync(quotas, id, userId, CancellationToken.None);
        // Nova's update answer has no "id" (kept as v2 had it).
        return NovaJson.Ok(Format(ctx.Version, null, values.ToDictionary(v => v.Key, v => (JsonNode)v.Value.Limit)));
    }

    internal static async Task<IResult> DeleteAsync(HttpContext http, string id, QuotaStore store)
    {
        var ctx = RequestContext.Of(http);
        ctx.RequireAdmin("os_compute_api:os-quota-sets:delete");
        await store.DeleteLimitsAsync(id, UserId(http), http.RequestAborted);
        return TypedResults.StatusCode(StatusCodes.Status202Accepted);
    }

    /// <summary>The project's quotas, or one user's in it.</summary>
    private static Task<Dictionary<string, QuotaUsage>> QuotasAsync(QuotaEngine quotas, string projectId, string? userId, CancellationToken cancellationToken) =>
        userId is null ? quotas.ProjectQuotasAsync(projectId, cancellationToken) : quotas.UserQuotasAsync(projectId, userId, cancellationToken);

    /// <summary>Nova's _common_quota: an integer, or its decimal string, from -1 (unlimited) to 2^31-1.</summary>
    internal static Dictionary<string, long> ParseLimits(JsonObject set, string field)
    {
        var result = new Dictionary<string, long>();
        foreach (var (key, node) in set)
        {
            if (key == "force")
            {
                continue;
            }
            var path = $"{field}/{key}";
            long value;
            if (node is JsonValue v && v.GetValueKind() == JsonValueKind.Number)
            {
                if (!v.TryGetValue(out value))
                {
                    throw BodySchema.Invalid(path, node, $"{NovaJson.Describe(node)} is not of type 'integer', 'string'");
                }
                if (value < -1)
                {
                    throw BodySchema.Invalid(path, node, $"{value} is less than the minimum of -1");
                }
                if (value > int.MaxValue)
                {
                    throw BodySchema.Invalid(path, node, $"{value} is greater than the maximum of {int.MaxValue}");
                }
            }
            else if (node is JsonValue s && s.GetValueKind() == JsonValueKind.String)
            {
                var text = s.GetValue<string>();
                if (!IsSignedDecimal(text))
                {
                    throw BodySchema.Invalid(path, node, $"'{text}' does not match '^-?[0-9]+$'");
                }
                // The schema bounds numbers only; a string out of range fails the settable range check instead.
                value = long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var parsed) && parsed <= int.MaxValue
                    ? parsed
                    : throw new BadRequestException($"Quota limit {text} for {key} must be less than or equal to {int.MaxValue}.");
            }
            else
            {
                throw BodySchema.Invalid(path, node, $"{NovaJson.Describe(node)} is not of type 'integer', 'string'");
            }
            result[key] = value;
        }
        return result;
    }

    private static bool IsSignedDecimal(string text)
    {
        var digits = text.StartsWith('-') ? text[1..] : text;
        return digits.Length > 0 && digits.All(char.IsAsciiDigit);
    }

    /// <summary>_validate_quota_limit: -1 means unlimited on either side.</summary>
    private static void ValidateLimit(string resource, long limit, long minimum, long maximum)
    {
        static double Inf(long value) => value == -1 ? double.PositiveInfinity : value;
        if (Inf(limit) < Inf(minimum))
        {
            throw new BadRequestException($"Quota limit {limit} for {resource} must be greater than or equal to already used and reserved {minimum}.");
        }
        if (Inf(limit) > Inf(maximum))
        {
            throw new BadRequestException($"Quota limit {limit} for {resource} must be less than or equal to {maximum}.");
        }
    }

    /// <summary>The user_id query parameter; from 2.75 it is the only one allowed.</summary>
    private static string? UserId(HttpContext http)
    {
        if (RequestContext.Of(http).Version.AtLeast(75))
        {
            QuerySchema.NoAdditional(http, "user_id");
        }
        return http.Request.Query["user_id"].FirstOrDefault() is { Length: > 0 } u ? u : null;
    }

    private static JsonObject Format(ApiVersion version, string? projectId, Dictionary<string, JsonNode> values)
    {
        var set = new JsonObject();
        if (projectId is not null)
        {
            set["id"] = projectId;
        }
        foreach (var (name, _) in QuotaEngine.Resources)
        {
            if (!Hidden(version, name) && values.TryGetValue(name, out var value))
            {
                set[name] = value;
            }
        }
        return new JsonObject { ["quota_set"] = set };
    }
}
