namespace Ferry.Core.Domain;

/// <summary>
/// An instance as it crosses the wire: the conductor owns the row, compute agents get copies.
/// Changes are made only through compare-and-swap updates (see <c>InstanceUpdate</c>).
/// </summary>
public sealed record Instance
{
    public required int Id { get; init; }
    public required string Uuid { get; init; }
    public required string DisplayName { get; init; }
    public required string ProjectId { get; init; }
    public required string UserId { get; init; }
    public string? Host { get; init; }
    public string? Node { get; init; }
    public required Flavor Flavor { get; init; }
    /// <summary>The flavor before a resize, kept until confirm or revert.</summary>
    public Flavor? OldFlavor { get; init; }
    /// <summary>The flavor a resize is moving to.</summary>
    public Flavor? NewFlavor { get; init; }
    public required string ImageRef { get; init; }
    public VmState VmState { get; init; }
    public TaskState? TaskState { get; init; }
    public PowerState PowerState { get; init; }
    /// <summary>vm_state before a resize, restored by revert (Nova's sys_meta old_vm_state).</summary>
    public VmState? OldVmState { get; init; }
    public string AvailabilityZone { get; init; } = "nova";
    public Dictionary<string, string> Metadata { get; init; } = [];
    /// <summary>
    /// Nova's instance.system_metadata as far as Ferry keeps it: the boot image's properties as <c>image_&lt;key&gt;</c>
    /// (<see cref="ImageSystemMetadata"/>), written at create and read by the compute host that builds or moves the guest.
    /// </summary>
    public Dictionary<string, string> SystemMetadata { get; init; } = [];
    public bool Locked { get; init; }
    public string? LockedReason { get; init; }
    public int Progress { get; init; }
    public bool ConfigDrive { get; init; }
    /// <summary>Boot from volume: no local root disk.</summary>
    public bool VolumeBacked { get; init; }
    public string? KeyName { get; init; }
    /// <summary>
    /// The key pair's public key as it was when the server was created (Nova's instance.key_data): deleting
    /// or replacing the key pair later does not change what this server's config drive carries.
    /// </summary>
    public string? KeyData { get; init; }
    /// <summary>The key pair's type at create time, <c>ssh</c> or <c>x509</c> (Nova keeps the whole key pair in instance.keypairs).</summary>
    public string? KeyType { get; init; }
    /// <summary>Base64 user data (cloud-init reads it from the config drive), as given at create.</summary>
    public string? UserData { get; init; }
    public string? ServerGroupUuid { get; init; }
    /// <summary>The boot request's scheduler hints (same_host, different_host…), honoured again on every move as Nova's RequestSpec does.</summary>
    public Dictionary<string, List<string>> SchedulerHints { get; init; } = [];
    /// <summary>
    /// The networks the boot request asked for, kept for the compute host that builds the server (Nova's
    /// requested_networks): empty for none.
    /// </summary>
    public List<RequestedNetwork> RequestedNetworks { get; init; } = [];
    /// <summary>The instance's network interfaces (Nova's info cache), filled in by the compute host that built it.</summary>
    public List<Vif> NetworkInfo { get; init; } = [];
    /// <summary>The server's volumes (Nova's block device mappings of destination volume), in device order.</summary>
    public List<BlockDeviceMapping> BlockDevices { get; init; } = [];
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }
    public DateTimeOffset? LaunchedAt { get; init; }
    public DateTimeOffset? TerminatedAt { get; init; }

    /// <summary>The name QEMU and libvirt use (<c>instance-%08x</c>).</summary>
    public string Name => $"instance-{Id:x8}";
}
