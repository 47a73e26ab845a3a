using System.Globalization;
using System.Text;
using System.Text.Json;
using static Ferry.Benchmarks.Qemu.ReportCells;

namespace Ferry.Benchmarks.Qemu;

/// <summary>
/// The parallel-connections grid of one run as a markdown table or JSON. With <c>--repeat</c>, a cell's figures are the
/// medians of its completed rounds; each cell's total is compared with the 1-connection cell of the same RAM and bandwidth.
/// </summary>
internal sealed class ParallelReport(IReadOnlyList<ParallelResult> results, string loadAtStart, string loadAtEnd, TimeSpan elapsed, string qemuVersion, int repeat)
{
    private sealed record Row(ParallelCell Cell, IReadOnlyList<ParallelResult> Runs)
    {
        public IReadOnlyList<ParallelResult> Done => [.. Runs.Where(r => r.Completed)];
        public string Outcome => Done.Count == Runs.Count ? "completed" : string.Join("; ", Runs.Where(r => !r.Completed).Select(r => r.Outcome).Distinct());
        public double TotalMs => Median(Done.Select(r => r.TotalMs));
        public double DowntimeMs => Median(Done.Select(r => r.DowntimeMs));
        public double TransferredBytes => Median(Done.Select(r => r.TransferredBytes));
        public double MultifdBytes => Median(Done.Select(r => r.MultifdBytes));
        public bool? GuestContinues => Done.Count == 0 ? null : Done.All(r => r.GuestContinues == true);
        public string Notes => string.Join("; ", Runs.Select(r => r.Note).Where(n => n.Length > 0).Distinct());
    }

    private List<Row> Rows() => [.. results.GroupBy(r => r.Cell).Select(g => new Row(g.Key, [.. g]))];

    private static double RatioToBaseline(Row row, List<Row> rows) =>
        rows.FirstOrDefault(r => r.Cell == row.Cell.Baseline) is { } baseline ? row.TotalMs / baseline.TotalMs : double.NaN;

    public string ToMarkdown()
    {
        var rows = Rows();
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"QEMU live migration over parallel connections (multifd) through the Ferry QEMU driver, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, {qemuVersion}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"idle guest (dirty rate 0), region RAM − {QemuMigrationBench.GuestReservedMib} MiB written once at boot; downtime limit 500 ms in 10 steps (Ferry's defaults); completion timeout {ParallelConnectionsBench.CompletionTimeoutSeconds} s, then abort{(repeat > 1 ? $"; medians of {repeat} rounds" : "")}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"load average (1/5/15 min): {loadAtStart} at start, {loadAtEnd} at end; run took {elapsed.TotalSeconds:0} s");
        sb.AppendLine();
        sb.AppendLine("| RAM | bandwidth | connections | outcome | total (min–max) | vs 1 connection | downtime | sent | via multifd | sent ÷ total | guest continues on dest |");
        sb.AppendLine("|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---|");
        foreach (var row in rows)
        {
            var ratio = RatioToBaseline(row, rows);
            var totals = row.Done.Count > 1 ? $" ({Ms(row.Done.Min(r => r.TotalMs))}–{Ms(row.Done.Max(r => r.TotalMs))})" : "";
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"| {row.Cell.RamMib} MiB | {row.Cell.BandwidthLabel} | {row.Cell.Connections} | {row.Outcome} | {Ms(row.TotalMs)}{totals} | {(double.IsNaN(ratio) ? "—" : ratio.ToString("0.00", CultureInfo.InvariantCulture) + "×")} | {Ms(row.DowntimeMs)} | {Mib(row.TransferredBytes)} | {Mib(row.MultifdBytes)} | {Rate(row.TransferredBytes, row.TotalMs)} | {YesNo(row.GuestContinues)}{(row.Notes.Length > 0 ? " (" + row.Notes + ")" : "")} |");
        }
        return sb.ToString();
    }

    public string ToJson()
    {
        var rows = Rows();
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("date", DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture));
            w.WriteNumber("cores", Environment.ProcessorCount);
            w.WriteString("qemu", qemuVersion);
            w.WriteNumber("rounds", repeat);
            w.WriteNumber("completion_timeout_s", ParallelConnectionsBench.CompletionTimeoutSeconds);
            w.WriteString("load_average_start", loadAtStart);
            w.WriteString("load_average_end", loadAtEnd);
            w.WriteNumber("elapsed_s", Math.Round(elapsed.TotalSeconds, 1));
            w.WriteStartArray("cells");
            foreach (var row in rows)
            {
                w.WriteStartObject();
                w.WriteNumber("ram_mib", row.Cell.RamMib);
                w.WriteNumber("bandwidth_mibps", row.Cell.BandwidthMiBps); // 0 = unlimited
                w.WriteNumber("connections", row.Cell.Connections);
                w.WriteString("outcome", row.Outcome);
                w.WriteNumber("completed_rounds", row.Done.Count);
                Number(w, "total_ms", row.TotalMs);
                Number(w, "ratio_to_1_connection", RatioToBaseline(row, rows));
                Number(w, "downtime_ms", row.DowntimeMs);
                Number(w, "transferred_bytes", row.TransferredBytes);
                Number(w, "multifd_bytes", row.MultifdBytes);
                if (row.GuestContinues is { } c)
                {
                    w.WriteBoolean("guest_continues", c);
                }
                else
                {
                    w.WriteNull("guest_continues");
                }
                w.WriteStartArray("runs");
                foreach (var run in row.Runs)
                {
                    w.WriteStartObject();
                    w.WriteNumber("round", run.Round);
                    w.WriteString("outcome", run.Outcome);
                    Number(w, "total_ms", run.TotalMs);
                    Number(w, "downtime_ms", run.DowntimeMs);
                    Number(w, "transferred_bytes", run.TransferredBytes);
                    Number(w, "multifd_bytes", run.MultifdBytes);
                    w.WriteString("figures_from", run.Source);
                    w.WriteString("note", run.Note);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray()) + Environment.NewLine;
    }

    private static string Rate(double bytes, double ms) => double.IsNaN(bytes) || double.IsNaN(ms) || ms <= 0
        ? "—"
        : (bytes / (1 << 20) / (ms / 1000)).ToString("0", CultureInfo.InvariantCulture) + " MiB/s";
}
