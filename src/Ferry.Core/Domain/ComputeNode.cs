namespace Ferry.Core.Domain;

/// <summary>What a compute host reports about itself; its <see cref="Uuid"/> is also its resource provider's.</summary>
public sealed record ComputeNode
{
    public int Id { get; init; }
    public required string Uuid { get; init; }
    public required string Host { get; init; }
    public required string HypervisorHostname { get; init; }
    public required string HypervisorType { get; init; }
    public required long HypervisorVersion { get; init; }
    public required int Vcpus { get; init; }
    public required int MemoryMb { get; init; }
    public required int LocalGb { get; init; }
    public string HostIp { get; init; } = "127.0.0.1";
    public CpuInfo CpuInfo { get; init; } = new();
    /// <summary>The architectures/hypervisor types this host can run, for ImagePropertiesFilter.</summary>
    public List<string> SupportedArchitectures { get; init; } = ["x86_64"];
    public double CpuAllocationRatio { get; init; } = 4.0;
    public double RamAllocationRatio { get; init; } = 1.0;
    public double DiskAllocationRatio { get; init; } = 1.0;
    public int ReservedHostMemoryMb { get; init; }
    public DateTimeOffset? BootedAt { get; init; }
}

/// <summary>Host CPU description compared before a live migration (Nova's cpu_info).</summary>
public sealed record CpuInfo
{
    public string Arch { get; init; } = "x86_64";
    public string Model { get; init; } = "qemu64";
    public string Vendor { get; init; } = "Intel";
    public List<string> Features { get; init; } = [];
}
