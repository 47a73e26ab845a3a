using System.Globalization;
using System.Text;
using System.Text.Json;
using static Ferry.Benchmarks.Qemu.ReportCells;

namespace Ferry.Benchmarks.Qemu;

/// <summary>
/// The two cases of <see cref="VolumeMigrationBench"/> as a markdown table or JSON: per case the medians (nearest rank) of its
/// completed rounds, then the local-disk guest's sent bytes and total time over the volume-backed guest's.
/// </summary>
internal sealed class VolumeMigrationReport(IReadOnlyList<VolumeMigrationResult> results, int dataMib, string loadAtStart, string loadAtEnd, TimeSpan elapsed, string qemuVersion, int repeat)
{
    private sealed record Row(RootDiskKind Kind, IReadOnlyList<VolumeMigrationResult> Runs)
    {
        public IReadOnlyList<VolumeMigrationResult> Done => [.. Runs.Where(r => r.Completed)];
        public string Outcome => Done.Count == Runs.Count ? "completed" : string.Join("; ", Runs.Where(r => !r.Completed).Select(r => r.Outcome).Distinct());
        public double TotalMs => Median(Done.Select(r => r.TotalMs));
        public double QemuTotalMs => Median(Done.Select(r => r.QemuTotalMs));
        public double DowntimeMs => Median(Done.Select(r => r.DowntimeMs));
        public double RamBytes => Median(Done.Select(r => r.RamBytes));
        public double DiskBytes => Median(Done.Select(r => r.DiskBytes));
        public double SentBytes => Median(Done.Select(r => r.SentBytes));
        public bool? GuestContinues => Done.Count == 0 ? null : Done.All(r => r.GuestContinues == true);
        public bool? DataReadsBack => Done.Count == 0 ? null : Done.All(r => r.DataReadsBack == true);
        public string Notes => string.Join("; ", Runs.Select(r => r.Note).Where(n => n.Length > 0).Distinct());
    }

    private List<Row> Rows() => [.. results.GroupBy(r => r.Kind).OrderBy(g => g.Key).Select(g => new Row(g.Key, [.. g]))];

    /// <summary>The local-disk row's figure over the volume row's; NaN when either is missing.</summary>
    private static double Ratio(List<Row> rows, Func<Row, double> figure) =>
        rows.FirstOrDefault(r => r.Kind == RootDiskKind.LocalDisk) is { } local && rows.FirstOrDefault(r => r.Kind == RootDiskKind.Volume) is { } volume
            ? figure(local) / figure(volume)
            : double.NaN;

    public string ToMarkdown()
    {
        var rows = Rows();
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"QEMU live migration, volume-backed vs local disk, through the Ferry QEMU driver, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, {qemuVersion}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"{VolumeMigrationBench.RamMib} MiB idle guest (region written at boot), {VolumeMigrationBench.DiskGb} GiB root disk with {dataMib} MiB written before each move; bandwidth cap {VolumeMigrationBench.BandwidthMiBps} MiB/s{(repeat > 1 ? $"; medians of {repeat} rounds, the cases alternating" : "")}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"load average (1/5/15 min): {loadAtStart} at start, {loadAtEnd} at end; run took {elapsed.TotalSeconds:0} s");
        sb.AppendLine();
        sb.AppendLine("| root disk | migration | outcome | total (min–max) | QEMU total-time (RAM phase) | downtime | RAM sent | disk sent | sent | guest continues on dest | data reads back on dest |");
        sb.AppendLine("|---|---|---|---:|---:|---:|---:|---:|---:|---|---|");
        foreach (var row in rows)
        {
            var totals = row.Done.Count > 1 ? $" ({Ms(row.Done.Min(r => r.TotalMs))}–{Ms(row.Done.Max(r => r.TotalMs))})" : "";
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"| {Label(row.Kind)} | {Migration(row.Kind)} | {row.Outcome} | {Ms(row.TotalMs)}{totals} | {Ms(row.QemuTotalMs)} | {Ms(row.DowntimeMs)} | {Mib(row.RamBytes)} | {Mib(row.DiskBytes)} | {Mib(row.SentBytes)} | {YesNo(row.GuestContinues)} | {YesNo(row.DataReadsBack)}{(row.Notes.Length > 0 ? " (" + row.Notes + ")" : "")} |");
        }
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"local disk ÷ volume-backed: sent {Times(Ratio(rows, r => r.SentBytes))}, total {Times(Ratio(rows, r => r.TotalMs))}, downtime {Times(Ratio(rows, r => r.DowntimeMs))}");
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
            w.WriteNumber("ram_mib", VolumeMigrationBench.RamMib);
            w.WriteNumber("disk_gib", VolumeMigrationBench.DiskGb);
            w.WriteNumber("data_mib", dataMib);
            w.WriteNumber("bandwidth_mibps", VolumeMigrationBench.BandwidthMiBps);
            w.WriteNumber("rounds", repeat);
            w.WriteString("load_average_start", loadAtStart);
            w.WriteString("load_average_end", loadAtEnd);
            w.WriteNumber("elapsed_s", Math.Round(elapsed.TotalSeconds, 1));
            Number(w, "local_over_volume_sent", Ratio(rows, r => r.SentBytes));
            Number(w, "local_over_volume_total", Ratio(rows, r => r.TotalMs));
            w.WriteStartArray("cases");
            foreach (var row in rows)
            {
                w.WriteStartObject();
                w.WriteString("root_disk", row.Kind == RootDiskKind.Volume ? "volume" : "local");
                w.WriteBoolean("block_migration", row.Kind == RootDiskKind.LocalDisk);
                w.WriteString("outcome", row.Outcome);
                w.WriteNumber("completed_rounds", row.Done.Count);
                Number(w, "total_ms", row.TotalMs);
                Number(w, "qemu_total_ms", row.QemuTotalMs);
                Number(w, "downtime_ms", row.DowntimeMs);
                Number(w, "ram_bytes", row.RamBytes);
                Number(w, "disk_bytes", row.DiskBytes);
                Number(w, "sent_bytes", row.SentBytes);
                Bool(w, "guest_continues", row.GuestContinues);
                Bool(w, "data_reads_back", row.DataReadsBack);
                w.WriteStartArray("runs");
                foreach (var run in row.Runs)
                {
                    w.WriteStartObject();
                    w.WriteNumber("round", run.Round);
                    w.WriteString("outcome", run.Outcome);
                    Number(w, "total_ms", run.TotalMs);
                    Number(w, "qemu_total_ms", run.QemuTotalMs);
                    Number(w, "downtime_ms", run.DowntimeMs);
                    Number(w, "ram_bytes", run.RamBytes);
                    Number(w, "disk_bytes", run.DiskBytes);
                    Bool(w, "guest_continues", run.GuestContinues);
                    Bool(w, "data_reads_back", run.DataReadsBack);
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

    private static string Label(RootDiskKind kind) => kind == RootDiskKind.Volume ? "volume (NBD, boot index 0)" : "local qcow2 overlay";

    private static string Migration(RootDiskKind kind) => kind == RootDiskKind.Volume ? "RAM only" : "block migration";
}
