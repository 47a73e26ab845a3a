using System.Diagnostics.Metrics;
using Ferry.Core.Domain;

namespace Ferry.Core.Observability;

/// <summary>
/// Outcomes of moves, counted where a migration record reaches its final status (the conductor's store): Ferry's
/// count of every move by type and final status, and KubeVirt's <c>kubevirt_vmi_migration_succeeded</c> /
/// <c>_failed</c> for live migrations (gauges in KubeVirt, so exported as gauges here too; they only ever grow).
/// </summary>
public static class MoveMetrics
{
    private static readonly Counter<long> s_moves = FerryMeters.Meter.CreateCounter<long>(
        "ferry.moves", description: "Moves (live-migration, migration, resize, evacuation) that reached a final status, by type and status.");

    private static readonly UpDownCounter<long> s_succeeded = FerryMeters.Meter.CreateUpDownCounter<long>(
        "kubevirt_vmi_migration_succeeded", description: "Live migrations that completed (KubeVirt's series).");

    private static readonly UpDownCounter<long> s_failed = FerryMeters.Meter.CreateUpDownCounter<long>(
        "kubevirt_vmi_migration_failed", description: "Live migrations that failed or ended in error (KubeVirt's series; cancelled ones are neither).");

    /// <summary>Counts a status change of a migration record if it is the one that makes the record final.</summary>
    public static void StatusChanged(string migrationType, string from, string to)
    {
        if (MigrationStatus.Final.Contains(from) || !MigrationStatus.Final.Contains(to))
        {
            return;
        }
        s_moves.Add(1, new KeyValuePair<string, object?>("type", migrationType), new("status", to));
        if (migrationType != MigrationType.LiveMigration)
        {
            return;
        }
        if (to == MigrationStatus.Completed)
        {
            s_succeeded.Add(1);
        }
        else if (to is MigrationStatus.Failed or MigrationStatus.Error)
        {
            s_failed.Add(1);
        }
    }
}
