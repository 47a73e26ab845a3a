namespace Ferry.Virt.Qemu;

/// <summary>Everything one QEMU process is started with; <see cref="QemuCommandLine.Build"/> turns it into arguments.</summary>
public sealed record QemuLaunchSpec
{
    public required string Uuid { get; init; }
    public required string Name { get; init; }
    public required int MemoryMb { get; init; }
    public required int Vcpus { get; init; }
    /// <summary>A multiboot/Linux kernel booted with <c>-kernel</c>; null boots from <see cref="DiskPath"/>.</summary>
    public string? KernelPath { get; init; }
    public string? KernelAppend { get; init; }
    /// <summary>The root disk (qcow2 overlay), attached as block node <c>disk0</c>.</summary>
    public string? DiskPath { get; init; }
    public string DiskFormat { get; init; } = "qcow2";
    /// <summary>A read-only config drive (raw), attached as block node <c>config0</c>.</summary>
    public string? ConfigDrivePath { get; init; }
    /// <summary>Volumes over NBD, each in the PCI slot its device name fixes (<see cref="GuestVolume.PciSlot"/>).</summary>
    public IReadOnlyList<GuestVolume> Volumes { get; init; } = [];
    /// <summary>The guest's NICs, after its disks (so both ends of a migration lay out the same PCI slots).</summary>
    public IReadOnlyList<QemuNic> Nics { get; init; } = [];
    public required string SerialLogPath { get; init; }
    public required string QmpSocketPath { get; init; }
    public string? PidFilePath { get; init; }
    /// <summary>QEMU's own stdout and stderr, appended (<c>qemu.log</c> beside <c>console.log</c>); null discards them.</summary>
    public string? LogPath { get; init; }
    /// <summary><c>tcg</c> or <c>kvm</c>.</summary>
    public string Accel { get; init; } = "tcg";
    public string MachineType { get; init; } = "pc";
    /// <summary>A named model both ends of a migration can run (not <c>host</c>).</summary>
    public string CpuModel { get; init; } = "qemu64";
    /// <summary>A named network namespace QEMU runs in (<c>ip netns exec</c>): its taps and listening sockets are there; null: the agent's.</summary>
    public string? NetworkNamespace { get; init; }
    /// <summary>When set, the process waits for an incoming migration (<c>defer</c> = wait for <c>migrate-incoming</c>).</summary>
    public string? IncomingUri { get; init; }
    /// <summary>Start with vCPUs stopped (<c>-S</c>); <c>cont</c> starts them.</summary>
    public bool StartPaused { get; init; }
}

/// <summary>
/// One NIC: a tap device of this host that QEMU creates on start and the kernel removes when QEMU exits (so a guest's
/// NICs never outlive its process), and the guest-visible device with the port's MAC.
/// </summary>
public sealed record QemuNic(string TapName, string MacAddress, string Model = "virtio-net-pci");
