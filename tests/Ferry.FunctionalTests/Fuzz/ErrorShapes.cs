using System.Text.Json;
using System.Text.Json.Nodes;

namespace Ferry.FunctionalTests.Fuzz;

/// <summary>The services Ferry serves, each with its own error body (Cinder's is Nova's).</summary>
internal enum FuzzService
{
    Compute,
    Placement,
    Identity,
    Image,
    Network,
    Volume,
}

/// <summary>
/// What an error body of each real service looks like; <see cref="Check"/> returns why a body is not one
/// (null when it is).
/// </summary>
internal static class ErrorShapes
{
    /// <summary>Nova's <c>wsgi.Fault._fault_names</c>; any other status is <c>computeFault</c>.</summary>
    public static string NovaFaultName(int status) => status switch
    {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 => "overLimit",
        415 => "badMediaType",
        429 => "overLimit",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    };

    public static string? Check(FuzzService service, int status, string? contentType, string body)
    {
        if (body.Length == 0)
        {
            return "empty error body";
        }
        if (contentType is null || !contentType.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
        {
            return $"error body served as {contentType ?? "no content type"}";
        }
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(body);
        }
        catch (JsonException)
        {
            return "error body is not JSON";
        }
        if (node is not JsonObject o)
        {
            return "error body is not a JSON object";
        }
        // keystonemiddleware answers 401 in front of every service with Keystone's body.
        if (status == 401 && Keystone(o, status) is null)
        {
            return null;
        }
        return service switch
        {
            FuzzService.Compute => Nova(o, status),
            FuzzService.Identity => Keystone(o, status),
            FuzzService.Image => Glance(o, status),
            FuzzService.Placement => Placement(o, status),
            FuzzService.Network => Neutron(o),
            // Cinder's Fault is Nova's: the same fault names and {"code", "message"} (cinder/api/openstack/wsgi.py).
            FuzzService.Volume => Nova(o, status),
            _ => "unknown service",
        };
    }

    /// <summary><c>{"badRequest": {"code": 400, "message": "…"}}</c> (nova/api/openstack/wsgi.py, Fault).</summary>
    private static string? Nova(JsonObject o, int status)
    {
        var name = NovaFaultName(status);
        if (o.Count != 1 || o[name] is not JsonObject fault)
        {
            return $"not Nova's fault body (expected the single key '{name}')";
        }
        if (!IsInt(fault["code"], status))
        {
            return $"Nova fault code is not {status}";
        }
        return IsString(fault["message"]) ? null : "Nova fault has no string message";
    }

    /// <summary><c>{"error": {"code": 400, "title": "Bad Request", "message": "…"}}</c> (keystone/server/flask/common.py).</summary>
    private static string? Keystone(JsonObject o, int status)
    {
        if (o.Count != 1 || o["error"] is not JsonObject error)
        {
            return "not Keystone's error body (expected the single key 'error')";
        }
        if (!IsInt(error["code"], status))
        {
            return $"Keystone error code is not {status}";
        }
        return IsString(error["title"]) && IsString(error["message"]) ? null : "Keystone error without string title and message";
    }

    /// <summary>webob's JSON error, which Glance's API answers with: <c>{"code": "400 Bad Request", "title", "message"}</c>.</summary>
    private static string? Glance(JsonObject o, int status)
    {
        if (o["code"] is not JsonValue code || code.GetValueKind() != JsonValueKind.String
            || !code.GetValue<string>().StartsWith($"{status} ", StringComparison.Ordinal))
        {
            return $"not Glance's (webob's) error body: code is not \"{status} …\"";
        }
        return IsString(o["title"]) && IsString(o["message"]) ? null : "Glance error without string title and message";
    }

    /// <summary>
    /// <c>{"errors": [{"status": 400, "title", "detail", "code", "request_id"}]}</c>
    /// (placement/util.py json_error_formatter; code from microversion 1.23).
    /// </summary>
    private static string? Placement(JsonObject o, int status)
    {
        if (o.Count != 1 || o["errors"] is not JsonArray { Count: 1 } errors || errors[0] is not JsonObject error)
        {
            return "not Placement's error body (expected 'errors' with one entry)";
        }
        if (!IsInt(error["status"], status))
        {
            return $"Placement error status is not {status}";
        }
        if (!IsString(error["title"]) || !IsString(error["detail"]))
        {
            return "Placement error without string title and detail";
        }
        return IsString(error["request_id"]) ? null : "Placement error without request_id";
    }

    /// <summary><c>{"NeutronError": {"type", "message", "detail"}}</c> (neutron/api/api_common.py); neutronclient needs all three.</summary>
    private static string? Neutron(JsonObject o)
    {
        if (o.Count != 1 || o["NeutronError"] is not JsonObject error)
        {
            return "not Neutron's error body (expected the single key 'NeutronError')";
        }
        return IsString(error["type"]) && IsString(error["message"]) && IsString(error["detail"]) ? null : "Neutron error without string type, message and detail";
    }

    private static bool IsInt(JsonNode? node, int expected) =>
        node is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<int>(out var i) && i == expected;

    private static bool IsString(JsonNode? node) => node is JsonValue v && v.GetValueKind() == JsonValueKind.String;
}
