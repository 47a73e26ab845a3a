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
    /// <summary>When the record last changed (Glance's updated_at); null means <see cref="CreatedAt"/>.</summary>
    public DateTimeOffset? UpdatedAt { get; init; }
    /// <summary>Glance visibility: public, community, shared or private.</summary>
    public string Visibility { get; init; } = "public";
    /// <summary>The owning project; null for the built-in catalog.</summary>
    public string? Owner { get; init; }
    public bool Protected { get; init; }
    public List<string> Tags { get; init; } = [];
    /// <summary>MD5 of the uploaded data (Glance's legacy checksum); null until data is uploaded.</summary>
    public string? Checksum { get; init; }
    public string? OsHashAlgo { get; init; }
    public string? OsHashValue { get; init; }
    /// <summary>Image properties the scheduler matches (hypervisor_type, hw_architecture, …).</summary>
    public Dictionary<string, string> Properties { get; init; } = [];
}
