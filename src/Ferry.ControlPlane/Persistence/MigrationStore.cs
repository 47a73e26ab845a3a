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
    /// One page of <c>GET /os-migrations</c>: the migrations after <paramref name="marker"/> (a migration's uuid) that match
    /// <paramref name="filter"/> and <paramref name="keep"/> (what has no column: times, users, several statuses), newest
    /// first, at most <paramref name="limit"/> of them. Read in batches down the (created_at, id) order, so a page costs the
    /// rows up to its end, not every migration ever made.
    /// </summary>
    /// <exception cref="BadRequestException">No migration has the uuid <paramref name="marker"/> (Nova's MarkerNotFound).</exception>
    public Task<List<Migration>> ListPageAsync(MigrationFilter filter, string? marker, int limit, Func<Migration, bool> keep, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            MigrationPosition? after = null;
            if (marker is not null)
            {
                await using var find = FerryDatabase.Command(c, null, "SELECT created_at, id FROM migrations WHERE uuid = @u", ("@u", marker));
                after = await Rows.ReadFirstAsync(find, r => (MigrationPosition?)new MigrationPosition(r.GetString(0), r.GetInt32(1)), ct)
                    ?? throw new BadRequestException($"Marker {marker} could not be found.");
            }
            var page = new List<Migration>();
            var batch = Math.Clamp(limit, 1, PageBatch);
            while (page.Count < limit)
            {
                var (sql, parameters) = ListSql(filter, after, batch);
                await using var command = FerryDatabase.Command(c, null, sql, [.. parameters]);
                var rows = await Rows.ReadAllAsync(command, r => (Position: new MigrationPosition(r.GetString(1), r.GetInt32(2)),
                    Migration: Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.Migration)), ct);
                page.AddRange(rows.Select(row => row.Migration).Where(keep).Take(limit - page.Count));
                if (rows.Count < batch)
                {
                    break;
                }
                after = rows[^1].Position;
            }
            return page;
        }, cancellationToken);

    // Rows read per round trip while a page is filled: a page of 1,000 with no filter is one or two reads.
    private const int PageBatch = 500;

    /// <summary>
    /// Only the given filters go into the WHERE clause: a "@x IS NULL OR column = @x" clause keeps both engines from
    /// seeking an index, and a compute agent lists its host's migrations at every start (10,000 agents at once). A page
    /// continues strictly after <paramref name="after"/> in the (created_at, id) descending order.
    /// </summary>
    internal static (string Sql, List<(string Name, object? Value)> Parameters) ListSql(MigrationFilter filter, MigrationPosition? after = null, int? take = null)
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
        if (after is { } position)
        {
            where.Add("(created_at < @ac OR (created_at = @ac AND id < @aid))");
            parameters.Add(("@ac", position.CreatedAt));
            parameters.Add(("@aid", position.Id));
        }
        var condition = where.Count == 0 ? "" : " WHERE " + string.Join(" AND ", where);
        var limit = take is { } n ? $" LIMIT {n.ToString(System.Globalization.CultureInfo.InvariantCulture)}" : "";
        return ($"SELECT data, created_at, id FROM migrations{condition} ORDER BY created_at DESC, id DESC{limit}", parameters);
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

/// <summary>Where a migration sits in the newest-first order of <c>GET /os-migrations</c>.</summary>
internal readonly record struct MigrationPosition(string CreatedAt, int Id);

public sealed record MigrationFilter(
    string? InstanceUuid = null,
    string? Host = null,
    string? SourceCompute = null,
    string? Status = null,
    string? MigrationType = null);
