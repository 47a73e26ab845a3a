using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using Ferry.Core.Observability;
using Ferry.Virt;

namespace Ferry.Compute.Observability;

/// <summary>
/// Progress of each running live migration on its source host, under KubeVirt's virt-handler series names
/// (<c>kubevirt_vmi_migration_*</c>, labelled <c>vmi</c> = instance and <c>vmim</c> = migration as KubeVirt's are), plus
/// the expected downtime now and (a histogram on the meter) the actual downtime at switch-over.
/// </summary>
/// <remarks>
/// A migration's series exist from its first sample until its driver run ends. They are rendered here, in Prometheus
/// text, rather than as observable gauges on the meter: OpenTelemetry's SDK keeps a point for every label set a
/// cumulative instrument ever reported and sends every new one to an overflow series after 2,000, so per-migration
/// labels would break after 2,000 migrations in one process. Here the set is the migrations running now, nothing more.
/// </remarks>
public static class LiveMigrationMetrics
{
    private static readonly ConcurrentDictionary<string, Series> s_running = new();

    private static readonly Histogram<double> s_downtime = FerryMeters.Meter.CreateHistogram(
        "ferry.live_migration.downtime", "s", "The guest's actual pause at the switch-over of each completed live migration.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });

    private static readonly (string Name, string Help, Func<Series, double> Value)[] s_families =
    [
        ("kubevirt_vmi_migration_data_processed_bytes", "The guest data (memory and disk) processed and migrated so far.", s => s.Processed),
        ("kubevirt_vmi_migration_data_remaining_bytes", "The guest data (memory and disk) still to be migrated.", s => s.Remaining),
        ("kubevirt_vmi_migration_dirty_memory_rate_bytes", "The rate at which the guest dirties memory, in bytes per second.", s => s.DirtyRate),
        ("kubevirt_vmi_migration_memory_transfer_rate_bytes", "The rate at which memory is being transferred, in bytes per second.", s => s.MemoryRate),
        ("kubevirt_vmi_migration_disk_transfer_rate_bytes", "The rate at which disk is being transferred, in bytes per second.", s => s.DiskRate),
        ("ferry_live_migration_expected_downtime_seconds", "The downtime the hypervisor expects at switch-over with the current dirty rate.", s => s.ExpectedDowntimeMs / 1000.0),
    ];

    /// <summary>The names of the per-migration series (what <see cref="WritePrometheus"/> writes).</summary>
    public static IEnumerable<string> SeriesNames => s_families.Select(f => f.Name);

    /// <summary>Starts a migration's series; disposing the result removes them (the migration ended, however it ended).</summary>
    public static IDisposable Track(string instanceUuid, string migrationUuid)
    {
        var series = new Series(instanceUuid, migrationUuid);
        s_running[migrationUuid] = series;
        return series;
    }

    /// <summary>Takes one monitor sample of a tracked migration; rates come from the change since the previous sample.</summary>
    public static void Sample(string migrationUuid, MigrationProgress progress)
    {
        if (s_running.TryGetValue(migrationUuid, out var series))
        {
            series.Update(progress);
        }
        if (progress.DowntimeMs is { } downtime)
        {
            s_downtime.Record(downtime / 1000.0);
        }
    }

    /// <summary>Writes the gauge families of the running migrations in Prometheus text format (also valid OpenMetrics).</summary>
    public static void WritePrometheus(StringBuilder text)
    {
        var running = s_running.Values.Select(s => s.Snapshot()).OfType<Snapshot>().ToList();
        foreach (var (name, help, value) in s_families)
        {
            text.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
            text.Append("# TYPE ").Append(name).Append(" gauge\n");
            foreach (var s in running)
            {
                // UUIDs need no escaping in a label value.
                text.Append(name).Append("{vmi=\"").Append(s.Instance).Append("\",vmim=\"").Append(s.Migration).Append("\"} ")
                    .Append(value(s.Values).ToString("R", CultureInfo.InvariantCulture)).Append('\n');
            }
        }
    }

    private sealed record Snapshot(string Instance, string Migration, Series Values);

    private sealed class Series(string instanceUuid, string migrationUuid) : IDisposable
    {
        private readonly Lock _gate = new();
        private long _at;
        private long _memoryProcessed;
        private long _diskProcessed;
        private bool _sampled;

        public double Processed { get; private set; }
        public double Remaining { get; private set; }
        public double DirtyRate { get; private set; }
        public double MemoryRate { get; private set; }
        public double DiskRate { get; private set; }
        public double ExpectedDowntimeMs { get; private set; }

        public void Update(MigrationProgress p)
        {
            var now = Stopwatch.GetTimestamp();
            lock (_gate)
            {
                if (_sampled)
                {
                    var seconds = Stopwatch.GetElapsedTime(_at, now).TotalSeconds;
                    if (seconds > 0)
                    {
                        MemoryRate = Math.Max(0, p.MemoryProcessedBytes - _memoryProcessed) / seconds;
                        DiskRate = Math.Max(0, p.DiskProcessedBytes - _diskProcessed) / seconds;
                    }
                }
                _at = now;
                _memoryProcessed = p.MemoryProcessedBytes;
                _diskProcessed = p.DiskProcessedBytes;
                Processed = p.MemoryProcessedBytes + p.DiskProcessedBytes;
                Remaining = p.MemoryRemainingBytes + p.DiskRemainingBytes;
                DirtyRate = p.DirtyRateBytesPerSecond;
                ExpectedDowntimeMs = p.ExpectedDowntimeMs;
                _sampled = true;
            }
        }

        /// <summary>A consistent copy of the latest sample, or null before the first one.</summary>
        public Snapshot? Snapshot()
        {
            lock (_gate)
            {
                if (!_sampled)
                {
                    return null;
                }
                var copy = new Series(instanceUuid, migrationUuid)
                {
                    Processed = Processed, Remaining = Remaining, DirtyRate = DirtyRate,
                    MemoryRate = MemoryRate, DiskRate = DiskRate, ExpectedDowntimeMs = ExpectedDowntimeMs,
                };
                return new Snapshot(instanceUuid, migrationUuid, copy);
            }
        }

        public void Dispose() => s_running.TryRemove(new KeyValuePair<string, Series>(migrationUuid, this));
    }
}
