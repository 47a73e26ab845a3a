namespace Ferry.ControlPlane.Persistence;

/// <summary>
/// Versioned schema of the placement database: resource providers with their inventories, traits and
/// allocations (<see cref="Component"/>), and the custom resource classes and traits (<see cref="CatalogComponent"/>).
/// Scripts are only ever appended.
/// </summary>
public static class PlacementSchema
{
    public const string Component = "placement";

    public const string CatalogComponent = "placement_catalog";

    public static readonly IReadOnlyList<string> Scripts =
    [
        """
        CREATE TABLE resource_providers (
            uuid TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            generation INTEGER NOT NULL);
        CREATE TABLE inventories (
            rp TEXT NOT NULL,
            rc TEXT NOT NULL,
            total INTEGER NOT NULL,
            reserved INTEGER NOT NULL,
            min_unit INTEGER NOT NULL,
            max_unit INTEGER NOT NULL,
            step_size INTEGER NOT NULL,
            allocation_ratio REAL NOT NULL,
            PRIMARY KEY (rp, rc));
        CREATE TABLE traits (
            rp TEXT NOT NULL,
            trait TEXT NOT NULL,
            PRIMARY KEY (rp, trait));
        CREATE TABLE consumers (
            uuid TEXT PRIMARY KEY,
            project_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            generation INTEGER NOT NULL);
        CREATE TABLE allocations (
            consumer TEXT NOT NULL,
            rp TEXT NOT NULL,
            rc TEXT NOT NULL,
            used INTEGER NOT NULL,
            PRIMARY KEY (consumer, rp, rc));
        CREATE INDEX ix_allocations_rp ON allocations (rp);
        """,
        // Bumped after every committed write, with the providers it changed, so a placement replica knows cheaply
        // when its cache is stale and what to reload.
        """
        CREATE TABLE placement_state (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
        INSERT INTO placement_state(id, version) VALUES (1, 0);
        CREATE TABLE placement_changes (version INTEGER NOT NULL, rp TEXT NOT NULL);
        CREATE INDEX ix_placement_changes_version ON placement_changes (version);
        """,
        // Replaces the version row, which every write of every replica updated (so all placement writes queued on one
        // row lock held across a durable commit): each write logs the providers it changed in its own transaction, under
        // its transaction id; a replica reads the log from the oldest transaction still running when it last looked.
        // Rows older than a few minutes are purged; a replica idle longer than that compares every provider instead.
        """
        DROP TABLE placement_changes;
        DROP TABLE placement_state;
        CREATE TABLE placement_log (txid INTEGER NOT NULL, rp TEXT NOT NULL, logged_at INTEGER NOT NULL);
        CREATE INDEX ix_placement_log_txid ON placement_log (txid);
        CREATE INDEX ix_placement_log_logged_at ON placement_log (logged_at);
        """,
    ];

    public static readonly IReadOnlyList<string> CatalogScripts =
    [
        """
        CREATE TABLE custom_resource_classes (name TEXT PRIMARY KEY, created_at TEXT NOT NULL);
        CREATE TABLE custom_traits (name TEXT PRIMARY KEY, created_at TEXT NOT NULL);
        """,
    ];
}
