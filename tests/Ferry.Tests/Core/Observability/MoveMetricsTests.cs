using Ferry.Core.Domain;
using Ferry.Core.Observability;

namespace Ferry.Tests.Core.Observability;

/// <summary>
/// The move counters carry no per-instance label (the series set stays bounded): tests tell their own measurements by
/// a type label no flow uses; the exact KubeVirt counts are checked by the functional test that runs alone.
/// </summary>
public sealed class MoveMetricsTests
{
    [Theory]
    [InlineData(MigrationStatus.Running, MigrationStatus.Completed, "kubevirt_vmi_migration_succeeded")]
    [InlineData(MigrationStatus.Running, MigrationStatus.Failed, "kubevirt_vmi_migration_failed")]
    [InlineData(MigrationStatus.Preparing, MigrationStatus.Error, "kubevirt_vmi_migration_failed")]
    public void StatusChanged_LiveMigrationBecomesFinal_CountedOnceAsMoveAndKubeVirtOutcome(string from, string to, string kubevirt)
    {
        using var recorder = new FerryMeterRecorder();
        MoveMetrics.StatusChanged(MigrationType.LiveMigration, from, to);

        Assert.Contains(recorder.Measurements, m => m.Instrument == "ferry.moves" && Equals(m.Tags["type"], MigrationType.LiveMigration) && Equals(m.Tags["status"], to));
        Assert.Contains(recorder.Measurements, m => m.Instrument == kubevirt && m.Value == 1);
    }

    [Theory]
    [InlineData(MigrationStatus.Running, MigrationStatus.Running)]
    [InlineData(MigrationStatus.Queued, MigrationStatus.Preparing)]
    [InlineData(MigrationStatus.Completed, MigrationStatus.Completed)]
    [InlineData(MigrationStatus.Done, MigrationStatus.Completed)]
    public void StatusChanged_NotBecomingFinal_NotCounted(string from, string to)
    {
        using var recorder = new FerryMeterRecorder();

        MoveMetrics.StatusChanged("metrics-test-type", from, to);

        Assert.DoesNotContain(recorder.Measurements, m => m.Instrument == "ferry.moves" && Equals(m.Tags.GetValueOrDefault("type"), "metrics-test-type"));
    }

    [Fact]
    public void StatusChanged_ResizeConfirmed_CountedAsMoveNotAsKubeVirtOutcome()
    {
        using var recorder = new FerryMeterRecorder();

        MoveMetrics.StatusChanged("metrics-test-resize", MigrationStatus.Confirming, MigrationStatus.Confirmed);

        Assert.Single(recorder.Measurements, m => m.Instrument == "ferry.moves" && Equals(m.Tags["type"], "metrics-test-resize") && Equals(m.Tags["status"], MigrationStatus.Confirmed));
    }
}
