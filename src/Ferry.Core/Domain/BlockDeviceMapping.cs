using Ferry.Core.Volumes;

namespace Ferry.Core.Domain;

/// <summary>
/// One volume of a server (Nova's block device mapping, destination volume): which Cinder volume, the device the guest
/// sees, and the attachment and connection of the host that runs the guest now.
/// </summary>
public sealed record BlockDeviceMapping
{
    public required string Uuid { get; init; }
    /// <summary>The volume; empty until the build made it when the request asked for a new one (source image or blank).</summary>
    public required string VolumeId { get; init; }
    /// <summary>The guest's device (<c>/dev/vdb</c>); it also fixes the disk's PCI slot, the same on every host.</summary>
    public required string DeviceName { get; init; }
    /// <summary>0 for the root volume of a server booted from volume (<c>/dev/vda</c>); null for a data volume.</summary>
    public int? BootIndex { get; init; }
    /// <summary><c>volume</c> (an existing one), <c>image</c> (made from an image at build) or <c>blank</c> (made empty at build).</summary>
    public string SourceType { get; init; } = "volume";
    /// <summary>Delete the volume with the server.</summary>
    public bool DeleteOnTermination { get; init; }
    /// <summary>The size of a volume made at build (source <c>image</c>).</summary>
    public int? VolumeSize { get; init; }
    /// <summary>The image the volume is made from (source <c>image</c>), or the one a root volume was made from (filled in at build).</summary>
    public string? ImageId { get; init; }
    public string? Tag { get; init; }
    /// <summary>The Cinder attachment of the host that holds the guest; null until one was made.</summary>
    public string? AttachmentId { get; init; }
    /// <summary>The host whose attachment <see cref="AttachmentId"/> is (its connector); null until connected.</summary>
    public string? AttachedHost { get; init; }
    /// <summary>How that host opens the volume; null until connected.</summary>
    public VolumeConnectionInfo? ConnectionInfo { get; init; }
    public DateTimeOffset CreatedAt { get; init; }

    public bool HasVolume => VolumeId.Length > 0;
}
