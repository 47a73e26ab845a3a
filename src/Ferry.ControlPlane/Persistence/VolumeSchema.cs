namespace Ferry.ControlPlane.Persistence;

/// <summary>
/// Versioned schema of the volume service (the Cinder v3 subset): volumes and their attachments. Each row keeps its record
/// as JSON beside the columns that are looked up (project, name, status, the volume an attachment belongs to, its
/// instance); a volume's <c>revision</c> is what every state change compares and bumps, so two API replicas cannot both
/// move one volume out of the same state. Scripts are only ever appended.
/// </summary>
public static class VolumeSchema
{
    public const string Component = "volume";

    public static readonly IReadOnlyList<string> Scripts =
    [
        """
        CREATE TABLE volumes (
            id TEXT PRIMARY KEY, project_id TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL, revision INTEGER NOT NULL,
            data TEXT NOT NULL);
        CREATE INDEX ix_volumes_project ON volumes(project_id);
        CREATE TABLE volume_attachments (
            id TEXT PRIMARY KEY, volume_id TEXT NOT NULL, project_id TEXT NOT NULL, instance_uuid TEXT NOT NULL, attach_status TEXT NOT NULL,
            data TEXT NOT NULL);
        CREATE INDEX ix_volume_attachments_volume ON volume_attachments(volume_id);
        CREATE INDEX ix_volume_attachments_instance ON volume_attachments(instance_uuid);
        """,
    ];
}
