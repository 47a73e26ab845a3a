using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Api;
using Ferry.ControlPlane.Identity;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Networking;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.ControlPlane.Networking;

/// <summary>
/// The Neutron v2.0 subset Nova and the clients use (https://docs.openstack.org/api-ref/network/v2/): networks, IPv4
/// subnets, ports with fixed IPs, and the port-binding extension (<c>binding-extended</c>) that moves a port's binding
/// to a live migration's destination at switch-over. Errors in Neutron's shape.
/// </summary>
public static class NetworkEndpoints
{
    private const string IdentityKey = "ferry.network.identity";

    /// <summary>The most items one page of a list holds (as Nova's max_limit: no unbounded list).</summary>
    internal const int MaxPage = 1000;

    /// <summary>The extensions served, as (alias, name, description): the clients and Nova check for some by alias.</summary>
    private static readonly (string Alias, string Name, string Description)[] s_extensions =
    [
        ("binding", "Port Binding", "Expose port bindings of a virtual port to external application"),
        ("binding-extended", "Port Bindings Extended", "Expose port bindings of a virtual port to external application"),
        ("external-net", "Neutron external network", "Adds external network attribute to network resource."),
        ("network-mtu", "Network MTU", "Provides MTU attribute for a network resource."),
        ("port-security", "Port Security", "Provides port security"),
        ("project-id", "project_id field enabled", "Extension that indicates that project_id field is enabled."),
        ("provider", "Provider Network", "Expose mapping of virtual networks to physical networks"),
        ("standard-attr-description", "standard-attr-description", "Extension to add descriptions to standard attributes"),
        ("standard-attr-revisions", "Resource revision numbers", "This extension will display the revision number of neutron resources."),
        ("standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes."),
    ];

    public static RouteGroupBuilder MapNetworkApi(this IEndpointRouteBuilder endpoints)
    {
        var api = endpoints.MapGroup("");
        api.AddEndpointFilter(HandleRequestAsync);
        api.MapGet("/", (HttpContext http) => Json(new JsonObject
        {
            ["versions"] = new JsonArray(new JsonObject
            {
                ["id"] = "v2.0",
                ["status"] = "CURRENT",
                ["links"] = new JsonArray(new JsonObject { ["rel"] = "self", ["href"] = $"{NovaJson.BaseUrl(http)}/v2.0/" }),
            }),
        }));
        api.MapGet("/v2.0/", Resources);
        api.MapGet("/v2.0/extensions", () => Json(new JsonObject { ["extensions"] = new JsonArray([.. s_extensions.Select(e => (JsonNode)Extension(e))]) }));
        api.MapGet("/v2.0/extensions/{alias}", (string alias) => s_extensions.FirstOrDefault(e => e.Alias == alias) is { Alias: not null } e
            ? Json(new JsonObject { ["extension"] = Extension(e) })
            : throw new NeutronException(404, "HTTPNotFound", $"Extension with alias {alias} does not exist"));

        api.MapGet("/v2.0/networks", NetworkHandlers.ListAsync);
        api.MapPost("/v2.0/networks", NetworkHandlers.CreateAsync);
        api.MapGet("/v2.0/networks/{id}", NetworkHandlers.ShowAsync);
        api.MapPut("/v2.0/networks/{id}", NetworkHandlers.UpdateAsync);
        api.MapDelete("/v2.0/networks/{id}", NetworkHandlers.DeleteAsync);

        api.MapGet("/v2.0/subnets", SubnetHandlers.ListAsync);
        api.MapPost("/v2.0/subnets", SubnetHandlers.CreateAsync);
        api.MapGet("/v2.0/subnets/{id}", SubnetHandlers.ShowAsync);
        api.MapPut("/v2.0/subnets/{id}", SubnetHandlers.UpdateAsync);
        api.MapDelete("/v2.0/subnets/{id}", SubnetHandlers.DeleteAsync);

        api.MapGet("/v2.0/ports", PortHandlers.ListAsync);
        api.MapPost("/v2.0/ports", PortHandlers.CreateAsync);
        api.MapGet("/v2.0/ports/{id}", PortHandlers.ShowAsync);
        api.MapPut("/v2.0/ports/{id}", PortHandlers.UpdateAsync);
        api.MapDelete("/v2.0/ports/{id}", PortHandlers.DeleteAsync);
        api.MapGet("/v2.0/ports/{id}/bindings", PortHandlers.ListBindingsAsync);
        api.MapPost("/v2.0/ports/{id}/bindings", PortHandlers.CreateBindingAsync);
        api.MapGet("/v2.0/ports/{id}/bindings/{host}", PortHandlers.ShowBindingAsync);
        api.MapDelete("/v2.0/ports/{id}/bindings/{host}", PortHandlers.DeleteBindingAsync);
        api.MapPut("/v2.0/ports/{id}/bindings/{host}/activate", PortHandlers.ActivateBindingAsync);

        // Security groups are not enforced here; the clients list them (server show, port create), so the list answers empty.
        api.MapGet("/v2.0/security-groups", () => Json(new JsonObject { ["security_groups"] = new JsonArray() }));
        api.MapGet("/v2.0/quotas/{projectId}", Quota);

        api.Map("{**path}", (HttpContext http) => AllowedMethods.IsWrongMethod(http)
            ? Error(405, "HTTPMethodNotAllowed", $"The method {http.Request.Method} is not allowed for this resource.")
            : Error(404, "HTTPNotFound", "The resource could not be found.")).AsFallback();
        return api;
    }

    /// <summary>
    /// Neutron's default quotas, which <c>openstack quota show</c> reads beside Nova's. They are not enforced here (no
    /// quota table): the numbers say what a default Neutron would allow.
    /// </summary>
    private static IResult Quota(HttpContext http, string projectId)
    {
        var caller = Caller(http);
        if (!caller.IsAdmin && caller.ProjectId != projectId)
        {
            throw PolicyRefused("rule:get_quota");
        }
        var quota = new JsonObject();
        foreach (var (resource, limit) in new[] { ("network", 100), ("subnet", 100), ("port", 500), ("router", 10), ("floatingip", 50),
            ("security_group", 10), ("security_group_rule", 100), ("rbac_policy", 10), ("subnetpool", -1) })
        {
            quota[resource] = limit;
        }
        return Json(new JsonObject { ["quota"] = quota });
    }

    private static IResult Resources(HttpContext http)
    {
        var resources = new JsonArray();
        foreach (var (name, collection) in new[] { ("network", "networks"), ("subnet", "subnets"), ("port", "ports") })
        {
            resources.Add((JsonNode)new JsonObject
            {
                ["name"] = name,
                ["collection"] = collection,
                ["links"] = new JsonArray(new JsonObject { ["rel"] = "self", ["href"] = $"{NovaJson.BaseUrl(http)}/v2.0/{collection}" }),
            });
        }
        return Json(new JsonObject { ["resources"] = resources });
    }

    private static JsonObject Extension((string Alias, string Name, string Description) e) => new()
    {
        ["alias"] = e.Alias,
        ["name"] = e.Name,
        ["description"] = e.Description,
        ["updated"] = "2013-01-20T00:00:00-00:00",
        ["links"] = new JsonArray(),
    };

    /// <summary>Neutron's error body.</summary>
    public static IResult Error(int status, string type, string message) =>
        Json(new JsonObject { ["NeutronError"] = new JsonObject { ["type"] = type, ["message"] = message, ["detail"] = "" } }, status);

    internal static IResult Json(JsonNode body, int status = 200) => TypedResults.Json(body, ApiJsonContext.Default.JsonNode, statusCode: status);

    private static async ValueTask<object?> HandleRequestAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        http.Response.Headers["x-openstack-request-id"] = $"req-{Guid.NewGuid()}";
        var path = http.Request.Path.Value ?? "";
        if (path is not ("" or "/"))
        {
            var identity = await http.RequestServices.GetRequiredService<IRequestAuthenticator>().AuthenticateAsync(http, http.RequestAborted);
            if (identity is null)
            {
                return KeystoneChallenge.Unauthorized(http);
            }
            http.Items[IdentityKey] = identity;
        }
        try
        {
            return await next(context);
        }
        catch (NeutronException ex)
        {
            return Error(ex.HttpStatus, ex.Type, ex.Message);
        }
        catch (JsonException)
        {
            return Error(400, "HTTPBadRequest", "Malformed request body");
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex)
        {
            ApiErrorLog.RequestFailed(http, "network", ex);
            return Error(500, "HTTPInternalServerError", "Request Failed: internal server error while processing your request.");
        }
    }

    /// <summary>The authenticated caller (the request filter answered 401 to anyone else).</summary>
    internal static RequestIdentity Caller(HttpContext http) =>
        http.Items[IdentityKey] as RequestIdentity ?? throw new NeutronException(401, "HTTPUnauthorized", "The request you have made requires authentication.");

    /// <summary>oslo.policy's refusal, naming the rule as Neutron does.</summary>
    internal static NeutronException PolicyRefused(string rule) => new(403, "PolicyNotAuthorized", $"({rule}) is disallowed by policy");

    /// <summary>The writer refused before anything changes: a reader token may only read.</summary>
    internal static void RequireWriter(RequestIdentity caller, string rule)
    {
        if (caller.ReadOnly)
        {
            throw PolicyRefused(rule);
        }
    }

    /// <summary>The body's object under <paramref name="resource"/>; 400 when the body is not one.</summary>
    internal static async Task<JsonObject> BodyAsync(HttpContext http, string resource)
    {
        // The one request reader of every API: repeated keys keep the last, lone surrogates and bad UTF-8 are a 400.
        var body = await RequestJson.ReadAsync(http.Request, http.RequestAborted);
        return body is JsonObject o && o[resource] is JsonObject value
            ? value
            : throw NeutronException.BadRequest($"Resource body required");
    }

    /// <summary>Refuses attributes the resource does not have, or may not be set by this request (Neutron's message).</summary>
    internal static void OnlyKnown(JsonObject body, IReadOnlyCollection<string> allowed)
    {
        var unknown = body.Select(p => p.Key).Where(k => !allowed.Contains(k)).ToList();
        if (unknown.Count > 0)
        {
            throw NeutronException.BadRequest($"Unrecognized attribute(s) '{string.Join(", ", unknown)}'");
        }
    }

    internal static string? Text(JsonObject body, string key, int maxLength = 255)
    {
        if (!body.TryGetPropertyValue(key, out var node) || node is null)
        {
            return null;
        }
        if (node.GetValueKind() != JsonValueKind.String)
        {
            throw NeutronException.BadRequest($"Invalid input for {key}. Reason: '{node.ToJsonString()}' is not a valid string.");
        }
        var text = node.GetValue<string>();
        return text.Length > maxLength
            ? throw NeutronException.BadRequest($"Invalid input for {key}. Reason: '{text}' exceeds maximum length of {maxLength}.")
            : text;
    }

    /// <summary>A boolean attribute; Neutron's converter also takes "true"/"false" and 1/0.</summary>
    internal static bool? Bool(JsonObject body, string key)
    {
        if (!body.TryGetPropertyValue(key, out var node) || node is null)
        {
            return null;
        }
        return node.GetValueKind() switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.String when bool.TryParse(node.GetValue<string>(), out var b) => b,
            JsonValueKind.Number when node.GetValue<JsonElement>().TryGetInt32(out var n) && n is 0 or 1 => n == 1,
            _ => throw NeutronException.BadRequest($"Invalid input for {key}. Reason: '{node.ToJsonString().Trim('"')}' cannot be converted to boolean."),
        };
    }

    /// <summary>
    /// A list page: the views that pass the query's attribute filters, after its marker, at most its limit (and
    /// <see cref="MaxPage"/>), each cut to its <c>fields</c>, with a next link when more may follow.
    /// </summary>
    internal static IResult Page(HttpContext http, string collection, IEnumerable<(string Id, JsonObject View)> items, bool filteredAlready = false)
    {
        var query = http.Request.Query;
        var limit = MaxPage;
        if (query["limit"].ToString() is { Length: > 0 } limitText)
        {
            if (!int.TryParse(limitText, NumberStyles.None, CultureInfo.InvariantCulture, out limit))
            {
                throw NeutronException.BadRequest($"Bad limit request: Limit must be an integer 0 or greater and not '{limitText}'.");
            }
            limit = limit == 0 ? MaxPage : Math.Min(limit, MaxPage);
        }
        var marker = query["marker"].ToString();
        var filtered = items.Where(i => filteredAlready || Matches(i.View, query)).Where(i => marker.Length == 0 || string.CompareOrdinal(i.Id, marker) > 0);
        var page = filtered.Take(limit + 1).ToList();
        var more = page.Count > limit;
        if (more)
        {
            page.RemoveAt(limit);
        }
        var fields = query["fields"].Where(f => !string.IsNullOrEmpty(f)).SelectMany(f => f!.Split(',')).ToHashSet();
        var body = new JsonObject { [collection] = new JsonArray([.. page.Select(i => (JsonNode)Fields(i.View, fields))]) };
        if (more)
        {
            var next = query.Where(q => q.Key != "marker").SelectMany(q => q.Value.Select(v => $"{Uri.EscapeDataString(q.Key)}={Uri.EscapeDataString(v ?? "")}"))
                .Append($"marker={Uri.EscapeDataString(page[^1].Id)}");
            body[$"{collection}_links"] = new JsonArray(new JsonObject
            {
                ["rel"] = "next",
                ["href"] = $"{NovaJson.BaseUrl(http)}{http.Request.Path}?{string.Join('&', next)}",
            });
        }
        return Json(body);
    }

    /// <summary>One resource, cut to the query's <c>fields</c>.</summary>
    internal static IResult One(HttpContext http, string resource, JsonObject view, int status = 200)
    {
        var fields = http.Request.Query["fields"].Where(f => !string.IsNullOrEmpty(f)).SelectMany(f => f!.Split(',')).ToHashSet();
        return Json(new JsonObject { [resource] = Fields(view, fields) }, status);
    }

    private static JsonObject Fields(JsonObject view, HashSet<string> fields)
    {
        if (fields.Count == 0)
        {
            return view;
        }
        var cut = new JsonObject();
        foreach (var (key, value) in view)
        {
            if (fields.Contains(key))
            {
                cut[key] = value?.DeepClone();
            }
        }
        return cut;
    }

    private static readonly HashSet<string> s_pagingKeys = ["fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse"];

    /// <summary>
    /// Neutron's list filters: every other query key names an attribute and its values the ones accepted;
    /// <c>fixed_ips=ip_address=…</c> / <c>subnet_id=…</c> match a port's addresses. An unknown attribute matches nothing.
    /// </summary>
    private static bool Matches(JsonObject view, IQueryCollection query)
    {
        foreach (var (key, values) in query)
        {
            if (s_pagingKeys.Contains(key))
            {
                continue;
            }
            if (key == "fixed_ips")
            {
                if (!values.All(v => view["fixed_ips"] is JsonArray ips && ips.Any(ip => FixedIpMatches(ip, v ?? ""))))
                {
                    return false;
                }
                continue;
            }
            if (!view.TryGetPropertyValue(key, out var node))
            {
                return false;
            }
            var actual = node switch
            {
                null => "",
                JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValue<bool>() ? "true" : "false",
                JsonValue v => v.ToString(),
                _ => node.ToJsonString(),
            };
            if (!values.Any(v => string.Equals(v, actual, node is JsonValue b && b.GetValueKind() is JsonValueKind.True or JsonValueKind.False
                ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal)))
            {
                return false;
            }
        }
        return true;
    }

    private static bool FixedIpMatches(JsonNode? ip, string filter)
    {
        var eq = filter.IndexOf('=', StringComparison.Ordinal);
        if (eq < 0 || ip is not JsonObject o)
        {
            return false;
        }
        var (key, value) = (filter[..eq], filter[(eq + 1)..]);
        return key switch
        {
            "ip_address" => o["ip_address"]?.GetValue<string>() == value,
            "subnet_id" => o["subnet_id"]?.GetValue<string>() == value,
            _ => false,
        };
    }

    /// <summary>A new resource id, as Neutron makes them (a random UUID, lower case).</summary>
    internal static string NewId() => Guid.NewGuid().ToString();

    internal static NetworkStore Store(HttpContext http) => http.RequestServices.GetRequiredService<NetworkStore>();

    internal static TimeProvider Time(HttpContext http) => http.RequestServices.GetService<TimeProvider>() ?? TimeProvider.System;
}
