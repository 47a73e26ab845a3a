using System.Security.Cryptography;
using Ferry.Core.Images;
using Ferry.Tests.Shared;
using Ferry.Virt;

namespace Ferry.Tests.Virt;

public sealed class ImageDownloadTests : IDisposable
{
    private static readonly byte[] s_data = [.. Enumerable.Range(0, 300_000).Select(i => (byte)(i * 7))];
    private readonly string _root = TestTempNames.Directory("image-download");

    private string Target => Path.Combine(_root, "base.part");

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>An image service holding one image in memory, whose record says whatever the test needs.</summary>
    private sealed class MemoryImages(ImageMeta meta, byte[] data) : IImageService
    {
        public Task<ImageMeta> GetAsync(string imageId, CancellationToken cancellationToken) => Task.FromResult(meta);

        public Task<Stream> OpenDataAsync(string imageId, CancellationToken cancellationToken) => Task.FromResult<Stream>(new MemoryStream(data));
    }

    private static ImageMeta Meta(long? size = null, string? checksum = null, string? algo = "sha512", string? hash = null, string status = "active") =>
        new("img", status, size ?? s_data.Length, checksum ?? Convert.ToHexStringLower(MD5.HashData(s_data)), algo,
            algo is null ? null : hash ?? Convert.ToHexStringLower(SHA512.HashData(s_data)), "raw");

    [Fact]
    public async Task FetchAsync_DataMatchesTheRecord_WritesTheImage()
    {
        await ImageDownload.FetchAsync(new MemoryImages(Meta(), s_data), "img", Target, CancellationToken.None);

        Assert.Equal(s_data, await File.ReadAllBytesAsync(Target));
    }

    [Fact]
    public async Task FetchAsync_WrongMultihash_ThrowsGlanceclientsWordsAndDeletesTheFile()
    {
        var error = await Assert.ThrowsAsync<ImageDownloadFailedException>(() =>
            ImageDownload.FetchAsync(new MemoryImages(Meta(hash: new string('0', 128)), s_data), "img", Target, CancellationToken.None));

        Assert.StartsWith("Failed to download image img: Corrupt image download. Hash was ", error.Message);
        Assert.EndsWith($"expected {new string('0', 128)}", error.Message);
        Assert.False(File.Exists(Target));
    }

    [Fact]
    public async Task FetchAsync_NoMultihashAndWrongChecksum_FallsBackToMd5AndThrows()
    {
        var error = await Assert.ThrowsAsync<ImageDownloadFailedException>(() =>
            ImageDownload.FetchAsync(new MemoryImages(Meta(algo: null, checksum: new string('a', 32)), s_data), "img", Target, CancellationToken.None));

        Assert.Contains("Corrupt image download. Checksum was ", error.Message);
        Assert.False(File.Exists(Target));
    }

    [Fact]
    public async Task FetchAsync_ShorterThanTheRecordedSize_ThrowsAndDeletesTheFile()
    {
        var error = await Assert.ThrowsAsync<ImageDownloadFailedException>(() =>
            ImageDownload.FetchAsync(new MemoryImages(Meta(size: s_data.Length + 1), s_data), "img", Target, CancellationToken.None));

        Assert.Equal($"Failed to download image img: received {s_data.Length} bytes, expected {s_data.Length + 1}", error.Message);
        Assert.False(File.Exists(Target));
    }

    [Fact]
    public async Task FetchAsync_ImageNotActive_ThrowsBeforeWritingAnything()
    {
        await Assert.ThrowsAsync<ImageDownloadFailedException>(() =>
            ImageDownload.FetchAsync(new MemoryImages(Meta(status: "queued"), s_data), "img", Target, CancellationToken.None));

        Assert.False(File.Exists(Target));
    }
}
