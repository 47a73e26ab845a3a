namespace Ferry.Core.Volumes;

/// <summary>A Cinder volume: a block device of <see cref="SizeGb"/> GiB that a server can attach, kept by the volume service's backend.</summary>
public sealed record Volume
{
    public required string Id { get; init; }
    public required string ProjectId { get; init; }
    public string UserId { get; init; } = "";
    public string Name { get; init; } = "";
    public string Description { get; init; } = "";
    public required int SizeGb { get; init; }
    /// <summary>One of <see cref="VolumeStatus"/>.</summary>
    public required string Status { get; init; }
    /// <summary><c>detached</c>, <c>attaching</c> or <c>attached</c>: whether any attachment is complete.</summary>
    public string AttachStatus { get; init; } = VolumeAttachStatus.Detached;
    /// <summary>Made from an image that a server can boot from.</summary>
    public bool Bootable { get; init; }
    public bool Multiattach { get; init; }
    /// <summary>The image it was made from, or null.</summary>
    public string? ImageId { get; init; }
    public string VolumeType { get; init; } = "__DEFAULT__";
    public string AvailabilityZone { get; init; } = "nova";
    public Dictionary<string, string> Metadata { get; init; } = [];
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }
}

/// <summary>Cinder's volume statuses (the ones Ferry reaches).</summary>
public static class VolumeStatus
{
    public const string Creating = "creating";
    public const string Downloading = "downloading";
    public const string Available = "available";
    public const string Reserved = "reserved";
    public const string Attaching = "attaching";
    public const string InUse = "in-use";
    public const string Detaching = "detaching";
    public const string Extending = "extending";
    public const string Deleting = "deleting";
    public const string Error = "error";
    public const string ErrorDeleting = "error_deleting";
    public const string ErrorExtending = "error_extending";
}

/// <summary>Attach statuses of a volume and of one attachment.</summary>
public static class VolumeAttachStatus
{
    public const string Detached = "detached";
    public const string Reserved = "reserved";
    public const string Attaching = "attaching";
    public const string Attached = "attached";
    public const string Detaching = "detaching";
    public const string ErrorAttaching = "error_attaching";
    public const string ErrorDetaching = "error_detaching";
}

/// <summary>
/// A Cinder attachment (the v3 attachments API Nova uses): one server's claim on a volume from one host. Created without
/// a connector (reserved), given the host's connector (attaching, with the connection info the host opens), completed
/// once the guest has the disk (attached); deleted when the host lets go (a live migration has one per host for a while).
/// </summary>
public sealed record VolumeAttachment
{
    public required string Id { get; init; }
    public required string VolumeId { get; init; }
    public required string InstanceUuid { get; init; }
    /// <summary>One of <see cref="VolumeAttachStatus"/>.</summary>
    public required string AttachStatus { get; init; }
    /// <summary>The connector's host once one was given; null while reserved.</summary>
    public string? AttachedHost { get; init; }
    /// <summary>The device the guest sees it as (<c>/dev/vdb</c>), from the connector's mountpoint.</summary>
    public string? Mountpoint { get; init; }
    /// <summary><c>rw</c> or <c>ro</c>; null until a connector was given.</summary>
    public string? AttachMode { get; init; }
    public VolumeConnector? Connector { get; init; }
    /// <summary>How the host reaches the volume; null while reserved.</summary>
    public VolumeConnectionInfo? ConnectionInfo { get; init; }
    public DateTimeOffset? AttachedAt { get; init; }
    public DateTimeOffset? DetachedAt { get; init; }
}

/// <summary>What a compute host tells the volume service about itself (os-brick's connector properties, the ones that matter here).</summary>
public sealed record VolumeConnector
{
    public required string Host { get; init; }
    /// <summary>The host's address on the storage network (Nova's <c>my_block_storage_ip</c>).</summary>
    public required string Ip { get; init; }
    public string? Mountpoint { get; init; }
    public string Platform { get; init; } = "x86_64";
    public string OsType { get; init; } = "linux";
    public bool Multipath { get; init; }
}

/// <summary>
/// How a host opens a volume. Ferry's backend exports each volume over NBD (<c>driver_volume_type: nbd</c>): QEMU connects
/// with <c>-blockdev driver=nbd,server.host=…,server.port=…,export=…</c>. Both ends of a live migration open the same export.
/// </summary>
public sealed record VolumeConnectionInfo
{
    public const string NbdType = "nbd";

    public string DriverVolumeType { get; init; } = NbdType;
    public required string Host { get; init; }
    public required int Port { get; init; }
    public required string Export { get; init; }
    public string AccessMode { get; init; } = "rw";
}

/// <summary>
/// Where volumes live: files the backend creates, resizes and deletes, each exported for hosts to open while it exists.
/// The volume service calls it; nothing else touches the files.
/// </summary>
public interface IVolumeBackend
{
    /// <summary>Creates the volume's storage (<paramref name="sizeGb"/> GiB, sparse), from the image file when given, and exports it. Idempotent per id.</summary>
    Task CreateAsync(string volumeId, int sizeGb, string? sourceImagePath, CancellationToken cancellationToken);

    /// <summary>Grows the volume to <paramref name="newSizeGb"/> GiB, also while a guest has it open.</summary>
    Task ExtendAsync(string volumeId, int newSizeGb, CancellationToken cancellationToken);

    /// <summary>Ends the volume's export and deletes its storage. Idempotent.</summary>
    Task DeleteAsync(string volumeId, CancellationToken cancellationToken);

    /// <summary>How the host of <paramref name="connector"/> opens the volume (its export).</summary>
    Task<VolumeConnectionInfo> ConnectionInfoAsync(string volumeId, VolumeConnector connector, CancellationToken cancellationToken);

    /// <summary>The ids of the volumes exported now (invariants: no export without a volume).</summary>
    Task<IReadOnlyList<string>> ListExportsAsync(CancellationToken cancellationToken);
}

/// <summary>What the compute agent reads of a volume: its status, size and the image it was made from (volume_image_metadata).</summary>
public sealed record VolumeSummary(string Id, string Status, int SizeGb, string? ImageId);
