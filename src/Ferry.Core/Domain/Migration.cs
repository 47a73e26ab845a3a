namespace Ferry.Core.Domain;

/// <summary>A move of one instance (nova/objects/migration.py).</summary>
public sealed record Migration
{
    public required int Id { get; init; }
    public required string Uuid { get; init; }
    public required string InstanceUuid { get; init; }
    public required string MigrationType { get; init; }
    public required string Status { get; init; }
    public string? SourceCompute { get; init; }
    public string? SourceNode { get; init; }
    public string? DestCompute { get; init; }
    public string? DestNode { get; init; }
    public string? DestHost { get; init; }
    public int? OldInstanceTypeId { get; init; }
    public int? NewInstanceTypeId { get; init; }
    public long? MemoryTotal { get; init; }
    public long? MemoryProcessed { get; init; }
    public long? MemoryRemaining { get; init; }
    public long? DiskTotal { get; init; }
    public long? DiskProcessed { get; init; }
    public long? DiskRemaining { get; init; }
    public required string UserId { get; init; }
    public required string ProjectId { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }
}
