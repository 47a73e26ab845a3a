using System.Globalization;
using System.Security.Cryptography;
using Ferry.Core.Errors;
using Ferry.Core.Images;

namespace Ferry.Virt;

/// <summary>
/// Nova's <c>virt.images.fetch</c> with glanceclient's integrity check: the image's data is streamed to a file while
/// its size and hashes are computed, then checked against what the image service recorded at upload
/// (<c>os_hash_algo</c>/<c>os_hash_value</c> when set, else the MD5 <c>checksum</c>). A mismatch deletes the file.
/// </summary>
public static class ImageDownload
{
    private const int BufferBytes = 1 << 20;

    /// <summary>Downloads <paramref name="imageId"/> to <paramref name="path"/>; throws <see cref="ImageDownloadFailedException"/> when it does not verify.</summary>
    public static async Task FetchAsync(IImageService images, string imageId, string path, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(images);
        var meta = await images.GetAsync(imageId, cancellationToken);
        if (meta.Status != "active")
        {
            throw new ImageDownloadFailedException(imageId, $"the image is {meta.Status}, not active");
        }
        using var multihash = meta.OsHashValue is null ? null : NewHash(imageId, meta.OsHashAlgo);
        using var md5 = IncrementalHash.CreateHash(HashAlgorithmName.MD5);
        long received = 0;
        try
        {
            await using (var data = await images.OpenDataAsync(imageId, cancellationToken))
            await using (var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, BufferBytes, useAsync: true))
            {
                var buffer = new byte[BufferBytes];
                int read;
                while ((read = await data.ReadAsync(buffer, cancellationToken)) > 0)
                {
                    multihash?.AppendData(buffer, 0, read);
                    md5.AppendData(buffer, 0, read);
                    await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                    received += read;
                }
                await file.FlushAsync(cancellationToken);
            }
            if (meta.Size is { } size && size != received)
            {
                throw new ImageDownloadFailedException(imageId, string.Create(CultureInfo.InvariantCulture, $"received {received} bytes, expected {size}"));
            }
            if (multihash is not null)
            {
                Verify(imageId, "Hash", Convert.ToHexStringLower(multihash.GetHashAndReset()), meta.OsHashValue!);
            }
            else if (meta.Checksum is not null)
            {
                Verify(imageId, "Checksum", Convert.ToHexStringLower(md5.GetHashAndReset()), meta.Checksum);
            }
        }
        catch
        {
            File.Delete(path);
            throw;
        }
    }

    private static void Verify(string imageId, string what, string actual, string expected)
    {
        if (!string.Equals(actual, expected, StringComparison.OrdinalIgnoreCase))
        {
            // glanceclient's words for the same failure.
            throw new ImageDownloadFailedException(imageId, $"Corrupt image download. {what} was {actual} expected {expected}");
        }
    }

    private static IncrementalHash NewHash(string imageId, string? algorithm) => algorithm switch
    {
        "sha512" => IncrementalHash.CreateHash(HashAlgorithmName.SHA512),
        "sha384" => IncrementalHash.CreateHash(HashAlgorithmName.SHA384),
        "sha256" => IncrementalHash.CreateHash(HashAlgorithmName.SHA256),
        "sha1" => IncrementalHash.CreateHash(HashAlgorithmName.SHA1),
        "md5" => IncrementalHash.CreateHash(HashAlgorithmName.MD5),
        _ => throw new ImageDownloadFailedException(imageId, $"unsupported os_hash_algo '{algorithm}'"),
    };
}
