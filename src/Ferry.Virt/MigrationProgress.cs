namespace Ferry.Virt;

/// <summary>One sample of a running live migration, as QEMU's query-migrate reports it.</summary>
public sealed record MigrationProgress
{
    public long MemoryTotalBytes { get; init; }
    public long MemoryProcessedBytes { get; init; }
    public long MemoryRemainingBytes { get; init; }
    public long DiskTotalBytes { get; init; }
    public long DiskProcessedBytes { get; init; }
    public long DiskRemainingBytes { get; init; }
    /// <summary>Pages dirtied per second, in bytes.</summary>
    public long DirtyRateBytesPerSecond { get; init; }
    /// <summary>Pre-copy round, starting at 1.</summary>
    public int Iteration { get; init; }
    public long ExpectedDowntimeMs { get; init; }
    public bool PostCopy { get; init; }
    /// <summary>Set on the final sample of a completed migration: the guest's actual pause, in ms.</summary>
    public long? DowntimeMs { get; init; }
    /// <summary>Set on the final sample of a completed migration: wall time from <c>migrate</c> to completion, in ms.</summary>
    public long? TotalTimeMs { get; init; }
}

/// <summary>How a live migration ended, from the hypervisor's point of view.</summary>
public enum LiveMigrationOutcome
{
    /// <summary>The guest runs on the destination; the source copy is paused and must be cleaned up.</summary>
    Completed,
    /// <summary>The migration failed; the guest still runs on the source.</summary>
    Failed,
    /// <summary>The migration was aborted on request (or by the timeout policy); the guest still runs on the source.</summary>
    Cancelled,
}

public enum CompletionTimeoutAction
{
    Abort,
    ForceComplete,
}

/// <summary>
/// The knobs of one live migration (Nova's [libvirt] live_migration_* options), fixed when it starts.
/// Times are in the driver's clock (the fake driver may scale them).
/// </summary>
public sealed record LiveMigrationPlan
{
    public required string MigrationUuid { get; init; }
    public required string DestHost { get; init; }
    /// <summary>Where the destination waits for the guest (returned by pre_live_migration).</summary>
    public string? IncomingUri { get; init; }
    /// <summary>The destination's live_migration_inbound_addr from the migrate data: the address <see cref="IncomingUri"/> must name.</summary>
    public string? DestAddress { get; init; }
    public bool BlockMigration { get; init; }
    /// <summary>0 = unlimited.</summary>
    public long BandwidthMiBps { get; init; }
    public int DowntimeMs { get; init; } = 500;
    public int DowntimeSteps { get; init; } = 10;
    public int DowntimeDelaySecondsPerGiB { get; init; } = 75;
    /// <summary>0 disables the completion timeout.</summary>
    public int CompletionTimeoutSecondsPerGiB { get; init; } = 800;
    public CompletionTimeoutAction TimeoutAction { get; init; } = CompletionTimeoutAction.Abort;
    public bool PermitPostCopy { get; init; }
    public bool PermitAutoConverge { get; init; }
    /// <summary>TCP streams for the memory: above 1, QEMU's multifd with this many channels (never with post-copy, which QEMU 7.2 refuses to combine).</summary>
    public int ParallelConnections { get; init; } = 1;
    /// <summary>
    /// How many times in a row a broken post-copy stream is resumed (migrate-recover on the destination, migrate
    /// resume on the source) before the instance is handed to the operator; 0 never resumes.
    /// </summary>
    public int PostCopyRecoveryAttempts { get; init; } = 5;
    /// <summary>A post-copy stream that moves no byte for this long counts as broken (a silent link never errors).</summary>
    public int PostCopyStallSeconds { get; init; } = 10;
}

/// <summary>The back-off between resumes of a broken post-copy stream, shared by the drivers.</summary>
public static class PostCopyResume
{
    /// <summary>Seconds to wait before resume attempt <paramref name="attempt"/> (1-based): none for the first, then 1, 2, 4, 8, 10, 10…</summary>
    public static double DelaySecondsBefore(int attempt) => attempt <= 1 ? 0 : Math.Min(Math.Pow(2, attempt - 2), 10);
}

