namespace Ferry.Core.Domain;

/// <summary>A flavor: the size of an instance. <see cref="Id"/> is the API's flavorid, <see cref="InternalId"/> the row id Nova shows as a migration's old/new flavor.</summary>
public sealed record Flavor
{
    public required int InternalId { get; init; }
    public required string Id { get; init; }
    public required string Name { get; init; }
    public required int Vcpus { get; init; }
    public required int MemoryMb { get; init; }
    public required int RootGb { get; init; }
    public int EphemeralGb { get; init; }
    public int SwapMb { get; init; }
    public double RxtxFactor { get; init; } = 1.0;
    public bool IsPublic { get; init; } = true;
    public bool Disabled { get; init; }
    public string? Description { get; init; }
    public Dictionary<string, string> ExtraSpecs { get; init; } = [];

    /// <summary>DISK_GB a flavor asks placement for: root + ephemeral + swap rounded up to GiB.</summary>
    public int DiskGb => RootGb + EphemeralGb + (SwapMb + 1023) / 1024;

    /// <summary>The local disk an instance of this flavor uses: without the root disk when it boots from a volume (Nova's is_bfv).</summary>
    public int LocalDiskGb(bool volumeBacked) => volumeBacked ? DiskGb - RootGb : DiskGb;
}
