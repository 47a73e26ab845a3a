using System.Text.Json.Nodes;

namespace Ferry.ControlPlane.Images;

/// <summary>Glance's <c>/v2/schemas/image(s)</c>, trimmed to the attributes Ferry serves (the clients read them for validation).</summary>
internal static class ImageSchemas
{
    public static JsonObject Image()
    {
        static JsonObject Of(params string[] types) => new() { ["type"] = types.Length == 1 ? types[0] : new JsonArray([.. types.Select(t => (JsonNode)t)]) };
        static JsonObject Enum(params string?[] values) => new()
        {
            ["type"] = values.Contains(null) ? new JsonArray("null", "string") : "string",
            ["enum"] = new JsonArray([.. values.Select(v => (JsonNode?)v)]),
        };
        var readOnly = (JsonObject o) => { o["readOnly"] = true; return o; };
        return new JsonObject
        {
            ["name"] = "image",
            ["additionalProperties"] = new JsonObject { ["type"] = "string" },
            ["properties"] = new JsonObject
            {
                ["id"] = new JsonObject { ["type"] = "string", ["pattern"] = "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$" },
                ["name"] = new JsonObject { ["type"] = new JsonArray("null", "string"), ["maxLength"] = 255 },
                ["status"] = readOnly(Enum("queued", "saving", "active", "killed", "deleted", "uploading", "importing", "pending_delete", "deactivated")),
                ["visibility"] = Enum("community", "public", "private", "shared"),
                ["protected"] = Of("boolean"),
                ["os_hidden"] = Of("boolean"),
                ["checksum"] = readOnly(Of("null", "string")),
                ["os_hash_algo"] = readOnly(Of("null", "string")),
                ["os_hash_value"] = readOnly(Of("null", "string")),
                ["owner"] = Of("null", "string"),
                ["size"] = readOnly(Of("null", "integer")),
                ["virtual_size"] = readOnly(Of("null", "integer")),
                ["container_format"] = Enum(null, "ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"),
                ["disk_format"] = Enum(null, "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"),
                ["created_at"] = readOnly(Of("string")),
                ["updated_at"] = readOnly(Of("string")),
                ["tags"] = new JsonObject { ["type"] = "array", ["items"] = new JsonObject { ["type"] = "string", ["maxLength"] = 255 } },
                ["direct_url"] = readOnly(Of("string")),
                ["min_ram"] = Of("integer"),
                ["min_disk"] = Of("integer"),
                ["self"] = readOnly(Of("string")),
                ["file"] = readOnly(Of("string")),
                ["stores"] = readOnly(Of("string")),
                ["schema"] = readOnly(Of("string")),
                ["locations"] = new JsonObject { ["type"] = "array", ["items"] = new JsonObject { ["type"] = "object" } },
            },
            ["links"] = new JsonArray(
                new JsonObject { ["rel"] = "self", ["href"] = "{self}" },
                new JsonObject { ["rel"] = "enclosure", ["href"] = "{file}" },
                new JsonObject { ["rel"] = "describedby", ["href"] = "{schema}" }),
        };
    }

    public static JsonObject Images() => new()
    {
        ["name"] = "images",
        ["properties"] = new JsonObject
        {
            ["images"] = new JsonObject { ["type"] = "array", ["items"] = Image() },
            ["schema"] = new JsonObject { ["type"] = "string" },
            ["first"] = new JsonObject { ["type"] = "string" },
            ["next"] = new JsonObject { ["type"] = "string" },
        },
        ["links"] = new JsonArray(
            new JsonObject { ["rel"] = "first", ["href"] = "{first}" },
            new JsonObject { ["rel"] = "next", ["href"] = "{next}" },
            new JsonObject { ["rel"] = "describedby", ["href"] = "{schema}" }),
    };
}
