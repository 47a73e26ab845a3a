namespace Ferry.Virt.Fake;

/// <summary>Configuration of one fake hypervisor host.</summary>
public sealed class FakeDriverOptions
{
    public string HostName { get; set; } = "fake-host";

    /// <summary>Where an incoming live migration "listens" (Nova's live_migration_inbound_addr): named in the incoming URI.</summary>
    public string MigrationAddress { get; set; } = "127.0.0.1";

    /// <summary>This host's own address (Nova's my_ip): where the kept copy of a cold migration is "served" from.</summary>
    public string HostAddress { get; set; } = "127.0.0.1";

    /// <summary>A real directory. Hosts configured with the same path share storage.</summary>
    public string InstancesPath { get; set; } = Path.Combine(Path.GetTempPath(), "ferry-fake-instances");

    public int Vcpus { get; set; } = 16;

    public int MemoryMb { get; set; } = 32768;

    public int LocalGb { get; set; } = 1000;

    public long HypervisorVersion { get; set; } = 8002000;

    /// <summary>The hypervisor type the host reports; live migration needs the same type on both ends.</summary>
    public string HypervisorType { get; set; } = "fake";

    public string CpuModel { get; set; } = "qemu64";

    public IReadOnlyList<string> CpuFeatures { get; set; } = [];

    /// <summary>The migration link speed in MiB/s; 0 means infinite (copies cost no time).</summary>
    public long LinkBandwidthMiBps { get; set; } = 1000;

    /// <summary>
    /// Real seconds slept per simulated second. 0 never sleeps (tests, benchmarks): migrations finish
    /// at once while the simulated clock still advances.
    /// </summary>
    public double TimeScale { get; set; } = 1.0;

    /// <summary>Dirty rate of guests without the <c>ferry:dirty_rate_mibps</c> metadata key.</summary>
    public double DefaultDirtyRateMiBps { get; set; }
}
