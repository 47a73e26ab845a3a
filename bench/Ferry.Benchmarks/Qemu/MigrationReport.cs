using System.Globalization;
using System.Text;
using System.Text.Json;
using static Ferry.Benchmarks.Qemu.ReportCells;

namespace Ferry.Benchmarks.Qemu;

/// <summary>The cells of one run as a markdown table (for BENCHMARKS.md) or JSON, with the issue's three targets.</summary>
internal sealed class MigrationReport(IReadOnlyList<CellResult> results, string loadAtStart, string loadAtEnd, TimeSpan elapsed, string qemuVersion, bool quick)
{
    private IEnumerable<CellResult> UnderBandwidth => results.Where(r => r.RatioTargetMet is not null);

    private IEnumerable<CellResult> Completed => results.Where(r => r.Completed);

    private IEnumerable<CellResult> NonConverging => results.Where(r => r.Cell.DirtyFraction >= 1);

    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"QEMU live migration through the Ferry QEMU driver, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, {qemuVersion}{(quick ? ", --quick" : "")}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"bandwidth cap {QemuMigrationBench.BandwidthMiBps} MiB/s, downtime limit {QemuMigrationBench.DowntimeLimitMs} ms, completion timeout {QemuMigrationBench.CompletionTimeoutTimesLowerBound}× the lower bound, then force-complete where an escalation is permitted");
        sb.AppendLine(CultureInfo.InvariantCulture, $"load average (1/5/15 min): {loadAtStart} at start, {loadAtEnd} at end; run took {elapsed.TotalSeconds:0} s");
        sb.AppendLine();
        sb.AppendLine("| RAM | dirty (of bw) | guest dirty MiB/s: asked / before / during | policy | outcome | finished by | total | lower bound | ratio | downtime | sent | guest continues on dest |");
        sb.AppendLine("|---:|---:|---|---|---|---|---:|---:|---:|---:|---:|---|");
        foreach (var r in results)
        {
            var continues = r.GuestContinues switch { true => "yes", false => "**NO**", null => "—" };
            var ratio = double.IsNaN(r.Ratio) ? "—" : $"{r.Ratio:0.00}×" + (r.RatioTargetMet == false ? " ✗" : "");
            var downtime = double.IsNaN(r.DowntimeMs) ? "—" : $"{r.DowntimeMs:0} ms" + (r.DowntimeTargetMet == false ? " ✗" : "");
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"| {r.Cell.RamMib} MiB | {r.Cell.DirtyLabel} | {F(r.NominalDirtyMiBps)} / {F(r.MeasuredDirtyMiBps)} / {F(r.DirtyDuringMiBps)} | {r.Cell.PolicyLabel} | {r.Outcome} | {r.Mode} | {Seconds(r.TotalMs)} | {Seconds(r.LowerBoundMs)} | {ratio} | {downtime} | {Mib(r.TransferredBytes)} | {continues}{(r.Note.Length > 0 ? " (" + r.Note + ")" : "")} |");
        }
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"- total ≤ 1.3× RAM ÷ bandwidth while the dirty rate is under the bandwidth: {Count(UnderBandwidth, r => r.RatioTargetMet == true)}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- downtime ≤ {QemuMigrationBench.DowntimeLimitMs} ms: {Count(Completed, r => r.DowntimeTargetMet == true)} completed migrations");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- completion at 150% of the bandwidth with auto-converge or post-copy permitted: {Count(NonConverging, r => r.Completed)}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- guest continues on the destination (counter goes on, checksums match, no `ferry-guest corrupt`): {Count(Completed, r => r.GuestContinues == true)} completed migrations");
        return sb.ToString();
    }

    public string ToJson()
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("date", DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture));
            w.WriteNumber("cores", Environment.ProcessorCount);
            w.WriteString("qemu", qemuVersion);
            w.WriteBoolean("quick", quick);
            w.WriteNumber("bandwidth_mibps", QemuMigrationBench.BandwidthMiBps);
            w.WriteNumber("downtime_limit_ms", QemuMigrationBench.DowntimeLimitMs);
            w.WriteNumber("completion_timeout_x_lower_bound", QemuMigrationBench.CompletionTimeoutTimesLowerBound);
            w.WriteString("load_average_start", loadAtStart);
            w.WriteString("load_average_end", loadAtEnd);
            w.WriteNumber("elapsed_s", Math.Round(elapsed.TotalSeconds, 1));
            w.WriteStartArray("cells");
            foreach (var r in results)
            {
                w.WriteStartObject();
                w.WriteNumber("ram_mib", r.Cell.RamMib);
                w.WriteNumber("dirty_fraction_of_bandwidth", r.Cell.DirtyFraction);
                w.WriteString("policy", r.Cell.PolicyLabel);
                Number(w, "dirty_mibps_asked", r.NominalDirtyMiBps);
                Number(w, "dirty_mibps_measured_before", r.MeasuredDirtyMiBps);
                Number(w, "dirty_mibps_measured_during", r.DirtyDuringMiBps);
                w.WriteString("outcome", r.Outcome);
                w.WriteBoolean("completed", r.Completed);
                w.WriteString("finished_by", r.Mode);
                Number(w, "total_ms", r.TotalMs);
                Number(w, "lower_bound_ms", r.LowerBoundMs);
                Number(w, "ratio_to_lower_bound", r.Ratio);
                Number(w, "downtime_ms", r.DowntimeMs);
                Number(w, "transferred_bytes", r.TransferredBytes);
                w.WriteString("figures_from", r.Source);
                if (r.GuestContinues is { } c)
                {
                    w.WriteBoolean("guest_continues", c);
                }
                else
                {
                    w.WriteNull("guest_continues");
                }
                Bool(w, "ratio_target_met", r.RatioTargetMet);
                Bool(w, "downtime_target_met", r.DowntimeTargetMet);
                w.WriteString("note", r.Note);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray()) + Environment.NewLine;
    }

    private static string Count(IEnumerable<CellResult> cells, Func<CellResult, bool> met)
    {
        var list = cells.ToList();
        var missed = list.Where(c => !met(c)).Select(c => c.Cell.Key).ToList();
        return $"{list.Count - missed.Count}/{list.Count}" + (missed.Count > 0 ? $" (missed: {string.Join(", ", missed)})" : "");
    }

    private static string F(double v) => double.IsNaN(v) ? "—" : v.ToString("0.0", CultureInfo.InvariantCulture);
}
