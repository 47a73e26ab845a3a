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
    ];

    public static readonly IReadOnlyList<string> CatalogScripts =
    [
        """
        CREATE TABLE custom_resource_classes (name TEXT PRIMARY KEY, created_at TEXT NOT NULL);
        CREATE TABLE custom_traits (name TEXT PRIMARY KEY, created_at TEXT NOT NULL);
        """,
    ];
}
