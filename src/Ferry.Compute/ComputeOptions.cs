using Ferry.Virt;

namespace Ferry.Compute;

/// <summary>One compute agent's settings (Nova's [DEFAULT] and [libvirt] live_migration_* options).</summary>
public sealed class ComputeOptions
{
    public required string Host { get; set; }

    /// <summary>Heartbeat period (Nova: report_interval, 10 s).</summary>
    public TimeSpan ReportInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Outgoing live migrations run at once from this host; more wait as `queued` (Nova default 1; 0 = unlimited).</summary>
    public int MaxConcurrentLiveMigrations { get; set; } = 1;

    public double CpuAllocationRatio { get; set; } = 4.0;
    public double RamAllocationRatio { get; set; } = 1.0;
    public double DiskAllocationRatio { get; set; } = 1.0;
    public int ReservedHostMemoryMb { get; set; }

    public long LiveMigrationBandwidthMiBps { get; set; }
    public int LiveMigrationDowntimeMs { get; set; } = 500;
    public int LiveMigrationDowntimeSteps { get; set; } = 10;
    public int LiveMigrationDowntimeDelaySecondsPerGiB { get; set; } = 75;
    public int LiveMigrationCompletionTimeoutSecondsPerGiB { get; set; } = 800;
    public CompletionTimeoutAction LiveMigrationTimeoutAction { get; set; } = CompletionTimeoutAction.Abort;
    public bool LiveMigrationPermitPostCopy { get; set; }
    public bool LiveMigrationPermitAutoConverge { get; set; }
    /// <summary>
    /// Nova's live_migration_parallel_connections (2026.1): above 1, the memory moves over that many streams (multifd).
    /// Default 1, as in Nova: under a bandwidth cap extra streams gain nothing, uncapped they need free cores
    /// (BENCHMARKS.md, "Parallel connections": 0.26–0.75× the time on a quiet 2-core machine, no dependable gain on a busy one).
    /// Dropped for a migration that may switch to post-copy (QEMU before 10.1 cannot combine them).
    /// </summary>
    public int LiveMigrationParallelConnections { get; set; } = 1;
    /// <summary>Resumes of a broken post-copy stream in a row before the instance goes to ERROR (no Nova equivalent: Nova gives up at once).</summary>
    public int LiveMigrationPostCopyRecoveryAttempts { get; set; } = 5;
    /// <summary>Seconds without a byte moved before a post-copy stream counts as broken.</summary>
    public int LiveMigrationPostCopyStallSeconds { get; set; } = 10;

    /// <summary>How often ACTIVE instances whose guest died are marked stopped (Nova: sync_power_state_interval, 600 s); also at start.</summary>
    public TimeSpan PowerStateSyncInterval { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Least time between two progress writes of one migration (Nova: live_migration_monitor_interval).</summary>
    public TimeSpan MigrationProgressInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Placement API the agent reports inventory to and moves allocations with.</summary>
    public Uri PlacementUrl { get; set; } = new("http://127.0.0.1:8778/");
}
