namespace Ferry.Virt.Qemu;

/// <summary>Configuration of one QEMU compute host.</summary>
public sealed class QemuDriverOptions
{
    public string HostName { get; set; } = Environment.MachineName;

    /// <summary>Nova's instances_path: <c>&lt;uuid&gt;/disk</c>, <c>_base/&lt;hash&gt;</c>. Keep it short: QMP socket paths must fit 107 bytes.</summary>
    public string InstancesPath { get; set; } = "/var/lib/ferry/instances";

    /// <summary>Where image files are found by image ref (a local stand-in for Glance): <c>&lt;ImagesPath&gt;/&lt;imageRef&gt;</c>.</summary>
    public string? ImagesPath { get; set; }

    public string QemuBinary { get; set; } = "qemu-system-x86_64";

    public string QemuImgBinary { get; set; } = "qemu-img";

    /// <summary>Makes config drives (Debian package xorriso).</summary>
    public string XorrisoBinary { get; set; } = "xorriso";

    /// <summary><c>auto</c> (KVM when /dev/kvm can be opened, else TCG), <c>kvm</c> or <c>tcg</c>.</summary>
    public string Accel { get; set; } = "auto";

    /// <summary>A named CPU model so guests can move between hosts.</summary>
    public string CpuModel { get; set; } = "qemu64";

    /// <summary>Image refs that mean "the Ferry test guest" (booted with -kernel from <see cref="TestGuestKernelPath"/>).</summary>
    public IReadOnlyList<string> TestGuestImageRefs { get; set; } = [QemuTestGuest.DefaultImageRef];

    /// <summary>tools/test-guest/out/ferry-test-guest.elf, built by tools/test-guest/build.sh.</summary>
    public string? TestGuestKernelPath { get; set; }

    /// <summary>Size of the raw <c>_base</c> image created for the test guest.</summary>
    public int TestGuestBaseImageMb { get; set; } = 16;

    /// <summary>
    /// The address destination QEMUs listen on for incoming migrations and their NBD servers (Nova's
    /// live_migration_inbound_addr; the agent sets it from its own options).
    /// </summary>
    public string MigrationAddress { get; set; } = "127.0.0.1";

    /// <summary>This host's own address (Nova's my_ip): the cold-migration transfer server listens on it.</summary>
    public string HostAddress { get; set; } = "127.0.0.1";

    /// <summary>
    /// The Linux bridge this host's guest NICs join (Nova's linux bridge VIFs); created when missing. Null: guests get
    /// no NICs whatever ports they have (a host without a data plane).
    /// </summary>
    public string? Bridge { get; set; }

    /// <summary>An address (a.b.c.d/prefix) the host puts on its bridge at start, e.g. the gateway of the guests' subnet; null: none.</summary>
    public string? BridgeAddress { get; set; }

    /// <summary>
    /// This host has a network namespace of its own (a machine, or a lab namespace): taps are named as Nova names them,
    /// <c>tap</c> + the port id's first 11 characters. Otherwise hosts share one namespace (all-in-one) and a tap's
    /// name carries a tag of its host too, so a port's taps on the two ends of a migration never collide.
    /// </summary>
    public bool OwnNetworkNamespace { get; set; }

    /// <summary>
    /// A named network namespace this host's QEMUs, taps and bridge live in while the driver itself runs outside it
    /// (benchmarks drive two such hosts from one process); null: the driver's own namespace. Implies <see cref="OwnNetworkNamespace"/>.
    /// </summary>
    public string? NetworkNamespace { get; set; }

    public TimeSpan StartTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// How long a volume's NBD server may take to greet this host before a QEMU is given the volume (<see cref="NbdExportProbe"/>):
    /// a storage path that drops packets fails the start, migration or attach in this time instead of holding QEMU.
    /// </summary>
    public TimeSpan VolumeConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long the source of a cold migration serves the guest's files to the destination at most.</summary>
    public TimeSpan ResizeTransferLifetime { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How long a soft reboot waits for the guest to shut down after ACPI power-down before resetting it.</summary>
    public TimeSpan SoftRebootTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long <c>quit</c> may take before the process is killed.</summary>
    public TimeSpan StopGracePeriod { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Kill every QEMU process this driver runs when it is disposed (tests; an agent that owns its guests' lifetime).</summary>
    public bool KillGuestsOnDispose { get; set; } = true;
}
