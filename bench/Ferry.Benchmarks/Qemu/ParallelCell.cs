using System.Globalization;

namespace Ferry.Benchmarks.Qemu;

/// <summary>One cell of the parallel-connections grid: guest RAM, bandwidth cap (0 = unlimited) and connections (1 = no multifd).</summary>
internal sealed record ParallelCell(int RamMib, long BandwidthMiBps, int Connections)
{
    public string BandwidthLabel => BandwidthMiBps > 0 ? $"{BandwidthMiBps.ToString(CultureInfo.InvariantCulture)} MiB/s" : "unlimited";

    public string Key => $"{RamMib.ToString(CultureInfo.InvariantCulture)}M-{(BandwidthMiBps > 0 ? BandwidthMiBps.ToString(CultureInfo.InvariantCulture) : "unlimited")}-x{Connections.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>The cell of the same RAM and bandwidth over one connection, which this one is compared with.</summary>
    public ParallelCell Baseline => this with { Connections = 1 };
}

/// <summary>One measured migration of a <see cref="ParallelCell"/>. Times in ms, NaN where not measured.</summary>
internal sealed record ParallelResult
{
    public required ParallelCell Cell { get; init; }
    /// <summary>1-based, when the grid runs more than once (<c>--repeat</c>).</summary>
    public int Round { get; init; } = 1;
    /// <summary>completed, failed, cancelled, timed out, or "error: …".</summary>
    public required string Outcome { get; init; }
    public bool Completed => Outcome == "completed";
    public double TotalMs { get; init; } = double.NaN;
    public double DowntimeMs { get; init; } = double.NaN;
    /// <summary>query-migrate's ram.transferred (QEMU 7.2 counts the multifd channels in it too).</summary>
    public double TransferredBytes { get; init; } = double.NaN;
    /// <summary>query-migrate's ram.multifd-bytes: above 0 proves the channels carried the pages.</summary>
    public double MultifdBytes { get; init; } = double.NaN;
    /// <summary>Where total time and downtime came from: the driver's final sample, or query-migrate on the source.</summary>
    public string Source { get; init; } = "—";
    /// <summary>Null when not checked (the migration did not complete).</summary>
    public bool? GuestContinues { get; init; }
    public string Note { get; init; } = "";
}
