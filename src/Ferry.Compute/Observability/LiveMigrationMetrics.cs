using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Ferry.Core.Observability;
using Ferry.Virt;

namespace Ferry.Compute.Observability;

/// <summary>
/// Progress of each running live migration on its source host, under KubeVirt's virt-handler series names
/// (<c>kubevirt_vmi_migration_*</c>, labelled <c>vmi</c> = instance and <c>vmim</c> = migration as KubeVirt's are), plus
/// the expected and actual downtime. A migration's series exist from its first sample until it ends, so the set stays
/// bounded by the migrations running now.
/// </summary>
public static class LiveMigrationMetrics
{
    private static readonly ConcurrentDictionary<string, Series> s_running = new();

    private static readonly Histogram<double> s_downtime = FerryMeters.Meter.CreateHistogram(
        "ferry.live_migration.downtime", "s", "The guest's actual pause at the switch-over of each completed live migration.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });

    static LiveMigrationMetrics()
    {
        Gauge("kubevirt_vmi_migration_data_processed_bytes", "The guest data (memory and disk) processed and migrated so far.", s => s.Processed);
        Gauge("kubevirt_vmi_migration_data_remaining_bytes", "The guest data (memory and disk) still to be migrated.", s => s.Remaining);
        Gauge("kubevirt_vmi_migration_dirty_memory_rate_bytes", "The rate at which the guest dirties memory, in bytes per second.", s => s.DirtyRate);
        Gauge("kubevirt_vmi_migration_memory_transfer_rate_bytes", "The rate at which memory is being transferred, in bytes per second.", s => s.MemoryRate);
        Gauge("kubevirt_vmi_migration_disk_transfer_rate_bytes", "The rate at which disk is being transferred, in bytes per second.", s => s.DiskRate);
        FerryMeters.Meter.CreateObservableGauge("ferry.live_migration.expected_downtime",
            () => Observe(s => s.ExpectedDowntimeMs / 1000.0), "s", "The downtime the hypervisor expects at switch-over with the current dirty rate.");
    }

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

    private static void Gauge(string name, string description, Func<Series, double> value) =>
        FerryMeters.Meter.CreateObservableGauge(name, () => Observe(value), description: description);

    private static IEnumerable<Measurement<double>> Observe(Func<Series, double> value) =>
        [.. s_running.Values.Where(s => s.Sampled).Select(s => new Measurement<double>(value(s), s.Tags))];

    private sealed class Series(string instanceUuid, string migrationUuid) : IDisposable
    {
        private readonly Lock _gate = new();
        private long _at;
        private long _memoryProcessed;
        private long _diskProcessed;

        public KeyValuePair<string, object?>[] Tags { get; } = [new("vmi", instanceUuid), new("vmim", migrationUuid)];
        public bool Sampled { get; private set; }
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
                if (Sampled)
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
                Sampled = true;
            }
        }

        public void Dispose() => s_running.TryRemove(new KeyValuePair<string, Series>(migrationUuid, this));
    }
}
