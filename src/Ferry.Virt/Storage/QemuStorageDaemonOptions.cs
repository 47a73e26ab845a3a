namespace Ferry.Virt.Storage;

/// <summary>Configuration of the volume backend that keeps raw files and exports them over NBD from one <c>qemu-storage-daemon</c>.</summary>
public sealed record QemuStorageDaemonOptions
{
    /// <summary>Where the volumes live: one sparse raw file <c>volume-&lt;id&gt;.raw</c> each.</summary>
    public required string VolumesDirectory { get; init; }

    /// <summary>
    /// The daemon's pid file, QMP socket, log, lock and remembered port. Processes sharing it share one daemon.
    /// Keep it short: the QMP socket path must fit 107 bytes.
    /// </summary>
    public required string RunDirectory { get; init; }

    /// <summary>The address the NBD server listens on (the storage network's address of this host).</summary>
    public string ListenAddress { get; init; } = "127.0.0.1";

    /// <summary>The address hosts are told to connect to; <see cref="ListenAddress"/> when null (required when that is a wildcard).</summary>
    public string? AdvertiseAddress { get; init; }

    /// <summary>The NBD server's port; 0 picks a free one at the first start and keeps it in <see cref="RunDirectory"/>.</summary>
    public int Port { get; init; }

    /// <summary>Debian package qemu-system-common.</summary>
    public string Binary { get; init; } = "qemu-storage-daemon";

    /// <summary>Debian package qemu-utils.</summary>
    public string QemuImgBinary { get; init; } = "qemu-img";

    /// <summary>How long a new daemon may take to open its monitor.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(15);
}
