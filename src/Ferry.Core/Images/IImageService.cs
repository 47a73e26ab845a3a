namespace Ferry.Core.Images;

/// <summary>
/// The image service as a compute host reads it (Nova's <c>nova.image.glance</c> API behind <c>virt.images.fetch</c>):
/// an image's record and its data, nothing else.
/// </summary>
public interface IImageService
{
    /// <summary>The image's record; <see cref="Errors.NotFoundException"/> when the service does not know it.</summary>
    Task<ImageMeta> GetAsync(string imageId, CancellationToken cancellationToken);

    /// <summary>The image's data as the service sends it (unverified); the caller disposes the stream.</summary>
    Task<Stream> OpenDataAsync(string imageId, CancellationToken cancellationToken);
}

/// <summary>What a download is checked against: Glance v2's size, checksum (MD5) and os_hash_algo/os_hash_value (multihash).</summary>
public sealed record ImageMeta(string Id, string Status, long? Size, string? Checksum, string? OsHashAlgo, string? OsHashValue, string? DiskFormat);
