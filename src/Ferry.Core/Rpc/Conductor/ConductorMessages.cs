using Ferry.Core.Domain;

namespace Ferry.Core.Rpc.Conductor;

// Messages to the conductor: the move flows (from the API) and the database proxy (from compute
// agents, which never open the database; Nova's conductor object-proxy).

public sealed record BuildInstanceRequest(string InstanceUuid, RequestSpec RequestSpec, string RequestId);

public sealed record LiveMigrateInstanceRequest(string InstanceUuid, string? Host, bool? BlockMigration, bool Force, string RequestId);

/// <summary>
/// Cold migration when <see cref="NewFlavorId"/> is null, resize otherwise. A destination whose
/// prep_resize failed sends it back with the <see cref="MigrationUuid"/> in flight and the
/// <see cref="Alternates"/> left to try (Nova's reschedule).
/// </summary>
public sealed record MigrateServerRequest(string InstanceUuid, string? NewFlavorId, string? Host, string RequestId,
    string? MigrationUuid = null, List<Selection>? Alternates = null);

public sealed record EvacuateRequest(string InstanceUuid, string MigrationUuid, string? Host, bool Force, bool? OnSharedStorage, string RequestId);

public sealed record ServiceReportRequest(string Host, string Binary, string Topic, int Version);

public sealed record ServiceReportReply(int ServiceId, bool ForcedDown, bool Disabled);

/// <summary>
/// A compute agent's start in one call: its service report, its node (created, or updated keeping its uuid) and, for its
/// recovery, the host's instances and migrations as they are once both are written.
/// </summary>
public sealed record ComputeStartRequest(ServiceReportRequest Service, ComputeNode Node);

/// <param name="Node">The node as saved: a uuid other than the one proposed means the node (and its provider) existed.</param>
public sealed record ComputeStartReply(ServiceReportReply Service, ComputeNode Node, HostRecoveryState Recovery);

public sealed record InstanceGetRequest(string Uuid);

public sealed record InstancesByHostRequest(string Host);

public sealed record InstanceList(List<Instance> Instances);

/// <summary>
/// A change to an instance row. A field left null is not changed; the Set* flags say when null
/// itself is the new value. Applied only while task_state is one of <see cref="ExpectedTaskStates"/>
/// (when given): that compare-and-swap is what keeps two moves from both starting.
/// </summary>
public sealed record InstanceUpdateRequest
{
    public required string Uuid { get; init; }
    public VmState? VmState { get; init; }
    public bool SetTaskState { get; init; }
    public TaskState? TaskState { get; init; }
    public PowerState? PowerState { get; init; }
    public string? Host { get; init; }
    public string? Node { get; init; }
    /// <summary>Sets host and node to none (a build that never ran anywhere).</summary>
    public bool ClearHost { get; init; }
    public string? AvailabilityZone { get; init; }
    public Flavor? Flavor { get; init; }
    public bool SetOldFlavor { get; init; }
    public Flavor? OldFlavor { get; init; }
    public bool SetNewFlavor { get; init; }
    public Flavor? NewFlavor { get; init; }
    public bool SetOldVmState { get; init; }
    public VmState? OldVmState { get; init; }
    public int? Progress { get; init; }
    public DateTimeOffset? LaunchedAt { get; init; }
    /// <summary>True: the guest has a config drive from now on (made at build though not asked for: the host's force_config_drive or the image's img_config_drive).</summary>
    public bool? ConfigDrive { get; init; }
    /// <summary>Replaces the instance's metadata (server metadata API).</summary>
    public Dictionary<string, string>? Metadata { get; init; }
    /// <summary>Replaces the instance's network info cache.</summary>
    public List<Vif>? NetworkInfo { get; init; }
    /// <summary>Replaces the instance's block device mappings.</summary>
    public List<BlockDeviceMapping>? BlockDevices { get; init; }
    /// <summary>
    /// Adds one mapping to the row's list under its lock, refused (<see cref="Errors.BlockDeviceTakenException"/>) when its
    /// volume is mapped already or its device taken: two attaches at once cannot both take /dev/vdb, nor lose each other.
    /// </summary>
    public BlockDeviceMapping? AddBlockDevice { get; init; }
    /// <summary>Replaces the mapping of the same volume under the row's lock (its connection recorded), if it is still there.</summary>
    public BlockDeviceMapping? ReplaceBlockDevice { get; init; }
    /// <summary>Drops the mapping of this volume under the row's lock.</summary>
    public string? RemoveBlockDevice { get; init; }
    /// <summary>Marks the row deleted (terminate finished).</summary>
    public bool Deleted { get; init; }
    public List<TaskState?>? ExpectedTaskStates { get; init; }
    public string? ExpectedHost { get; init; }
}

public sealed record MigrationGetRequest(string Uuid);

public sealed record MigrationUpdateRequest
{
    public required string Uuid { get; init; }
    public string? Status { get; init; }
    public string? SourceNode { get; init; }
    public string? DestCompute { get; init; }
    public string? DestNode { get; init; }
    public string? DestHost { get; init; }
    public long? MemoryTotal { get; init; }
    public long? MemoryProcessed { get; init; }
    public long? MemoryRemaining { get; init; }
    public long? DiskTotal { get; init; }
    public long? DiskProcessed { get; init; }
    public long? DiskRemaining { get; init; }
    /// <summary>Only change the record while its status is one of these.</summary>
    public List<string>? ExpectedStatuses { get; init; }
}

/// <summary>The instances placed on the host, and every migration it is the source or destination of.</summary>
public sealed record HostRecoveryState(List<Instance> Instances, List<Migration> Migrations);

/// <summary>Start or finish of an instance-action event (Nova's wrap_instance_event).</summary>
/// <param name="Details">What failed, in a line (Nova's event <c>details</c>).</param>
/// <param name="Traceback">The fault's details (causes, the failing layer's last words) where Nova keeps a Python traceback.</param>
/// <param name="Key">Chosen by the compute for one run of a step, sent with its start and its finish: the event's row is found by it,
/// so the start may arrive late, twice, or at another conductor replica (a cast) and change nothing once the finish is there.
/// Null: the finish closes the latest unfinished event of that name (start-up recovery, and older agents).</param>
/// <param name="StartTime">When the compute started the step (Nova takes it in the compute too): the row's start time whichever message
/// lands first.</param>
public sealed record ActionEventRequest(string InstanceUuid, string? RequestId, string Event, string Host, bool Finished, bool Failed, string? Details,
    string? Traceback = null, string? Key = null, DateTimeOffset? StartTime = null);

public sealed record InstanceFaultRequest(string InstanceUuid, int Code, string Message, string Host, string? Details);
