using Ferry.Core.Volumes;

namespace Ferry.ControlPlane.Volumes;

/// <summary>
/// The file-only volume backend, used when no NBD daemon is configured: each volume is a sparse raw file
/// <c>volume-&lt;id&gt;</c> under <paramref name="directory"/> (the data directory's <c>volumes/</c>), made, grown and
/// deleted here, and exported by nobody. <see cref="ConnectionInfoAsync"/> answers an NBD connection info with port 0,
/// which no host can open: it is the placeholder that lets the API, its states and the clients work until the
/// qemu-storage-daemon backend (which exports each file over NBD) takes its place.
/// </summary>
public sealed class LocalFileVolumeBackend(string directory) : IVolumeBackend
{
    private const long GiB = 1L << 30;
    private const string Prefix = "volume-";

    public string Directory { get; } = directory;

    public async Task CreateAsync(string volumeId, int sizeGb, string? sourceImagePath, CancellationToken cancellationToken)
    {
        var path = PathOf(volumeId);
        if (File.Exists(path))
        {
            return;
        }
        System.IO.Directory.CreateDirectory(Directory);
        // Written beside the final name and renamed, so a failed copy never leaves a volume that looks made.
        var partial = path + ".part";
        await using (var target = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            if (sourceImagePath is not null)
            {
                await CopySparseAsync(sourceImagePath, target, cancellationToken);
            }
            target.SetLength(Math.Max(target.Length, sizeGb * GiB));
        }
        File.Move(partial, path, overwrite: true);
    }

    public Task ExtendAsync(string volumeId, int newSizeGb, CancellationToken cancellationToken)
    {
        using var file = new FileStream(PathOf(volumeId), FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
        if (file.Length < newSizeGb * GiB)
        {
            file.SetLength(newSizeGb * GiB);
        }
        return Task.CompletedTask;
    }

    public Task DeleteAsync(string volumeId, CancellationToken cancellationToken)
    {
        File.Delete(PathOf(volumeId));
        File.Delete(PathOf(volumeId) + ".part");
        return Task.CompletedTask;
    }

    /// <summary>An NBD info nobody serves (port 0): the export name is the file's, as the NBD backend will name it.</summary>
    public Task<VolumeConnectionInfo> ConnectionInfoAsync(string volumeId, VolumeConnector connector, CancellationToken cancellationToken) =>
        Task.FromResult(new VolumeConnectionInfo { Host = "127.0.0.1", Port = 0, Export = Prefix + volumeId });

    /// <summary>The volumes whose file exists (this backend's "exports").</summary>
    public Task<IReadOnlyList<string>> ListExportsAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<string>>(System.IO.Directory.Exists(Directory)
            ? [.. System.IO.Directory.EnumerateFiles(Directory, Prefix + "*").Select(Path.GetFileName).Where(n => !n!.EndsWith(".part", StringComparison.Ordinal))
                .Select(n => n![Prefix.Length..]).Order(StringComparer.Ordinal)]
            : []);

    public string PathOf(string volumeId) => Path.Combine(Directory, Prefix + Guid.Parse(volumeId).ToString());

    /// <summary>Copies the image's bytes, seeking over runs of zeros so the volume stays sparse.</summary>
    private static async Task CopySparseAsync(string source, FileStream target, CancellationToken cancellationToken)
    {
        await using var input = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true);
        var buffer = new byte[1 << 20];
        int read;
        while ((read = await input.ReadAsync(buffer, cancellationToken)) > 0)
        {
            var chunk = buffer.AsMemory(0, read);
            if (chunk.Span.ContainsAnyExcept((byte)0))
            {
                await target.WriteAsync(chunk, cancellationToken);
            }
            else
            {
                target.Seek(read, SeekOrigin.Current);
            }
        }
        target.SetLength(target.Position);
    }
}
