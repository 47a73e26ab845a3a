using System.Globalization;
using System.Text;
using Ferry.Compute.Observability;
using Ferry.Tests.Core.Observability;
using Ferry.Virt;

namespace Ferry.Tests.Compute.Observability;

public sealed class LiveMigrationMetricsTests
{
    private readonly string _instance = Guid.NewGuid().ToString();
    private readonly string _migration = Guid.NewGuid().ToString();

    /// <summary>This test's migration's value of one family in the rendered text; null when it has no sample line.</summary>
    private double? ValueOf(string text, string name)
    {
        var prefix = $"{name}{{vmi=\"{_instance}\",vmim=\"{_migration}\"}} ";
        var line = text.Split('\n').SingleOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
        return line is null ? null : double.Parse(line[prefix.Length..], CultureInfo.InvariantCulture);
    }

    private static string Render()
    {
        var text = new StringBuilder();
        LiveMigrationMetrics.WritePrometheus(text);
        return text.ToString();
    }

    [Fact]
    public void WritePrometheus_TrackedMigration_GaugesOfItsLatestSample()
    {
        using var tracked = LiveMigrationMetrics.Track(_instance, _migration);

        LiveMigrationMetrics.Sample(_migration, new MigrationProgress
        {
            MemoryTotalBytes = 1000, MemoryProcessedBytes = 600, MemoryRemainingBytes = 400,
            DiskTotalBytes = 500, DiskProcessedBytes = 100, DiskRemainingBytes = 400,
            DirtyRateBytesPerSecond = 77, ExpectedDowntimeMs = 250,
        });
        var text = Render();

        Assert.Equal(700, ValueOf(text, "kubevirt_vmi_migration_data_processed_bytes"));
        Assert.Equal(800, ValueOf(text, "kubevirt_vmi_migration_data_remaining_bytes"));
        Assert.Equal(77, ValueOf(text, "kubevirt_vmi_migration_dirty_memory_rate_bytes"));
        Assert.Equal(0, ValueOf(text, "kubevirt_vmi_migration_memory_transfer_rate_bytes")); // one sample: no rate yet
        Assert.Equal(0.25, ValueOf(text, "ferry_live_migration_expected_downtime_seconds"));
        Assert.All(LiveMigrationMetrics.SeriesNames, name => Assert.Contains($"# TYPE {name} gauge\n", text, StringComparison.Ordinal));
    }

    [Fact]
    public void WritePrometheus_SecondSample_TransferRatesFromTheChange()
    {
        using var tracked = LiveMigrationMetrics.Track(_instance, _migration);
        LiveMigrationMetrics.Sample(_migration, new MigrationProgress { MemoryTotalBytes = 1000, MemoryProcessedBytes = 100 });

        LiveMigrationMetrics.Sample(_migration, new MigrationProgress { MemoryTotalBytes = 1000, MemoryProcessedBytes = 900, DiskProcessedBytes = 50 });
        var text = Render();

        Assert.True(ValueOf(text, "kubevirt_vmi_migration_memory_transfer_rate_bytes") > 0);
        Assert.True(ValueOf(text, "kubevirt_vmi_migration_disk_transfer_rate_bytes") > 0);
    }

    [Fact]
    public void Dispose_MigrationEnded_NoSeriesLeft()
    {
        var tracked = LiveMigrationMetrics.Track(_instance, _migration);
        LiveMigrationMetrics.Sample(_migration, new MigrationProgress { MemoryTotalBytes = 10, MemoryRemainingBytes = 10 });

        tracked.Dispose();

        Assert.DoesNotContain(_migration, Render(), StringComparison.Ordinal);
    }

    [Fact]
    public void WritePrometheus_AfterMoreMigrationsThanOpenTelemetrysCardinalityLimit_NewOneStillLabelled()
    {
        for (var i = 0; i < 2100; i++)
        {
            var migration = Guid.NewGuid().ToString();
            using var ended = LiveMigrationMetrics.Track(_instance, migration);
            LiveMigrationMetrics.Sample(migration, new MigrationProgress { MemoryTotalBytes = 10, MemoryRemainingBytes = 10 });
            Render();
        }
        using var tracked = LiveMigrationMetrics.Track(_instance, _migration);

        LiveMigrationMetrics.Sample(_migration, new MigrationProgress { MemoryTotalBytes = 10, MemoryRemainingBytes = 7 });

        Assert.Equal(7, ValueOf(Render(), "kubevirt_vmi_migration_data_remaining_bytes"));
    }

    [Fact]
    public void Sample_UntrackedMigration_NoSeries()
    {
        LiveMigrationMetrics.Sample(_migration, new MigrationProgress { MemoryTotalBytes = 10, MemoryRemainingBytes = 10 });

        Assert.DoesNotContain(_migration, Render(), StringComparison.Ordinal);
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
