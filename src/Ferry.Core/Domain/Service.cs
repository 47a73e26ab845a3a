namespace Ferry.Core.Domain;

/// <summary>A service row: one per binary per host, with its heartbeat (Nova's services table).</summary>
public sealed record Service
{
    public required int Id { get; init; }
    public required string Uuid { get; init; }
    public required string Host { get; init; }
    public required string Binary { get; init; }
    public required string Topic { get; init; }
    public string Zone { get; init; } = "nova";
    public bool Disabled { get; init; }
    public string? DisabledReason { get; init; }
    public bool ForcedDown { get; init; }
    public int Version { get; init; }
    public DateTimeOffset? LastSeenUp { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }

    /// <summary>Nova's servicegroup rule: down when forced down or silent for longer than service_down_time.</summary>
    public bool IsUp(DateTimeOffset now, TimeSpan serviceDownTime) =>
        !ForcedDown && now - (LastSeenUp ?? CreatedAt) <= serviceDownTime;
}
