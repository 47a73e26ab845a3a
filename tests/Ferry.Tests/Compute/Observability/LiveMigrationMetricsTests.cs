using Ferry.Compute.Observability;
using Ferry.Tests.Core.Observability;
using Ferry.Virt;

namespace Ferry.Tests.Compute.Observability;

public sealed class LiveMigrationMetricsTests
{
    private readonly string _instance = Guid.NewGuid().ToString();
    private readonly string _migration = Guid.NewGuid().ToString();

    private (string, string)[] Labels => [("vmi", _instance), ("vmim", _migration)];

    [Fact]
    public void Sample_TrackedMigration_GaugesReportItsLatestSample()
    {
        using var recorder = new FerryMeterRecorder();
        using var tracked = LiveMigrationMetrics.Track(_instance, _migration);

        LiveMigrationMetrics.Sample(_migration, new MigrationProgress
        {
            MemoryTotalBytes = 1000, MemoryProcessedBytes = 600, MemoryRemainingBytes = 400,
            DiskTotalBytes = 500, DiskProcessedBytes = 100, DiskRemainingBytes = 400,
            DirtyRateBytesPerSecond = 77, ExpectedDowntimeMs = 250,
        });
        recorder.Observe();

        Assert.Equal([700.0], recorder.ValuesOf("kubevirt_vmi_migration_data_processed_bytes", Labels));
        Assert.Equal([800.0], recorder.ValuesOf("kubevirt_vmi_migration_data_remaining_bytes", Labels));
        Assert.Equal([77.0], recorder.ValuesOf("kubevirt_vmi_migration_dirty_memory_rate_bytes", Labels));
        Assert.Equal([0.25], recorder.ValuesOf("ferry.live_migration.expected_downtime", Labels));
    }

    [Fact]
    public void Dispose_MigrationEnded_NoSeriesLeft()
    {
        using var recorder = new FerryMeterRecorder();
        var tracked = LiveMigrationMetrics.Track(_instance, _migration);
        LiveMigrationMetrics.Sample(_migration, new MigrationProgress { MemoryTotalBytes = 10, MemoryRemainingBytes = 10 });

        tracked.Dispose();
        recorder.Observe();

        Assert.DoesNotContain(recorder.Measurements, m => Equals(m.Tags.GetValueOrDefault("vmim"), _migration));
    }

    [Fact]
    public void Sample_UntrackedMigration_NoSeries()
    {
        using var recorder = new FerryMeterRecorder();

        LiveMigrationMetrics.Sample(_migration, new MigrationProgress { MemoryTotalBytes = 10, MemoryRemainingBytes = 10 });
        recorder.Observe();

        Assert.DoesNotContain(recorder.Measurements, m => Equals(m.Tags.GetValueOrDefault("vmim"), _migration));
    }

    [Fact]
    public void Sample_FinalSampleWithDowntime_RecordedInSeconds()
    {
        using var recorder = new FerryMeterRecorder();
        using var tracked = LiveMigrationMetrics.Track(_instance, _migration);
        var downtimeMs = 1 + Random.Shared.Next(1_000_000); // tells this test's record from a parallel test's

        LiveMigrationMetrics.Sample(_migration, new MigrationProgress { MemoryTotalBytes = 10, DowntimeMs = downtimeMs, TotalTimeMs = 5000 });

        Assert.Contains(downtimeMs / 1000.0, recorder.ValuesOf("ferry.live_migration.downtime"));
    }
}
