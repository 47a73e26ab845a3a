using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.Core.Errors;

namespace Ferry.ControlPlane.Api;

/// <summary>
/// The JSON-schema checks Nova's <c>@validation.schema</c> makes before a controller runs; every
/// failure is a 400 with Nova's "Invalid input for field/attribute" message and changes nothing.
/// </summary>
internal static class BodySchema
{
    public static BadRequestException Invalid(string field, JsonNode? value, string reason) =>
        new($"Invalid input for field/attribute {field}. Value: {NovaJson.Describe(value)}. {reason}");

    /// <summary>The member <paramref name="key"/> of the body, which must be an object.</summary>
    public static JsonObject RequiredObject(JsonObject body, string key)
    {
        if (!body.TryGetPropertyValue(key, out var node))
        {
            throw new BadRequestException($"Invalid input for field/attribute {key}. Value: {NovaJson.Describe(body)}. '{key}' is a required property");
        }
        return node as JsonObject ?? throw Invalid(key, node, $"{NovaJson.Describe(node)} is not of type 'object'");
    }

    /// <summary>An object or null member (null and absent give an empty object).</summary>
    public static JsonObject ObjectOrNull(JsonObject body, string key)
    {
        body.TryGetPropertyValue(key, out var node);
        return node switch
        {
            null => [],
            JsonObject o => o,
            _ => throw Invalid(key, node, $"{NovaJson.Describe(node)} is not of type 'object', 'null'"),
        };
    }

    public static void NoAdditional(JsonObject o, string field, params string[] allowed)
    {
        var extra = o.Select(p => p.Key).Where(k => !allowed.Contains(k)).ToList();
        if (extra.Count > 0)
        {
            throw Invalid(field, o, $"Additional properties are not allowed ({string.Join(", ", extra.Select(e => $"'{e}'"))} {(extra.Count == 1 ? "was" : "were")} unexpected)");
        }
    }

    public static void Required(JsonObject o, string field, params string[] keys)
    {
        foreach (var key in keys)
        {
            if (!o.ContainsKey(key))
            {
                throw Invalid(field, o, $"'{key}' is a required property");
            }
        }
    }

    /// <summary>A string (or null when allowed) member; absent gives null.</summary>
    public static string? String(JsonObject o, string key, bool nullable = true, int minLength = 0, int maxLength = 255)
    {
        if (!o.TryGetPropertyValue(key, out var node) || node is null)
        {
            if (o.ContainsKey(key) && !nullable)
            {
                throw Invalid(key, null, "None is not of type 'string'");
            }
            return null;
        }
        if (node is not JsonValue v || v.GetValueKind() != JsonValueKind.String)
        {
            throw Invalid(key, node, $"{NovaJson.Describe(node)} is not of type 'string'");
        }
        var s = v.GetValue<string>();
        if (s.Length < minLength)
        {
            throw Invalid(key, node, $"'{s}' is too short");
        }
        if (s.Length > maxLength)
        {
            throw Invalid(key, node, $"'{s}' is too long");
        }
        return s;
    }

    /// <summary>Nova's <c>parameter_types.boolean</c>: true/false or their usual string and 0/1 spellings.</summary>
    public static bool? Boolean(JsonObject o, string key, bool allowNull = false)
    {
        if (!o.TryGetPropertyValue(key, out var node))
        {
            return null;
        }
        if (node is null)
        {
            return allowNull ? null : throw Invalid(key, null, "None is not of type 'boolean'");
        }
        if (TryBoolean(node, out var b))
        {
            return b;
        }
        throw Invalid(key, node, $"{NovaJson.Describe(node)} is not of type 'boolean', 'string'");
    }

    public static bool TryBoolean(JsonNode node, out bool value)
    {
        value = false;
        if (node is not JsonValue v)
        {
            return false;
        }
        switch (v.GetValueKind())
        {
            case JsonValueKind.True:
                value = true;
                return true;
            case JsonValueKind.False:
                return true;
            case JsonValueKind.Number when v.TryGetValue<int>(out var i) && i is 0 or 1:
                value = i == 1;
                return true;
            case JsonValueKind.String:
                return TryBoolean(v.GetValue<string>(), out value);
            default:
                return false;
        }
    }

    public static bool TryBoolean(string s, out bool value)
    {
        switch (s.Trim().ToLowerInvariant())
        {
            case "true" or "1" or "yes" or "y" or "on" or "t":
                value = true;
                return true;
            case "false" or "0" or "no" or "n" or "off" or "f":
                value = false;
                return true;
            default:
                value = false;
                return false;
        }
    }

    /// <summary>
    /// An integer member, also accepting its decimal string form as Nova's flavor schema does; absent gives
    /// null, and so does an explicit null only where the schema allows it (<paramref name="nullable"/>).
    /// </summary>
    public static int? Integer(JsonObject o, string key, int min = int.MinValue, int max = int.MaxValue, bool nullable = false)
    {
        if (!o.TryGetPropertyValue(key, out var node))
        {
            return null;
        }
        if (node is null)
        {
            return nullable ? null : throw Invalid(key, null, "None is not of type 'integer', 'string'");
        }
        int value;
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<int>(out var i))
        {
            value = i;
        }
        else if (node is JsonValue s && s.GetValueKind() == JsonValueKind.String
                 && int.TryParse(s.GetValue<string>(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var parsed))
        {
            value = parsed;
        }
        else
        {
            throw Invalid(key, node, $"{NovaJson.Describe(node)} is not of type 'integer', 'string'");
        }
        if (value < min)
        {
            throw Invalid(key, node, $"{value} is less than the minimum of {min}");
        }
        if (value > max)
        {
            throw Invalid(key, node, $"{value} is greater than the maximum of {max}");
        }
        return value;
    }

    /// <summary>The id at the end of a ref that may be a bare id or a link (<c>http://…/flavors/1</c>).</summary>
    public static string RefId(string reference)
    {
        var trimmed = reference.TrimEnd('/');
        var slash = trimmed.LastIndexOf('/');
        return slash >= 0 && trimmed.Contains("://", StringComparison.Ordinal) ? trimmed[(slash + 1)..] : trimmed;
    }

    public static bool IsUuid(string value) => Guid.TryParseExact(value, "D", out _) || Guid.TryParseExact(value, "N", out _);
}
