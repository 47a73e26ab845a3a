namespace Ferry.Core.Domain;

/// <summary>An image in Ferry's built-in catalog.</summary>
public sealed record Image
{
    public required string Id { get; init; }
    public required string Name { get; init; }
    public string Status { get; init; } = "active";
    public long SizeBytes { get; init; }
    public int MinDiskGb { get; init; }
    public int MinRamMb { get; init; }
    public string DiskFormat { get; init; } = "qcow2";
    public string ContainerFormat { get; init; } = "bare";
    public DateTimeOffset CreatedAt { get; init; }
    /// <summary>Image properties the scheduler matches (hypervisor_type, hw_architecture, …).</summary>
    public Dictionary<string, string> Properties { get; init; } = [];
}
