using System.Globalization;
using System.Text;

namespace Ferry.Core.Domain;

/// <summary>
/// The image a server was booted from, as the server keeps it in its system metadata (Nova's
/// <c>nova.utils.get_system_metadata_from_image</c>): every image property as <c>image_&lt;key&gt;</c>, its value cut to
/// 255 bytes of UTF-8, and the image's <c>min_ram</c>, <c>min_disk</c> (at least the flavor's root disk),
/// <c>disk_format</c> and <c>container_format</c>. Kept at boot so that every later move of the server rebuilds its
/// guest from what it booted, not from an image that may have changed or gone since.
/// </summary>
public static class ImageSystemMetadata
{
    /// <summary>Nova's SM_IMAGE_PROP_PREFIX.</summary>
    public const string Prefix = "image_";

    /// <summary>Nova's limit on a system metadata value (the column is 255 characters).</summary>
    public const int MaxValueBytes = 255;

    /// <summary>The image property that picks the guest's NIC model (virtio, e1000, …).</summary>
    public const string VifModelProperty = "hw_vif_model";

    /// <summary>The image property that makes a config drive <c>mandatory</c> for its servers (Nova's img_config_drive).</summary>
    public const string ConfigDriveProperty = "img_config_drive";

    /// <summary>Properties Nova never copies (SM_SKIP_KEYS): large structured values that would not fit.</summary>
    private static readonly HashSet<string> s_skipped = new(StringComparer.Ordinal)
    {
        "mappings", "block_device_mapping", "img_mappings", "img_block_device_mapping",
    };

    /// <summary>The system metadata a server booted from <paramref name="image"/> with <paramref name="flavor"/> keeps.</summary>
    public static Dictionary<string, string> FromImage(Image image, Flavor? flavor)
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in image.Properties)
        {
            if (!s_skipped.Contains(key))
            {
                metadata[Prefix + key] = Truncate(value, MaxValueBytes);
            }
        }
        metadata[Prefix + "min_ram"] = image.MinRamMb.ToString(CultureInfo.InvariantCulture);
        // Nova raises min_disk to the flavor's root disk (except for vhd images, whose disk is the flavor's).
        var minDisk = flavor is null ? image.MinDiskGb
            : image.DiskFormat == "vhd" ? flavor.RootGb
            : Math.Max(image.MinDiskGb, flavor.RootGb);
        metadata[Prefix + "min_disk"] = minDisk.ToString(CultureInfo.InvariantCulture);
        metadata[Prefix + "disk_format"] = image.DiskFormat;
        metadata[Prefix + "container_format"] = image.ContainerFormat;
        return metadata;
    }

    /// <summary>Nova's SM_INHERITABLE_KEYS: kept beside the properties, but fields of the image, not properties.</summary>
    private static readonly HashSet<string> s_inherited = new(StringComparer.Ordinal) { "min_ram", "min_disk", "disk_format", "container_format" };

    /// <summary>
    /// The image properties a server keeps, without the prefix and without the image's own fields (Nova's
    /// get_image_from_system_metadata); null when it keeps none (booted before Ferry kept them, or from no image).
    /// </summary>
    public static Dictionary<string, string>? Properties(IReadOnlyDictionary<string, string> systemMetadata)
    {
        if (!systemMetadata.Keys.Any(k => k.StartsWith(Prefix, StringComparison.Ordinal)))
        {
            return null;
        }
        return systemMetadata
            .Where(m => m.Key.StartsWith(Prefix, StringComparison.Ordinal) && !s_inherited.Contains(m.Key[Prefix.Length..]))
            .ToDictionary(m => m.Key[Prefix.Length..], m => m.Value, StringComparer.Ordinal);
    }

    /// <summary>The image property <paramref name="key"/> (without the prefix) a server keeps; null when its image had none.</summary>
    public static string? Property(IReadOnlyDictionary<string, string> systemMetadata, string key) =>
        systemMetadata.TryGetValue(Prefix + key, out var value) ? value : null;

    /// <summary>At most <paramref name="maxBytes"/> bytes of UTF-8, never half a character (Nova's safe_truncate).</summary>
    public static string Truncate(string value, int maxBytes)
    {
        if (Encoding.UTF8.GetByteCount(value) <= maxBytes)
        {
            return value;
        }
        var bytes = 0;
        var end = 0;
        foreach (var rune in value.EnumerateRunes())
        {
            if (bytes + rune.Utf8SequenceLength > maxBytes)
            {
                break;
            }
            bytes += rune.Utf8SequenceLength;
            end += rune.Utf16SequenceLength;
        }
        return value[..end];
    }
}
