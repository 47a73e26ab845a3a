using Ferry.Core.Domain;

namespace Ferry.Tests.Core.Domain;

public sealed class ImageSystemMetadataTests
{
    private static readonly Flavor s_flavor = new() { InternalId = 1, Id = "1", Name = "m1.tiny", MemoryMb = 512, Vcpus = 1, RootGb = 5 };

    private static Image ImageWith(Dictionary<string, string> properties, int minDiskGb = 0, string diskFormat = "qcow2") =>
        new() { Id = "img", Name = "img", MinRamMb = 128, MinDiskGb = minDiskGb, DiskFormat = diskFormat, ContainerFormat = "bare", Properties = properties };

    [Fact]
    public void FromImage_PropertiesAndInheritedKeys_PrefixedWithImage()
    {
        var metadata = ImageSystemMetadata.FromImage(ImageWith(new() { ["hw_vif_model"] = "e1000", ["os_distro"] = "cirros" }), s_flavor);

        Assert.Equal(new Dictionary<string, string>
        {
            ["image_hw_vif_model"] = "e1000",
            ["image_os_distro"] = "cirros",
            ["image_min_ram"] = "128",
            ["image_min_disk"] = "5",
            ["image_disk_format"] = "qcow2",
            ["image_container_format"] = "bare",
        }, metadata);
    }

    [Fact]
    public void FromImage_BlockDeviceMappingProperties_Skipped()
    {
        var metadata = ImageSystemMetadata.FromImage(ImageWith(new()
        {
            ["mappings"] = "[]", ["block_device_mapping"] = "[]", ["img_mappings"] = "[]", ["img_block_device_mapping"] = "[]", ["hw_disk_bus"] = "virtio",
        }), s_flavor);

        Assert.Equal(["image_hw_disk_bus"], metadata.Keys.Where(k => !k.EndsWith("_format", StringComparison.Ordinal) && !k.StartsWith("image_min_", StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData(10, "qcow2", 10)]      // the image asks for more than the flavor's root disk
    [InlineData(2, "qcow2", 5)]        // the flavor's root disk is larger
    [InlineData(10, "vhd", 5)]         // vhd: always the flavor's
    public void FromImage_MinDisk_AtLeastTheFlavorsRootDisk(int imageMinDisk, string diskFormat, int expected)
    {
        var metadata = ImageSystemMetadata.FromImage(ImageWith([], imageMinDisk, diskFormat), s_flavor);

        Assert.Equal(expected.ToString(System.Globalization.CultureInfo.InvariantCulture), metadata["image_min_disk"]);
    }

    [Fact]
    public void FromImage_LongValue_CutTo255BytesOfUtf8WithoutSplittingACharacter()
    {
        var value = new string('a', 254) + "éé";   // 254 + 2 + 2 bytes

        var kept = ImageSystemMetadata.FromImage(ImageWith(new() { ["note"] = value }), null)["image_note"];

        Assert.Equal(new string('a', 254), kept);
        Assert.Equal(new string('x', 255), ImageSystemMetadata.Truncate(new string('x', 300), 255));
        Assert.Equal("short", ImageSystemMetadata.Truncate("short", 255));
    }

    [Fact]
    public void Property_KeptAndMissing_ValueOrNull()
    {
        var metadata = new Dictionary<string, string> { ["image_hw_vif_model"] = "e1000" };

        Assert.Equal("e1000", ImageSystemMetadata.Property(metadata, ImageSystemMetadata.VifModelProperty));
        Assert.Null(ImageSystemMetadata.Property(metadata, "hw_disk_bus"));
    }

    [Fact]
    public void Properties_KeptAtBoot_ThePropertiesWithoutTheImagesFields()
    {
        var metadata = ImageSystemMetadata.FromImage(ImageWith(new() { ["hw_vif_model"] = "e1000", ["hw_architecture"] = "x86_64" }), s_flavor);

        Assert.Equal(new Dictionary<string, string> { ["hw_vif_model"] = "e1000", ["hw_architecture"] = "x86_64" }, ImageSystemMetadata.Properties(metadata));
        Assert.Empty(ImageSystemMetadata.Properties(ImageSystemMetadata.FromImage(ImageWith([]), s_flavor))!);
        Assert.Null(ImageSystemMetadata.Properties(new Dictionary<string, string>()));
    }
}
