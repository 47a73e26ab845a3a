using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Ferry.FunctionalTests.Fuzz;

/// <summary>One generated request and what was done to it (printed when it fails).</summary>
internal sealed record FuzzRequest(
    FuzzRoute Route, string Method, string Path, string? Caller, byte[]? Body, string? ContentType,
    IReadOnlyList<KeyValuePair<string, string>> Headers, string Mutation);

/// <summary>
/// Builds bad requests for a route from a seeded <see cref="Random"/>: a valid seed body (when the route has
/// one) bent by a few mutations — wrong types, nulls, huge and negative numbers, long and odd strings, unknown
/// and missing keys, duplicate keys, lone surrogates, truncation, invalid UTF-8, other content types,
/// oversized bodies — with good or bad ids in the path, odd query strings and odd microversion headers.
/// </summary>
internal sealed class FuzzGenerator(Random random, FuzzWorld world)
{
    // No %00 in paths: Kestrel refuses a NUL in the request target with a bare 400 before any service code runs.
    private static readonly string[] s_badIds =
    [
        "%20", "x", "-1", "0", "99999999999999999999999", "1e9", "1.5", "null", "true", "%25", "%2F", "..", "%2E%2E",
        "%C3%A9t%C3%A9", "%F0%9F%99%82", "%FF", "%C0%AF", "a%0Ab", "00000000-0000-0000-0000-000000000000",
        "ZZZZZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZZZZZZZZZ", "%7B%7D", "%22%27", "*", "%3Cscript%3E", new string('a', 300), new string('9', 4000),
    ];

    private static readonly string[] s_queryNames =
    [
        "limit", "marker", "all_tenants", "changes-since", "changes-before", "name", "host", "status", "sort_key", "sort_dir",
        "instance_uuid", "migration_type", "source_compute", "hidden", "user_id", "project_id", "deleted", "flavor", "image",
        "ip", "resources", "required", "member_of", "in_tree", "uuid", "visibility", "owner", "tag", "min_ram", "is_public",
        "reserved", "detailed", "with_servers", "hypervisor_hostname_pattern", "minDisk", "minRam", "binary", "type", "domain_id",
        "enabled", "group_policy", "root_required", "same_subtree", "member_of", "locked", "tenant_id", "availability_zone",
    ];

    private static readonly string[] s_queryValues =
    [
        "", "-1", "0", "1", "abc", "99999999999999999999", "2147483648", "1e400", "true", "yes", "null", "%FF", "%00", "(", ".*(",
        "[", "\\", "2026-13-45T99:99:99Z", "2026-01-01", "VCPU:-1", "VCPU:abc", "VCPU:1,MEMORY_MB", "in:", "!", "CUSTOM_%C3%A9",
        "%2C%2C", "desc", "sideways", Uri.EscapeDataString(new string('x', 2000)), "%E2%80%AE", "1%2C2",
    ];

    private static readonly string[] s_versionHeaders =
    [
        "compute 2.1", "compute 2.95", "compute latest", "compute 2.0", "compute 2.96", "compute 3.0", "compute 1.1", "compute abc",
        "compute 2.", "compute .2", "compute 02.1", "compute 2.01", "compute 2.1.1", "compute ", "compute", "compute 2.1, compute 2.95",
        "compute -2.1", "compute 99999999999.1", "compute 2.99999999999", "placement 1.39", "placement latest", "placement 1.0",
        "placement 0.9", "placement 2.0", "placement 1.40", "placement 1.x", "placement", "placement 1.9999999999", "image 2.1",
        "identity 3.14", "volume 3.0", "volume 3.44", "volume latest", "volume 3.71", "volume 3.x", "volume 2.0", "LATEST", ",", "latest latest",
    ];

    private static readonly string[] s_contentTypes =
    [
        "text/plain", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/octet-stream",
        "application/json; charset=latin1", "application/JSON", "application/json-patch+json", "application/openstack-images-v2.1-json-patch",
        "text/html", "*/*", "application/vnd.openstack.compute+json", "invalid",
    ];

    private static readonly string[] s_methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

    public FuzzRequest Next(FuzzRoute route, Dictionary<string, Func<FuzzWorld, JsonNode>> seeds)
    {
        var mutations = new List<string>();
        var method = route.Method ?? Pick(s_methods);
        if (random.Next(40) == 0)
        {
            method = Pick(s_methods);
            mutations.Add($"method {method}");
        }
        var path = BuildPath(route, mutations);
        if (random.Next(4) == 0)
        {
            path += "?" + string.Join('&', Enumerable.Range(0, random.Next(1, 4)).Select(_ => $"{Pick(s_queryNames)}={Pick(s_queryValues)}"));
            mutations.Add("query");
        }

        var headers = new List<KeyValuePair<string, string>>();
        if (random.Next(6) == 0)
        {
            var header = Pick(new[] { "OpenStack-API-Version", "X-OpenStack-Nova-API-Version", "OpenStack-API-Version" });
            var value = Pick(s_versionHeaders);
            if (header == "X-OpenStack-Nova-API-Version")
            {
                value = value.Split(' ', 2).Last();
            }
            headers.Add(new(header, value));
            mutations.Add($"{header}: {value}");
        }
        if (route.Service == FuzzService.Identity && random.Next(3) == 0)
        {
            headers.Add(new("X-Subject-Token", random.Next(3) == 0 ? world.ThrowawayToken : Pick(new[] { "", "x", new string('a', 5000), "%FF" })));
        }

        var caller = random.Next(20) switch
        {
            0 => null,
            1 => "bad",
            < 11 => "admin",
            _ => "member",
        };

        byte[]? body = null;
        string? contentType = null;
        var hasBody = method is "POST" or "PUT" or "PATCH" || (method == "DELETE" && random.Next(10) == 0);
        if (hasBody)
        {
            (body, var bodyMutations) = BuildBody(route, seeds);
            mutations.Add(bodyMutations);
            contentType = route.Key.StartsWith("PATCH /v2/images", StringComparison.Ordinal) ? "application/openstack-images-v2.1-json-patch"
                : route.Key.EndsWith("/file", StringComparison.Ordinal) ? "application/octet-stream"
                : "application/json";
            if (random.Next(8) == 0)
            {
                contentType = random.Next(6) == 0 ? null : Pick(s_contentTypes);
                mutations.Add($"content-type {contentType ?? "none"}");
            }
        }
        return new FuzzRequest(route, method, path, caller, body, contentType, headers, string.Join(", ", mutations.Where(m => m.Length > 0)));
    }

    private string BuildPath(FuzzRoute route, List<string> mutations)
    {
        if (route.IsFallback)
        {
            var prefix = route.Template[..route.Template.IndexOf('{', StringComparison.Ordinal)].TrimEnd('/');
            var tail = string.Join('/', Enumerable.Range(0, random.Next(1, 4)).Select(_ => Pick(s_badIds)));
            mutations.Add("unknown path");
            return $"{prefix}/{tail}";
        }
        var path = route.Template;
        foreach (var name in route.Parameters)
        {
            string value;
            if (random.Next(3) == 0)
            {
                value = Pick(s_badIds);
                mutations.Add($"{{{name}}}={Cut(value)}");
            }
            else
            {
                value = Uri.EscapeDataString(world.ValidValue(route, name, random));
            }
            path = path.Replace($"{{{name}}}", value, StringComparison.Ordinal).Replace($"{{**{name}}}", value, StringComparison.Ordinal);
        }
        return path;
    }

    private (byte[] Body, string Mutations) BuildBody(FuzzRoute route, Dictionary<string, Func<FuzzWorld, JsonNode>> seeds)
    {
        var done = new List<string>();
        if (route.Key.EndsWith("/file", StringComparison.Ordinal) && random.Next(2) == 0)
        {
            var data = new byte[random.Next(0, 4096)];
            random.NextBytes(data);
            return (data, $"{data.Length} random bytes");
        }
        switch (random.Next(30))
        {
            case 0:
                return (Encoding.UTF8.GetBytes(Pick(new[] { "", " ", "null", "[]", "123", "\"s\"", "{", "}", "{\"a\":", "[{]", "{'a': 1}", "<xml/>", "a=b&c=d", "\u00ff", "{\"a\":1}{\"b\":2}", "{\"a\":NaN}", "{\"a\":Infinity}", "{\"a\":01}", "{\"a\":1,}", "//\n{}", "\ufeff{}" })), "not a JSON object");
            case 1:
                return (Encoding.ASCII.GetBytes(new string('[', 100_000)), "nested 100000 deep");
            case 2:
                return (Encoding.UTF8.GetBytes($"{{\"x\": \"{new string('x', 3 * 1024 * 1024)}\"}}"), "3 MiB body");
        }
        var seed = seeds.TryGetValue(route.Key, out var make) ? make(world) : new JsonObject { ["x"] = 1 };
        var mutationCount = random.Next(1, 4);
        var duplicates = new HashSet<JsonObject>(ReferenceEqualityComparer.Instance);
        var surrogate = false;
        for (var i = 0; i < mutationCount; i++)
        {
            var nodes = AllNodes(seed).ToList();
            var (node, parent, key) = nodes[random.Next(nodes.Count)];
            switch (random.Next(7))
            {
                case 0 or 1 or 2 when parent is not null:
                    var value = RandomValue(depth: 0);
                    Replace(parent, key, value);
                    done.Add($"{Describe(parent, key)}={Cut(value?.ToJsonString() ?? "null")}");
                    break;
                case 3 when parent is JsonObject po:
                    po.Remove((string)key!);
                    done.Add($"-{key}");
                    break;
                case 4 when node is JsonObject o:
                    var unknown = Pick(new[] { "unknown", "", " ", "é", "OS-EXT-SRV-ATTR:host", "id", "__proto__", new string('k', 300) });
                    o[unknown] = RandomValue(0);
                    done.Add($"+key '{Cut(unknown)}'");
                    break;
                case 5 when node is JsonObject o && o.Count > 0:
                    duplicates.Add(o);
                    done.Add("duplicate key");
                    break;
                case 6:
                    surrogate = true;
                    done.Add("lone surrogate");
                    break;
            }
        }
        var bytes = Write(seed, duplicates, surrogate);
        switch (random.Next(12))
        {
            case 0 when bytes.Length > 1:
                var cut = random.Next(bytes.Length);
                bytes = bytes[..cut];
                done.Add($"truncated at {cut}");
                break;
            case 1 when bytes.Length > 1:
                bytes[random.Next(bytes.Length)] = Pick(new byte[] { 0xFF, 0xC3, 0x80, 0xED, 0x00 });
                done.Add("invalid byte");
                break;
        }
        return (bytes, done.Count == 0 ? "seed body" : string.Join(", ", done));
    }

    private JsonNode? RandomValue(int depth) => random.Next(depth > 2 ? 24 : 28) switch
    {
        0 => null,
        1 => true,
        2 => false,
        3 => 0,
        4 => -1,
        5 => 2147483648L,
        6 => -2147483649L,
        7 => long.MaxValue,
        8 => JsonNode.Parse("18446744073709551616"),
        9 => 1e308,
        10 => JsonNode.Parse("1e400"),
        11 => 1.5,
        12 => "",
        13 => " ",
        14 => "x",
        15 => new string('x', 300),
        16 => new string('y', 70_000),
        17 => "é中文🙂",
        18 => "\u0000\u0001",
        19 => "1",
        20 => "-1",
        21 => "true",
        22 => "00000000-0000-0000-0000-000000000000",
        23 => "<script>%s%n../../etc/passwd",
        24 => new JsonObject(),
        25 => new JsonArray(),
        26 => new JsonArray(RandomValue(depth + 1), RandomValue(depth + 1)),
        _ => new JsonObject { ["a"] = RandomValue(depth + 1) },
    };

    private static void Replace(JsonNode parent, object? key, JsonNode? value)
    {
        if (parent is JsonObject o)
        {
            o[(string)key!] = value;
        }
        else if (parent is JsonArray a)
        {
            a[(int)key!] = value;
        }
    }

    private static string Describe(JsonNode parent, object? key) => key is int i ? $"{parent.GetPath()}[{i}]" : $"{parent.GetPath()}.{key}";

    private static IEnumerable<(JsonNode? Node, JsonNode? Parent, object? Key)> AllNodes(JsonNode root)
    {
        var stack = new Stack<(JsonNode?, JsonNode?, object?)>();
        stack.Push((root, null, null));
        while (stack.Count > 0)
        {
            var item = stack.Pop();
            yield return item;
            switch (item.Item1)
            {
                case JsonObject o:
                    foreach (var (k, v) in o.ToList())
                    {
                        stack.Push((v, o, k));
                    }
                    break;
                case JsonArray a:
                    for (var i = 0; i < a.Count; i++)
                    {
                        stack.Push((a[i], a, i));
                    }
                    break;
            }
        }
    }

    /// <summary>Writes the tree as JSON text, repeating the first member of the chosen objects and adding a lone surrogate.</summary>
    private byte[] Write(JsonNode root, HashSet<JsonObject> duplicates, bool surrogate)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { SkipValidation = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            var surrogatePlaced = !surrogate;
            WriteNode(writer, root, duplicates, ref surrogatePlaced);
        }
        return stream.ToArray();
    }

    private void WriteNode(Utf8JsonWriter writer, JsonNode? node, HashSet<JsonObject> duplicates, ref bool surrogatePlaced)
    {
        switch (node)
        {
            case JsonObject o:
                writer.WriteStartObject();
                var first = true;
                foreach (var (k, v) in o)
                {
                    writer.WritePropertyName(k);
                    if (!surrogatePlaced && v is JsonValue sv && sv.GetValueKind() == JsonValueKind.String)
                    {
                        writer.WriteRawValue(random.Next(2) == 0 ? "\"\\ud800\"" : "\"a\\udc00b\"", skipInputValidation: true);
                        surrogatePlaced = true;
                    }
                    else
                    {
                        WriteNode(writer, v, duplicates, ref surrogatePlaced);
                    }
                    if (first && duplicates.Contains(o))
                    {
                        writer.WritePropertyName(k);
                        WriteNode(writer, RandomValue(1), duplicates, ref surrogatePlaced);
                    }
                    first = false;
                }
                if (!surrogatePlaced)
                {
                    writer.WritePropertyName("s");
                    writer.WriteRawValue("\"\\ud800\"", skipInputValidation: true);
                    surrogatePlaced = true;
                }
                writer.WriteEndObject();
                break;
            case JsonArray a:
                writer.WriteStartArray();
                foreach (var item in a)
                {
                    WriteNode(writer, item, duplicates, ref surrogatePlaced);
                }
                writer.WriteEndArray();
                break;
            case null:
                writer.WriteNullValue();
                break;
            default:
                node.WriteTo(writer);
                break;
        }
    }

    private T Pick<T>(T[] items) => items[random.Next(items.Length)];

    private static string Cut(string s) => s.Length > 40 ? $"{s[..40]}…({s.Length})" : s;
}
