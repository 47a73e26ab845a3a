using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Api;
using Ferry.ControlPlane.Identity;
using Ferry.Core.Errors;
using Ferry.Core.Volumes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.ControlPlane.Volumes;

/// <summary>
/// The Cinder v3 subset the clients and Nova use (https://docs.openstack.org/api-ref/block-storage/v3/): version
/// discovery, volumes (create, from an image too; list; show; update; delete; extend, detach and reset actions) and the
/// attachments API Nova attaches through (3.27+, os-complete 3.44+). Every route answers under <c>/v3/{project_id}/…</c>
/// (the catalog's form) and <c>/v3/…</c> (Cinder 3.67's). Errors in Cinder's shape, microversions in its header.
/// </summary>
public static class VolumeEndpoints
{
    private const string IdentityKey = "ferry.volume.identity";
    private const string VersionKey = "ferry.volume.version";

    /// <summary>The microversions served (cinder/api/openstack/api_version_request.py numbers them the same way).</summary>
    public static readonly ApiVersion MinVersion = new(3, 0);

    public static readonly ApiVersion MaxVersion = new(3, 70);

    /// <summary>Cinder's <c>osapi_max_limit</c>: the most items one page of a list holds.</summary>
    internal const int MaxPage = 1000;

    public static RouteGroupBuilder MapVolumeApi(this IEndpointRouteBuilder endpoints)
    {
        var api = endpoints.MapGroup("");
        api.AddEndpointFilter(HandleRequestAsync);
        // Cinder's root answers 300 Multiple Choices; /v3/ the same list with 200 (what keystoneauth's discovery reads).
        api.MapGet("/", (HttpContext http) => Json(Versions(http), 300));
        api.MapGet("/v3/", (HttpContext http) => Json(Versions(http)));
        MapResources(api.MapGroup("/v3/{project_id}"));
        MapResources(api.MapGroup("/v3"));
        api.Map("{**path}", (HttpContext http) => AllowedMethods.IsWrongMethod(http)
            ? Error(405, "The method is not allowed for the requested URL.")
            : Error(404, "The resource could not be found.")).AsFallback();
        return api;
    }

    private static void MapResources(RouteGroupBuilder v3)
    {
        v3.MapGet("/volumes", VolumeHandlers.ListAsync);
        v3.MapGet("/volumes/detail", VolumeHandlers.ListDetailAsync);
        v3.MapPost("/volumes", VolumeHandlers.CreateAsync);
        v3.MapGet("/volumes/{id}", VolumeHandlers.ShowAsync);
        v3.MapPut("/volumes/{id}", VolumeHandlers.UpdateAsync);
        v3.MapDelete("/volumes/{id}", VolumeHandlers.DeleteAsync);
        v3.MapPost("/volumes/{id}/action", VolumeHandlers.ActionAsync);

        v3.MapGet("/os-quota-sets/{target}", QuotaHandlers.ShowAsync);
        v3.MapGet("/os-quota-sets/{target}/defaults", QuotaHandlers.Defaults);
        v3.MapGet("/limits", QuotaHandlers.LimitsAsync);
        v3.MapGet("/attachments", AttachmentHandlers.ListAsync);
        v3.MapGet("/attachments/detail", AttachmentHandlers.ListDetailAsync);
        v3.MapPost("/attachments", AttachmentHandlers.CreateAsync);
        v3.MapGet("/attachments/{id}", AttachmentHandlers.ShowAsync);
        v3.MapPut("/attachments/{id}", AttachmentHandlers.UpdateAsync);
        v3.MapDelete("/attachments/{id}", AttachmentHandlers.DeleteAsync);
        v3.MapPost("/attachments/{id}/action", AttachmentHandlers.ActionAsync);
    }

    /// <summary>The one version document (cinder/api/versions.py): v3.0 CURRENT with its microversion range.</summary>
    private static JsonObject Versions(HttpContext http) => new()
    {
        ["versions"] = new JsonArray(new JsonObject
        {
            ["id"] = "v3.0",
            ["status"] = "CURRENT",
            ["version"] = MaxVersion.ToString(),
            ["min_version"] = MinVersion.ToString(),
            ["updated"] = "2023-08-31T00:00:00Z",
            ["links"] = new JsonArray(
                new JsonObject { ["rel"] = "describedby", ["type"] = "text/html", ["href"] = "https://docs.openstack.org/" },
                new JsonObject { ["rel"] = "self", ["href"] = $"{NovaJson.BaseUrl(http)}/v3/" }),
            ["media-types"] = new JsonArray(new JsonObject
            {
                ["base"] = "application/json",
                ["type"] = "application/vnd.openstack.volume+json;version=3",
            }),
        }),
    };

    /// <summary>Cinder's error body: <c>{"badRequest": {"code": 400, "message": "…"}}</c>.</summary>
    public static IResult Error(int status, string message) =>
        Json(new JsonObject { [FerryException.FaultNameOf(status)] = new JsonObject { ["code"] = status, ["message"] = message } }, status);

    internal static IResult Json(JsonNode body, int status = 200) => TypedResults.Json(body, ApiJsonContext.Default.JsonNode, statusCode: status);

    private static async ValueTask<object?> HandleRequestAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var requestId = $"req-{Guid.NewGuid()}";
        http.Response.Headers["x-openstack-request-id"] = requestId;
        http.Response.Headers["x-compute-request-id"] = requestId;
        var path = http.Request.Path.Value ?? "";
        try
        {
            if (path is "" or "/" or "/v3" or "/v3/")
            {
                return await next(context);
            }
            var version = RequestedVersion(http);
            http.Items[VersionKey] = version;
            http.Response.Headers["OpenStack-API-Version"] = $"volume {version}";
            http.Response.Headers.Vary = "OpenStack-API-Version";
            var identity = await http.RequestServices.GetRequiredService<IRequestAuthenticator>().AuthenticateAsync(http, http.RequestAborted);
            if (identity is null)
            {
                return KeystoneChallenge.Unauthorized(http);
            }
            http.Items[IdentityKey] = identity;
            // Cinder's Resource refuses a URL whose project is not the token's (wsgi.py, _process_stack).
            if (http.Request.RouteValues["project_id"] is string project && project != identity.ProjectId)
            {
                throw CinderException.BadRequest("Malformed request url");
            }
            return await next(context);
        }
        catch (CinderException ex)
        {
            return Error(ex.HttpStatus, ex.Message);
        }
        catch (JsonException)
        {
            return Error(400, "Malformed request body");
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex)
        {
            ApiErrorLog.RequestFailed(http, "volume", ex);
            return Error(500, "The server has either erred or is incapable of performing the requested operation.");
        }
    }

    /// <summary>
    /// The request's <c>OpenStack-API-Version: volume X</c>: none is 3.0 (what cinderclient sends), <c>latest</c> the most
    /// served; a malformed one 400, one outside the range 406 (Cinder's messages).
    /// </summary>
    private static ApiVersion RequestedVersion(HttpContext http)
    {
        foreach (var header in http.Request.Headers["OpenStack-API-Version"])
        {
            foreach (var item in (header ?? "").Split(','))
            {
                var parts = item.Trim().Split(' ', 2, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                if (parts is not [var service, var value] || !service.Equals("volume", StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }
                if (value.Equals("latest", StringComparison.OrdinalIgnoreCase))
                {
                    return MaxVersion;
                }
                if (!ApiVersion.TryParse(value, out var version))
                {
                    throw CinderException.BadRequest($"API Version String {value} is of invalid format. Must be of format MajorNum.MinorNum.");
                }
                return version < MinVersion || version > MaxVersion
                    ? throw new CinderException(406, $"Version {version} is not supported by the API. Minimum is {MinVersion} and maximum is {MaxVersion}.")
                    : version;
            }
        }
        return MinVersion;
    }

    /// <summary>The microversion the request asked for (3.0 when it named none).</summary>
    internal static ApiVersion Version(HttpContext http) => http.Items[VersionKey] as ApiVersion? ?? MinVersion;

    /// <summary>A route added in a later microversion is not there below it (Cinder answers 404).</summary>
    internal static void RequireVersion(HttpContext http, ApiVersion since)
    {
        if (Version(http) < since)
        {
            throw CinderException.NotFound();
        }
    }

    /// <summary>The authenticated caller (the request filter answered 401 to anyone else).</summary>
    internal static RequestIdentity Caller(HttpContext http) =>
        http.Items[IdentityKey] as RequestIdentity ?? throw new CinderException(401, "The request you have made requires authentication.");

    /// <summary>The writer refused before anything changes: a reader token may only read.</summary>
    internal static void RequireWriter(RequestIdentity caller, string rule)
    {
        if (caller.ReadOnly)
        {
            throw CinderException.PolicyRefused(rule);
        }
    }

    /// <summary>The body's object under <paramref name="resource"/>; 400 when the body is not one.</summary>
    internal static async Task<JsonObject> BodyAsync(HttpContext http, string resource)
    {
        var body = await RequestJson.ReadAsync(http.Request, http.RequestAborted);
        return body is JsonObject o && o[resource] is JsonObject value
            ? value
            : throw CinderException.BadRequest($"Missing required element '{resource}' in request body.");
    }

    /// <summary>A string attribute (null when absent or null); jsonschema's message for another type or a long one.</summary>
    internal static string? Text(JsonObject body, string key, int maxLength = 255)
    {
        if (!body.TryGetPropertyValue(key, out var node) || node is null)
        {
            return null;
        }
        if (node.GetValueKind() != JsonValueKind.String)
        {
            throw InvalidField(key, node, $"{node.ToJsonString()} is not of type 'string', 'null'");
        }
        var text = node.GetValue<string>();
        return text.Length > maxLength ? throw InvalidField(key, node, $"'{text}' is too long") : text;
    }

    /// <summary>Cinder's schema refusal: <c>Invalid input for field/attribute size. Value: 0. 0 is less than the minimum of 1</c>.</summary>
    internal static CinderException InvalidField(string key, JsonNode? value, string reason) =>
        CinderException.BadRequest($"Invalid input for field/attribute {key}. Value: {Shown(value)}. {reason}");

    private static string Shown(JsonNode? value) => value switch
    {
        null => "None",
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        JsonValue v when v.GetValueKind() == JsonValueKind.True => "True",
        JsonValue v when v.GetValueKind() == JsonValueKind.False => "False",
        _ => value.ToJsonString(),
    };

    /// <summary>
    /// A size in GiB as Cinder's schema takes it (<c>volume_size</c>: an integer or a string of digits, at least 1); null when absent.
    /// </summary>
    internal static int? Size(JsonObject body, string key)
    {
        if (!body.TryGetPropertyValue(key, out var node) || node is null)
        {
            return null;
        }
        long size;
        switch (node.GetValueKind())
        {
            case JsonValueKind.Number when node.GetValue<JsonElement>().TryGetInt64(out var n):
                size = n;
                break;
            case JsonValueKind.Number:
                throw InvalidField(key, node, $"{node.ToJsonString()} is not of type 'integer', 'string'");
            case JsonValueKind.String when node.GetValue<string>() is var s && s.Length > 0 && s.All(char.IsAsciiDigit):
                if (!long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out size))
                {
                    size = long.MaxValue;
                }
                break;
            case JsonValueKind.String:
                throw InvalidField(key, node, $"'{node.GetValue<string>()}' does not match '^[0-9]+$'");
            default:
                throw InvalidField(key, node, $"{node.ToJsonString()} is not of type 'integer', 'string'");
        }
        return size switch
        {
            < 1 => throw InvalidField(key, node, $"{size} is less than the minimum of 1"),
            > int.MaxValue => throw InvalidField(key, node, $"{size} is greater than the maximum of {int.MaxValue}"),
            _ => (int)size,
        };
    }

    /// <summary>The project a list covers: the caller's, or every project for an admin asking <c>all_tenants</c> (Cinder ignores it for others).</summary>
    internal static string? ListScope(HttpContext http, RequestIdentity caller)
    {
        var query = http.Request.Query;
        var allTenants = query.ContainsKey("all_tenants")
            && query["all_tenants"].ToString().ToLowerInvariant() is not ("0" or "false" or "f" or "no" or "off");
        if (!caller.IsAdmin || !allTenants)
        {
            return caller.ProjectId;
        }
        return query["project_id"].ToString() is { Length: > 0 } project ? project : null;
    }

    /// <summary>
    /// A page of a list (Cinder's <c>limit</c>/<c>marker</c>): the items after the marker, at most the limit (and
    /// <see cref="MaxPage"/>), with a next link when the page is full.
    /// </summary>
    internal static (List<T> Page, JsonArray? Links) Page<T>(HttpContext http, IReadOnlyList<T> items, Func<T, string> id)
    {
        var query = http.Request.Query;
        var limit = MaxPage;
        if (query["limit"].ToString() is { Length: > 0 } limitText)
        {
            if (!int.TryParse(limitText, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out limit))
            {
                throw CinderException.InvalidInput("limit param must be an integer");
            }
            if (limit < 0)
            {
                throw CinderException.InvalidInput("limit param must be positive");
            }
            limit = Math.Min(limit, MaxPage);
        }
        var start = 0;
        if (query["marker"].ToString() is { Length: > 0 } marker)
        {
            var at = items.Select(id).ToList().IndexOf(marker);
            start = at >= 0 ? at + 1 : throw new CinderException(404, $"Marker {marker} could not be found.");
        }
        var page = items.Skip(start).Take(limit).ToList();
        if (page.Count == 0 || page.Count < limit || start + page.Count >= items.Count)
        {
            return (page, null);
        }
        var next = query.Where(q => q.Key != "marker").SelectMany(q => q.Value.Select(v => $"{Uri.EscapeDataString(q.Key)}={Uri.EscapeDataString(v ?? "")}"))
            .Append($"marker={Uri.EscapeDataString(id(page[^1]))}");
        return (page, new JsonArray(new JsonObject { ["rel"] = "next", ["href"] = $"{NovaJson.BaseUrl(http)}{http.Request.Path}?{string.Join('&', next)}" }));
    }

    internal static TimeProvider Time(HttpContext http) => http.RequestServices.GetService<TimeProvider>() ?? TimeProvider.System;
}

/// <summary>A Cinder microversion, <c>3.44</c>.</summary>
public readonly record struct ApiVersion(int Major, int Minor) : IComparable<ApiVersion>
{
    public static bool TryParse(string text, out ApiVersion version)
    {
        version = default;
        var parts = text.Split('.');
        if (parts is not [var major, var minor]
            || !int.TryParse(major, NumberStyles.None, CultureInfo.InvariantCulture, out var a)
            || !int.TryParse(minor, NumberStyles.None, CultureInfo.InvariantCulture, out var b))
        {
            return false;
        }
        version = new ApiVersion(a, b);
        return true;
    }

    public int CompareTo(ApiVersion other) => Major != other.Major ? Major.CompareTo(other.Major) : Minor.CompareTo(other.Minor);

    public static bool operator <(ApiVersion a, ApiVersion b) => a.CompareTo(b) < 0;

    public static bool operator >(ApiVersion a, ApiVersion b) => a.CompareTo(b) > 0;

    public static bool operator <=(ApiVersion a, ApiVersion b) => a.CompareTo(b) <= 0;

    public static bool operator >=(ApiVersion a, ApiVersion b) => a.CompareTo(b) >= 0;

    public override string ToString() => $"{Major}.{Minor}";
}
