using Ferry.Core.Domain;

namespace Ferry.Core.Rpc.Compute;

// Messages to compute.<host>. Additive changes only; docs/architecture.md lists them.

/// <summary>What the two hosts learn about each other while checking a live migration (Nova's LibvirtLiveMigrateData).</summary>
public sealed record LiveMigrateData
{
    /// <summary>null = "auto": the source decides (block unless storage is shared).</summary>
    public bool? BlockMigration { get; init; }
    public string? SharedStorageTestFile { get; init; }
    public bool IsSharedInstancePath { get; init; }
    public bool IsSharedBlockStorage { get; init; }
    public long DiskAvailableMb { get; init; }
    public string? DestHost { get; init; }
    public string? DestAddress { get; init; }
    /// <summary>Where the destination listens for the incoming guest (set by pre_live_migration).</summary>
    public string? IncomingUri { get; init; }
    /// <summary>TCP streams for the memory (multifd when above 1), decided by the source and set up by both ends.</summary>
    public int ParallelConnections { get; init; } = 1;
    /// <summary>
    /// The server's volume mappings as the destination connected them in pre_live_migration (its own attachments and
    /// connections, Nova's new attachment ids; the source's stay in old_vol_attachment_ids' place, the instance's mappings).
    /// </summary>
    public List<BlockDeviceMapping>? DestinationVolumes { get; init; }
}

/// <summary><see cref="Image"/> is null for a server booted from a volume.</summary>
public sealed record BuildAndRunInstanceRequest(Instance Instance, Image? Image, string RequestId);

public sealed record InstanceRequest(Instance Instance, string? RequestId = null);

/// <summary>attach_volume: the API reserved the volume (an attachment without a connector) and added the mapping.</summary>
public sealed record AttachVolumeRequest(Instance Instance, BlockDeviceMapping Mapping, string? RequestId);

/// <summary>detach_volume: the API marked the volume detaching.</summary>
public sealed record DetachVolumeRequest(Instance Instance, string VolumeId, string? RequestId);

public sealed record RebootInstanceRequest(Instance Instance, bool Hard, string? RequestId);

public sealed record CheckCanLiveMigrateDestinationRequest(Instance Instance, Migration Migration, bool? BlockMigration, string SourceHost, string? RequestId);

public sealed record CheckCanLiveMigrateSourceRequest(Instance Instance, LiveMigrateData Data, string? RequestId);

public sealed record LiveMigrationRequest(Instance Instance, Migration Migration, string Dest, LiveMigrateData Data, string? RequestId);

public sealed record PreLiveMigrationRequest(Instance Instance, Migration Migration, LiveMigrateData Data, string? RequestId);

/// <param name="Volumes">The destination's volume mappings from pre_live_migration (null: the server has none).</param>
public sealed record PostLiveMigrationAtDestinationRequest(Instance Instance, Migration Migration, string? RequestId, List<BlockDeviceMapping>? Volumes = null);

public sealed record RollbackLiveMigrationAtDestinationRequest(Instance Instance, Migration Migration, bool DestroyDisks, string? RequestId);

/// <summary>
/// What the destination knew of a failed live migration: the hypervisor process of its incoming copy ended on its own
/// (its message and details, QEMU's last lines), or both null.
/// </summary>
public sealed record RollbackLiveMigrationAtDestinationReply(string? GuestExit, string? GuestExitDetails);

public sealed record RecoverPostCopyAtDestinationRequest(Instance Instance, Migration Migration, string? RequestId);

/// <summary>Where the destination listens again for a broken post-copy stream.</summary>
public sealed record RecoverPostCopyReply(string IncomingUri);

public sealed record LiveMigrationAbortRequest(Instance Instance, int MigrationId, string? RequestId);

public sealed record PrepResizeRequest(Instance Instance, Migration Migration, Flavor NewFlavor, RequestSpec RequestSpec, List<Selection> Alternates, string? RequestId);

public sealed record ResizeInstanceRequest(Instance Instance, Migration Migration, Flavor NewFlavor, string? RequestId);

/// <summary>The disks a source handed over, in the driver's own terms (a path map or transfer token).</summary>
public sealed record FinishResizeRequest(Instance Instance, Migration Migration, Flavor NewFlavor, Dictionary<string, string> DiskInfo, string? RequestId);

public sealed record MigrationRequest(Instance Instance, Migration Migration, string? RequestId);

public sealed record RebuildInstanceRequest(Instance Instance, Migration Migration, Image? Image, bool? OnSharedStorage, Selection Selection, string? RequestId);

public sealed record CheckInstanceSharedStorageRequest(Instance Instance, string Filename);

public sealed record BoolReply(bool Value);

/// <summary>get_console_output: the last <paramref name="TailLength"/> lines (null = all).</summary>
public sealed record ConsoleOutputRequest(Instance Instance, int? TailLength, string? RequestId);

public sealed record ConsoleOutputReply(string Output);
