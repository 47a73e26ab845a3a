namespace Ferry.Virt;

/// <summary>Everything a driver needs to run one guest; built by the compute agent from the instance.</summary>
public sealed record GuestSpec
{
    public required string Uuid { get; init; }
    /// <summary>The hypervisor-side name (instance-%08x).</summary>
    public required string Name { get; init; }
    public required int Vcpus { get; init; }
    public required int MemoryMb { get; init; }
    public required int RootGb { get; init; }
    public required string ImageRef { get; init; }
    public bool ConfigDrive { get; init; }
    /// <summary>Boot from volume: the root disk is not local.</summary>
    public bool VolumeBacked { get; init; }
    /// <summary>The user's name for the server (meta_data.json's name and hostname); null → <see cref="Name"/>.</summary>
    public string? DisplayName { get; init; }
    public string? ProjectId { get; init; }
    public string AvailabilityZone { get; init; } = "nova";
    /// <summary>Base64 user data for the config drive (cloud-init's user_data); null when none was given.</summary>
    public string? UserData { get; init; }
    /// <summary>The key pair named at create (meta_data.json's public_keys and keys); null when none was.</summary>
    public string? KeyName { get; init; }
    /// <summary>That key pair's public key, as stored on the instance at create.</summary>
    public string? KeyData { get; init; }
    /// <summary>That key pair's type: <c>ssh</c> or <c>x509</c>.</summary>
    public string? KeyType { get; init; }
    /// <summary>Instance metadata; drivers read their per-guest knobs from it (e.g. <c>ferry:dirty_rate_mibps</c>).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>();
    /// <summary>The guest's network interfaces: one NIC each, on the port's tap device with the port's MAC.</summary>
    public IReadOnlyList<Ferry.Core.Domain.Vif> Vifs { get; init; } = [];
    /// <summary>
    /// The NIC model of every interface, as the boot image's <c>hw_vif_model</c> names it (null: the driver's default,
    /// virtio). The same on every host the guest ever runs on: a live migration's destination must create the same
    /// device. A driver refuses a model it cannot give with <see cref="UnsupportedHardwareException"/> (<see cref="VifModels"/>).
    /// </summary>
    public string? VifModel { get; init; }
    /// <summary>The guest's volumes that this host has connected: one disk each, opened where the connection says.</summary>
    public IReadOnlyList<GuestVolume> Volumes { get; init; } = [];
}

/// <summary>
/// A volume as a guest's disk: the device it appears as, how this host reaches the volume, and boot index 0 for the root
/// volume of a guest booted from a volume.
/// </summary>
public sealed record GuestVolume(string VolumeId, string DeviceName, Ferry.Core.Volumes.VolumeConnectionInfo Connection, int? BootIndex = null)
{
    /// <summary>
    /// The disk's PCI slot, fixed by its device name (vda → 0x0f, vdb → 0x10, vdc → 0x11, …): a disk hot-plugged into a running guest
    /// and the same disk on the command line of a migration's destination must sit in the same slot.
    /// </summary>
    public int PciSlot => Ferry.Core.Volumes.VolumeDevices.SlotOf(DeviceName);

    /// <summary>The block node and device id stem of the disk (<c>vol-vdb</c>).</summary>
    public string NodeName => "vol-" + DeviceName[(DeviceName.LastIndexOf('/') + 1)..];
}

/// <summary>What a host offers, reported to placement and to the scheduler.</summary>
public sealed record HostResources
{
    public required string HypervisorType { get; init; }
    public required long HypervisorVersion { get; init; }
    public required int Vcpus { get; init; }
    public required int MemoryMb { get; init; }
    public required int LocalGb { get; init; }
    public string CpuModel { get; init; } = "qemu64";
    public string CpuVendor { get; init; } = "Intel";
    public string Arch { get; init; } = "x86_64";
    public IReadOnlyList<string> CpuFeatures { get; init; } = [];
}

/// <summary>A guest as the hypervisor sees it.</summary>
public sealed record GuestInfo(string Uuid, GuestPowerState PowerState, int MemoryMb);

public enum GuestPowerState
{
    NoState = 0,
    Running = 1,
    Paused = 3,
    Shutdown = 4,
    Crashed = 6,
    /// <summary>Saved to a file and not running (Nova's SUSPENDED: libvirt's managed save).</summary>
    Suspended = 7,
}
