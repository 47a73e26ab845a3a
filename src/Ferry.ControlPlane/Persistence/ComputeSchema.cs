namespace Ferry.ControlPlane.Persistence;

/// <summary>
/// Versioned schema of the compute database (Nova's main db). Scripts are only ever appended; each
/// row keeps the queried columns plus the whole record as JSON in <c>data</c>.
/// </summary>
public static class ComputeSchema
{
    public const string Component = "compute";

    public static readonly IReadOnlyList<string> Scripts =
    [
        """
        CREATE TABLE flavors (internal_id INTEGER PRIMARY KEY, flavorid TEXT NOT NULL UNIQUE, name TEXT NOT NULL UNIQUE, data TEXT NOT NULL);
        CREATE TABLE images (id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at TEXT NOT NULL, data TEXT NOT NULL);
        CREATE TABLE instances (
            id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL UNIQUE, project_id TEXT NOT NULL,
            host TEXT, vm_state TEXT NOT NULL, task_state TEXT, deleted INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL, data TEXT NOT NULL);
        CREATE INDEX ix_instances_host ON instances(host, deleted);
        CREATE TABLE services (
            id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL UNIQUE, host TEXT NOT NULL, "binary" TEXT NOT NULL,
            data TEXT NOT NULL, UNIQUE(host, "binary"));
        CREATE TABLE compute_nodes (id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL UNIQUE, host TEXT NOT NULL UNIQUE, data TEXT NOT NULL);
        CREATE TABLE migrations (
            id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL UNIQUE, instance_uuid TEXT NOT NULL,
            source_compute TEXT, dest_compute TEXT, status TEXT NOT NULL, migration_type TEXT NOT NULL,
            created_at TEXT NOT NULL, data TEXT NOT NULL);
        CREATE INDEX ix_migrations_instance ON migrations(instance_uuid);
        CREATE TABLE instance_actions (
            id INTEGER PRIMARY KEY AUTOINCREMENT, instance_uuid TEXT NOT NULL, request_id TEXT NOT NULL,
            action TEXT NOT NULL, user_id TEXT, project_id TEXT, start_time TEXT NOT NULL, updated_at TEXT,
            message TEXT, UNIQUE(instance_uuid, request_id));
        CREATE TABLE instance_action_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT, action_id INTEGER NOT NULL REFERENCES instance_actions(id),
            event TEXT NOT NULL, start_time TEXT NOT NULL, finish_time TEXT, result TEXT, host TEXT, details TEXT);
        CREATE TABLE instance_faults (
            id INTEGER PRIMARY KEY AUTOINCREMENT, instance_uuid TEXT NOT NULL, code INTEGER NOT NULL,
            message TEXT NOT NULL, details TEXT, host TEXT, created_at TEXT NOT NULL);
        CREATE TABLE server_groups (
            id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL UNIQUE, name TEXT NOT NULL, policy TEXT NOT NULL,
            max_server_per_host INTEGER, project_id TEXT NOT NULL, user_id TEXT NOT NULL, members TEXT NOT NULL);
        """,
        // Key pairs belong to a user, not a project (Nova's API database key_pairs; rows are hard-deleted).
        """
        CREATE TABLE key_pairs (
            id INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,
            fingerprint TEXT NOT NULL, public_key TEXT NOT NULL, created_at TEXT NOT NULL, UNIQUE(user_id, name));
        """,
        // Quota limits set through os-quota-sets (user_id '' = the project's own row) and os-quota-class-sets
        // (Nova's quotas, project_user_quotas and quota_classes tables; a missing row means the default).
        """
        CREATE TABLE quotas (
            id INTEGER PRIMARY KEY AUTOINCREMENT, project_id TEXT NOT NULL, user_id TEXT NOT NULL DEFAULT '',
            resource TEXT NOT NULL, hard_limit INTEGER NOT NULL, UNIQUE(project_id, user_id, resource));
        CREATE TABLE quota_classes (
            id INTEGER PRIMARY KEY AUTOINCREMENT, class_name TEXT NOT NULL, resource TEXT NOT NULL,
            hard_limit INTEGER NOT NULL, UNIQUE(class_name, resource));
        """,
        // An event's traceback: shown to admins as Nova shows its Python traceback, holding Ferry's fault details instead.
        """
        ALTER TABLE instance_action_events ADD COLUMN traceback TEXT;
        """,
        // The build timeout check's query: live BUILD instances by age, without reading every row.
        """
        CREATE INDEX ix_instances_building ON instances(vm_state, created_at) WHERE deleted = 0;
        """,
        // Lists at 100,000 instances: keyset pages in Nova's default order (created_at desc, id desc), alone or by
        // project, host or vm_state, through an index; each live row's usage (the hypervisor views sum it per host
        // from one covering index, without reading the JSON); an instance's latest fault without a scan. Existing rows get their usage
        // from their JSON (json_extract, which SqlDialect translates for PostgreSQL).
        """
        ALTER TABLE instances ADD COLUMN vcpus INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE instances ADD COLUMN memory_mb INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE instances ADD COLUMN disk_gb INTEGER NOT NULL DEFAULT 0;
        UPDATE instances SET
            vcpus = COALESCE(CAST(json_extract(data, '$.flavor.vcpus') AS INTEGER), 0),
            memory_mb = COALESCE(CAST(json_extract(data, '$.flavor.memory_mb') AS INTEGER), 0),
            disk_gb = COALESCE(CAST(json_extract(data, '$.flavor.disk_gb') AS INTEGER), 0)
                - CASE WHEN CAST(json_extract(data, '$.volume_backed') AS TEXT) IN ('1', 'true')
                       THEN COALESCE(CAST(json_extract(data, '$.flavor.root_gb') AS INTEGER), 0) ELSE 0 END;
        CREATE INDEX ix_instances_created ON instances(created_at, id) WHERE deleted = 0;
        CREATE INDEX ix_instances_project_created ON instances(project_id, created_at, id) WHERE deleted = 0;
        CREATE INDEX ix_instances_live_host ON instances(host, created_at, id) WHERE deleted = 0;
        CREATE INDEX ix_instances_status_created ON instances(vm_state, created_at, id) WHERE deleted = 0;
        CREATE INDEX ix_instances_usage ON instances(host, vcpus, memory_mb, disk_gb, task_state) WHERE deleted = 0;
        CREATE INDEX ix_instance_faults_instance ON instance_faults(instance_uuid, id);
        """,
        // A change number on every service and compute node write (the table's highest plus one), so that the
        // scheduler's cached host states read only the rows changed since its last look, not 10,000 of each.
        """
        ALTER TABLE services ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE compute_nodes ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX ix_services_change_seq ON services(change_seq);
        CREATE INDEX ix_compute_nodes_change_seq ON compute_nodes(change_seq);
        """,
        // A compute agent's start-up lists its host's migrations (source or destination); deleting a service looks for
        // migrations not yet final. Both without a scan of every migration ever made.
        """
        CREATE INDEX ix_migrations_source ON migrations(source_compute, created_at, id);
        CREATE INDEX ix_migrations_dest ON migrations(dest_compute, created_at, id);
        CREATE INDEX ix_migrations_unfinished ON migrations(status)
            WHERE status NOT IN ('confirmed','reverted','error','failed','completed','cancelled','done');
        """,
        // Quota checks count a project's (or a user's) instances, cores and RAM on every create and resize: an
        // aggregate over a covering index instead of reading every instance's JSON.
        """
        ALTER TABLE instances ADD COLUMN user_id TEXT NOT NULL DEFAULT '';
        UPDATE instances SET user_id = COALESCE(CAST(json_extract(data, '$.user_id') AS TEXT), '');
        CREATE INDEX ix_instances_project_usage ON instances(project_id, user_id, vcpus, memory_mb) WHERE deleted = 0;
        """,
        // The conductor's lost-move check reads the servers in a move's task_state every minute: few of 100,000.
        """
        CREATE INDEX ix_instances_task_state ON instances(task_state) WHERE deleted = 0 AND task_state IS NOT NULL;
        """,
        // The compute's key for one run of a step (ActionEventRequest.Key): its start and finish find the one row by it, in
        // any order and any number of times. NULLs are distinct in a unique index on both engines: unkeyed rows as before.
        """
        ALTER TABLE instance_action_events ADD COLUMN event_key TEXT;
        CREATE UNIQUE INDEX ix_instance_action_events_key ON instance_action_events(event_key);
        """,
        // GET /os-migrations (2.59+) reads a page down the newest-first order from its marker, not every migration ever made.
        """
        CREATE INDEX ix_migrations_created ON migrations(created_at, id);
        """,
        // A heartbeat writes only this column (UTC ticks): no index holds it and no JSON is merged, so PostgreSQL updates the
        // row in place (a HOT update), and no change number is taken. The scheduler reads the column apart, once a second.
        """
        ALTER TABLE services ADD COLUMN heartbeat_at INTEGER;
        """,
    ];
}
