using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Volumes;

namespace Ferry.ControlPlane.Api;

/// <summary>
/// A boot request's <c>block_device_mapping_v2</c>, read as Nova's schema, <c>BlockDeviceDict.from_api</c> and the boot
/// sequence check of <c>_validate_bdm</c> read it: the volumes the server gets, each an existing one (reserved later by
/// the API) or one its host makes at build from an image or blank, and whether one of them is the root disk. An image to
/// local root mapping (what the openstack client sends with <c>--image</c>) is the image boot itself and adds nothing.
/// Device names are Ferry's to give: the root volume is /dev/vda, data volumes /dev/vdb on in request order.
/// </summary>
internal static class ServerBlockDevices
{
    private const string Field = "block_device_mapping_v2";
    private const string Invalid = "Block Device Mapping is Invalid: ";

    private static readonly string[] s_keys =
    [
        "source_type", "uuid", "image_id", "destination_type", "guest_format", "device_type", "disk_bus", "boot_index",
        "volume_size", "delete_on_termination", "device_name", "no_device", "connection_info", "volume_id", "snapshot_id",
        "tag", "volume_type", "encrypted", "encryption_secret_uuid", "encryption_format", "encryption_options",
    ];

    private static readonly string[] s_sourceTypes = ["volume", "image", "snapshot", "blank"];

    /// <summary>The server's volume mappings (destination volume), or none when the request names none.</summary>
    public static List<BlockDeviceMapping> Parse(JsonObject server, bool hasImageRef, int maxCount, DateTimeOffset now)
    {
        if (server.ContainsKey("block_device_mapping"))
        {
            throw server.ContainsKey(Field)
                ? new BadRequestException("Using different block_device_mapping syntaxes is not allowed in the same request.")
                : new BadRequestException(Invalid + "the legacy block_device_mapping is not supported; use block_device_mapping_v2.");
        }
        if (!server.TryGetPropertyValue(Field, out var node) || node is null)
        {
            return [];
        }
        if (node is not JsonArray items)
        {
            throw BodySchema.Invalid(Field, node, $"{NovaJson.Describe(node)} is not of type 'array'");
        }
        if (items.Count == 0)
        {
            return [];
        }
        var requested = items.Select(i => Item(i, hasImageRef)).ToList();
        var bootIndexes = requested.Where(r => r.BootIndex is not null).Select(r => r.BootIndex!.Value).Order().ToList();
        if ((bootIndexes.Count == 0 && !hasImageRef) || !bootIndexes.SequenceEqual(Enumerable.Range(0, bootIndexes.Count)))
        {
            throw new BadRequestException(Invalid + "Boot sequence for the instance and image/block device mapping combination is not valid.");
        }
        var volumes = requested.Where(r => r.Mapping is not null).Select(r => r.Mapping!).ToList();
        if (maxCount > 1 && volumes.Any(m => m.SourceType == "volume"))
        {
            throw new BadRequestException("Cannot attach one or more volumes to multiple instances");
        }
        if (volumes.Count(m => m.BootIndex != 0) > VolumeDevices.Max)
        {
            throw new BadRequestException(Invalid + $"a server has at most {VolumeDevices.Max} data volumes.");
        }
        var data = 0;
        return [.. volumes.Select(m => m with
        {
            DeviceName = m.BootIndex == 0 ? VolumeDevices.Root : VolumeDevices.Name(data++),
            Uuid = Guid.NewGuid().ToString(),
            CreatedAt = now,
        })];
    }

    /// <summary>One item: its boot index, and its mapping unless it is the image-to-local root.</summary>
    private static (int? BootIndex, BlockDeviceMapping? Mapping) Item(JsonNode? node, bool hasImageRef)
    {
        if (node is not JsonObject item)
        {
            throw BodySchema.Invalid(Field, node, $"{NovaJson.Describe(node)} is not of type 'object'");
        }
        BodySchema.NoAdditional(item, Field, s_keys);
        var sourceType = BodySchema.String(item, "source_type");
        if (sourceType is not null && !s_sourceTypes.Contains(sourceType))
        {
            throw BodySchema.Invalid("source_type", item["source_type"], $"'{sourceType}' is not one of ['volume', 'image', 'snapshot', 'blank']");
        }
        var destinationType = BodySchema.String(item, "destination_type");
        if (destinationType is not null and not ("local" or "volume"))
        {
            throw BodySchema.Invalid("destination_type", item["destination_type"], $"'{destinationType}' is not one of ['local', 'volume']");
        }
        var uuid = BodySchema.String(item, "uuid", minLength: 1);
        if (uuid is not null && !uuid.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
        {
            throw BodySchema.Invalid("uuid", item["uuid"], $"'{uuid}' does not match '^[a-zA-Z0-9._-]*$'");
        }
        var bootIndex = BootIndex(item);
        var volumeSize = VolumeSize(item);
        var deleteOnTermination = BodySchema.Boolean(item, "delete_on_termination") ?? false;
        var tag = BodySchema.String(item, "tag", maxLength: 60);
        if (sourceType is null)
        {
            throw new BadRequestException(Invalid + "Some required fields are missing");
        }
        if (sourceType == "blank" && uuid is not null)
        {
            throw new BadRequestException(Invalid + "Invalid device UUID.");
        }
        if (sourceType != "blank" && uuid is null)
        {
            throw new BadRequestException(Invalid + "Missing device UUID.");
        }
        destinationType ??= sourceType is "volume" or "snapshot" ? "volume" : "local";
        switch (sourceType, destinationType)
        {
            case ("image", "local"):
                // The image boot: allowed only as the root of a request that names the image (Nova's from_api).
                return bootIndex == 0 && hasImageRef ? (bootIndex, null) : throw new BadRequestException(Invalid + "Mapping image to local is not supported.");
            case ("blank", "local") or ("volume", "local") or ("snapshot", "local"):
                throw new BadRequestException(Invalid + "local disks other than the image's root (ephemeral, swap) are not supported by this cloud.");
            case ("snapshot", _):
                throw new BadRequestException(Invalid + $"failed to get snapshot {uuid}.");
            case ("image", "volume") when volumeSize is null:
                throw new BadRequestException("Images with destination_type 'volume' need to have a non-zero size specified");
            case ("blank", "volume") when volumeSize is null:
                throw new BadRequestException("Blank volumes (source: 'blank', dest: 'volume') need to have non-zero size");
            case ("blank", "volume") when bootIndex == 0:
                throw new BadRequestException($"Block Device {uuid ?? "(blank)"} is not bootable.");
        }
        return (bootIndex, new BlockDeviceMapping
        {
            Uuid = "",
            VolumeId = sourceType == "volume" ? uuid! : "",
            DeviceName = "",
            BootIndex = bootIndex == 0 ? 0 : null,
            SourceType = sourceType,
            DeleteOnTermination = deleteOnTermination,
            VolumeSize = volumeSize,
            ImageId = sourceType == "image" ? uuid : null,
            Tag = tag,
        });
    }

    /// <summary>An integer, its digits as a string, or null; a negative index means "not bootable" (Nova makes it None).</summary>
    private static int? BootIndex(JsonObject item)
    {
        if (!item.TryGetPropertyValue("boot_index", out var node) || node is null)
        {
            return null;
        }
        int value;
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<int>(out var n))
        {
            value = n;
        }
        else if (node is JsonValue s && s.GetValueKind() == JsonValueKind.String)
        {
            var text = s.GetValue<string>();
            var digits = text.StartsWith('-') ? text[1..] : text;
            if (digits.Length == 0 || !digits.All(char.IsAsciiDigit) || !int.TryParse(text, out value))
            {
                throw BodySchema.Invalid("boot_index", node, $"'{text}' does not match '^-?[0-9]+$'");
            }
        }
        else
        {
            throw BodySchema.Invalid("boot_index", node, $"{NovaJson.Describe(node)} is not of type 'integer', 'string', 'null'");
        }
        return value < 0 ? null : value;
    }

    /// <summary>Nova's parameter_types.volume_size: a positive integer or its digits.</summary>
    private static int? VolumeSize(JsonObject item)
    {
        if (!item.TryGetPropertyValue("volume_size", out var node) || node is null)
        {
            return null;
        }
        if (node is JsonValue s && s.GetValueKind() == JsonValueKind.String && !s.GetValue<string>().All(char.IsAsciiDigit))
        {
            throw BodySchema.Invalid("volume_size", node, $"'{s.GetValue<string>()}' does not match '^[0-9]+$'");
        }
        return BodySchema.Integer(item, "volume_size", min: 1);
    }
}
