namespace Ferry.ControlPlane.Images;

/// <summary>Settings of the Glance v2 subset: where image data lives, and how large an upload may be.</summary>
public sealed class ImageServiceOptions(string imagesDirectory)
{
    /// <summary>Glance's default <c>image_size_cap</c>: 1 TiB.</summary>
    public const long DefaultImageSizeCap = 1L << 40;

    public string ImagesDirectory { get; } = imagesDirectory;

    /// <summary>Glance's <c>image_size_cap</c>: an upload larger than this many bytes is refused (413) and leaves nothing behind.</summary>
    public long ImageSizeCap { get; set; } = DefaultImageSizeCap;
}
