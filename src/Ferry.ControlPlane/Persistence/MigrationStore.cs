using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Observability;
using Ferry.Core.Rpc.Conductor;
using System.Data.Common;

namespace Ferry.ControlPlane.Persistence;

/// <summary>Migration records; status changes can be made conditional on the current status.</summary>
public sealed class MigrationStore(FerryDatabase db, TimeProvider time)
{
    /// <summary>Inserts a new migration; its integer <c>Id</c> comes from the database's identity column.</summary>
    public Task<Migration> CreateAsync(Func<int, Migration> build, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            var id = await Rows.ReserveIdAsync(c, t,
                "INSERT INTO migrations(uuid, instance_uuid, status, migration_type, created_at, data) VALUES (@u, '', '', '', '', '{}') RETURNING id", ct, ("@u", Rows.Placeholder()));
            var now = time.GetUtcNow();
            var migration = build(id) with { CreatedAt = now, UpdatedAt = now };
            await using var fill = FerryDatabase.Command(c, t,
                "UPDATE migrations SET uuid = @u, instance_uuid = @i, source_compute = @s, dest_compute = @d, status = @st, migration_type = @ty, created_at = @c, data = @data WHERE id = @id",
                ("@id", id), ("@u", migration.Uuid), ("@i", migration.InstanceUuid), ("@s", migration.SourceCompute),
                ("@d", migration.DestCompute), ("@st", migration.Status), ("@ty", migration.MigrationType),
                ("@c", Rows.Time(now)), ("@data", Rows.Json(migration, PersistenceJsonContext.Default.Migration)));
            await fill.ExecuteNonQueryAsync(ct);
            return migration;
        }, cancellationToken);

    public Task<Migration?> FindAsync(string uuid, CancellationToken cancellationToken) =>
        db.ReadAsync((c, ct) => FindByAsync(c, null, "uuid = @k", uuid, "", ct), cancellationToken);

    public Task<Migration?> FindByIdAsync(int id, CancellationToken cancellationToken) =>
        db.ReadAsync((c, ct) => FindByAsync(c, null, "id = @k", id, "", ct), cancellationToken);

    public async Task<Migration> GetAsync(string uuid, CancellationToken cancellationToken) =>
        await FindAsync(uuid, cancellationToken) ?? throw new MigrationNotFoundException($"Migration {uuid} could not be found.");

    /// <summary>Migrations matching every given filter, newest first (Nova sorts by created_at, id desc).</summary>
    public Task<List<Migration>> ListAsync(MigrationFilter filter, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            var (sql, parameters) = ListSql(filter);
            await using var command = FerryDatabase.Command(c, null, sql, [.. parameters]);
            return await Rows.ReadAllAsync(command, r => Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.Migration), ct);
        }, cancellationToken);

    /// <summary>
    /// Only the given filters go into the WHERE clause: a "@x IS NULL OR column = @x" clause keeps both engines from
    /// seeking an index, and a compute agent lists its host's migrations at every start (10,000 agents at once).
    /// </summary>
    internal static (string Sql, List<(string Name, object? Value)> Parameters) ListSql(MigrationFilter filter)
    {
        var where = new List<string>();
        var parameters = new List<(string, object?)>();
        void Add(string clause, string name, string? value)
        {
            if (value is not null)
            {
                where.Add(clause);
                parameters.Add((name, value));
            }
        }
        Add("instance_uuid = @i", "@i", filter.InstanceUuid);
        Add("(source_compute = @h OR dest_compute = @h)", "@h", filter.Host);
        Add("source_compute = @s", "@s", filter.SourceCompute);
        Add("status = @st", "@st", filter.Status);
        Add("migration_type = @ty", "@ty", filter.MigrationType);
        var condition = where.Count == 0 ? "" : " WHERE " + string.Join(" AND ", where);
        return ($"SELECT data FROM migrations{condition} ORDER BY created_at DESC, id DESC", parameters);
    }

    /// <summary>Migrations not in a final status (they may still hold resources or be running).</summary>
    public Task<List<Migration>> ListUnfinishedAsync(CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null, UnfinishedSql);
            return await Rows.ReadAllAsync(command, r => Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.Migration), ct);
        }, cancellationToken);

    // The same predicate as the partial index ix_migrations_unfinished, word for word, so both engines use it.
    internal const string UnfinishedSql =
        "SELECT data FROM migrations WHERE status NOT IN ('confirmed','reverted','error','failed','completed','cancelled','done')";

    /// <remarks>A write: <paramref name="cancellationToken"/> only stops the wait to begin it.</remarks>
    public Task<Migration> UpdateAsync(MigrationUpdateRequest u, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            var m = await FindByAsync(c, t, "uuid = @k", u.Uuid, db.Dialect.ForUpdate, ct) ?? throw new MigrationNotFoundException($"Migration {u.Uuid} could not be found.");
            if (u.ExpectedStatuses is { } expected && !expected.Contains(m.Status))
            {
                throw new InvalidMigrationStateException(
                    $"Migration {m.Id} state of instance {m.InstanceUuid} is {m.Status}. Cannot change it while it is in this state.");
            }
            var next = m with
            {
                Status = u.Status ?? m.Status,
                SourceNode = u.SourceNode ?? m.SourceNode,
                DestCompute = u.DestCompute ?? m.DestCompute,
                DestNode = u.DestNode ?? m.DestNode,
                DestHost = u.DestHost ?? m.DestHost,
                MemoryTotal = u.MemoryTotal ?? m.MemoryTotal,
                MemoryProcessed = u.MemoryProcessed ?? m.MemoryProcessed,
                MemoryRemaining = u.MemoryRemaining ?? m.MemoryRemaining,
                DiskTotal = u.DiskTotal ?? m.DiskTotal,
                DiskProcessed = u.DiskProcessed ?? m.DiskProcessed,
                DiskRemaining = u.DiskRemaining ?? m.DiskRemaining,
                UpdatedAt = time.GetUtcNow(),
            };
            await using var write = FerryDatabase.Command(c, t,
                "UPDATE migrations SET dest_compute = @d, status = @st, data = @data WHERE uuid = @u",
                ("@u", next.Uuid), ("@d", next.DestCompute), ("@st", next.Status), ("@data", Rows.Json(next, PersistenceJsonContext.Default.Migration)));
            await write.ExecuteNonQueryAsync(ct);
            MoveMetrics.StatusChanged(m.MigrationType, m.Status, next.Status);
            return next;
        }, cancellationToken);

    private static async Task<Migration?> FindByAsync(DbConnection c, DbTransaction? t, string where, object key, string forUpdate, CancellationToken cancellationToken)
    {
        await using var command = FerryDatabase.Command(c, t, $"SELECT data FROM migrations WHERE {where}{forUpdate}", ("@k", key));
        return await command.ExecuteScalarAsync(cancellationToken) is string json ? Rows.FromJson(json, PersistenceJsonContext.Default.Migration) : null;
    }
}

public sealed record MigrationFilter(
    string? InstanceUuid = null,
    string? Host = null,
    string? SourceCompute = null,
    string? Status = null,
    string? MigrationType = null);
