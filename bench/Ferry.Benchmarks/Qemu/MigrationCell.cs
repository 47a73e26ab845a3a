namespace Ferry.Benchmarks.Qemu;

/// <summary>What a cell allows once pre-copy alone cannot finish.</summary>
internal enum Escalation
{
    /// <summary>Plain pre-copy; the completion timeout aborts.</summary>
    None,
    /// <summary>Auto-converge permitted; on the completion timeout the driver forces completion (pauses the guest).</summary>
    AutoConverge,
    /// <summary>Post-copy permitted; on the completion timeout the driver forces completion (switches to post-copy).</summary>
    PostCopy,
}

/// <summary>One cell of the grid: guest RAM, dirty rate as a fraction of the bandwidth cap, and the escalation allowed.</summary>
internal sealed record MigrationCell(int RamMib, double DirtyFraction, Escalation Escalation)
{
    public string DirtyLabel => $"{DirtyFraction * 100:0}%";

    public string PolicyLabel => Escalation switch
    {
        Escalation.AutoConverge => "auto-converge",
        Escalation.PostCopy => "post-copy",
        _ => "pre-copy",
    };

    public string Key => $"{RamMib}M-{DirtyFraction * 100:0}-{PolicyLabel}";
}

/// <summary>The measured outcome of one cell. Times in ms, NaN where not measured.</summary>
internal sealed record CellResult
{
    public required MigrationCell Cell { get; init; }
    public required double BandwidthMiBps { get; init; }
    public required int DowntimeLimitMs { get; init; }
    /// <summary>The rate the guest was asked for, after its rounding to whole pages per tick.</summary>
    public double NominalDirtyMiBps { get; init; }
    /// <summary>The rate the guest kept up before the migration (counter lines over wall time).</summary>
    public double MeasuredDirtyMiBps { get; init; } = double.NaN;
    /// <summary>The rate it kept up while the migration ran (CPU contention with the migration thread under TCG).</summary>
    public double DirtyDuringMiBps { get; init; } = double.NaN;
    /// <summary>completed, failed, cancelled, timed out, or "error: …".</summary>
    public required string Outcome { get; init; }
    public bool Completed => Outcome == "completed";
    /// <summary>How it finished: pre-copy, auto-converge (throttle %), post-copy, paused.</summary>
    public string Mode { get; init; } = "—";
    public double TotalMs { get; init; } = double.NaN;
    public double DowntimeMs { get; init; } = double.NaN;
    public double TransferredBytes { get; init; } = double.NaN;
    /// <summary>Where total time and downtime came from: the driver's final sample, or query-migrate on the source.</summary>
    public string Source { get; init; } = "—";
    /// <summary>Null when not checked (the migration did not complete).</summary>
    public bool? GuestContinues { get; init; }
    public string Note { get; init; } = "";

    /// <summary>RAM ÷ bandwidth: every non-zero page crosses the wire once (the guest fills its RAM at boot).</summary>
    public double LowerBoundMs => Cell.RamMib / BandwidthMiBps * 1000;

    public double Ratio => TotalMs / LowerBoundMs;

    /// <summary>The 1.3× target applies only where the dirty rate is under the bandwidth.</summary>
    public bool? RatioTargetMet => Cell.DirtyFraction < 1 ? Completed && Ratio <= 1.3 : null;

    public bool? DowntimeTargetMet => Completed ? DowntimeMs <= DowntimeLimitMs : null;
}
