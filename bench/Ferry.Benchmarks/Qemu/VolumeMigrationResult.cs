namespace Ferry.Benchmarks.Qemu;

/// <summary>Where the root disk of a <see cref="VolumeMigrationBench"/> guest lives, which decides what its live migration copies.</summary>
internal enum RootDiskKind
{
    /// <summary>Booted from a volume: the root disk is the storage daemon's NBD export, opened by both hosts; only RAM moves.</summary>
    Volume,

    /// <summary>A local qcow2 overlay, block-migrated: the source mirrors it into the destination's NBD export, then RAM moves.</summary>
    LocalDisk,
}

/// <summary>One measured live migration of a <see cref="VolumeMigrationBench"/> case. Times in ms, bytes as counted by QEMU; NaN where not measured.</summary>
internal sealed record VolumeMigrationResult
{
    public required RootDiskKind Kind { get; init; }

    /// <summary>1-based.</summary>
    public int Round { get; init; } = 1;

    /// <summary>completed, failed, cancelled, timed out, or "error: …".</summary>
    public required string Outcome { get; init; }

    public bool Completed => Outcome == "completed";

    /// <summary>
    /// LiveMigrateAsync from call to return. For a block migration this includes the mirror's bulk copy of the disk, which
    /// runs before QEMU's <c>migrate</c> and so is not in <see cref="QemuTotalMs"/>.
    /// </summary>
    public double TotalMs { get; init; } = double.NaN;

    /// <summary>query-migrate's total-time: from <c>migrate</c> to completion, the RAM phase.</summary>
    public double QemuTotalMs { get; init; } = double.NaN;

    public double DowntimeMs { get; init; } = double.NaN;

    /// <summary>query-migrate's ram.transferred.</summary>
    public double RamBytes { get; init; } = double.NaN;

    /// <summary>The block mirror job's progress (its offset) when it concluded: the disk bytes copied; 0 when no mirror ran.</summary>
    public double DiskBytes { get; init; } = double.NaN;

    public double SentBytes => RamBytes + DiskBytes;

    /// <summary>Null when not checked (the migration did not complete).</summary>
    public bool? GuestContinues { get; init; }

    /// <summary>The pattern written before the move reads back on the destination (qemu-io read -P); null when not checked.</summary>
    public bool? DataReadsBack { get; init; }

    public string Note { get; init; } = "";
}
