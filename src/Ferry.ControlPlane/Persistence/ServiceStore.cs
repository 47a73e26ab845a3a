using Ferry.Core.Domain;
using Ferry.Core.Errors;
using System.Data.Common;

namespace Ferry.ControlPlane.Persistence;

/// <summary>The services table: one row per (host, binary), with its last heartbeat.</summary>
/// <remarks>Reads stop on their token; a write honours it only until its transaction begins (see <see cref="FerryDatabase.WriteAsync{T}"/>).</remarks>
public sealed class ServiceStore(FerryDatabase db, TimeProvider time)
{
    private long _changeStamp;

    private long _deleteStamp;

    private readonly string _versionSql = VersionSql(db.Dialect);

    private readonly HeartbeatWriter _heartbeats = new(db, Map, Columns);

    /// <summary>Grows on every write, so readers can cache and notice changes cheaply.</summary>
    public long ChangeStamp => Interlocked.Read(ref _changeStamp);

    /// <summary>Grows on every delete in this process: a reader that follows <see cref="ListChangedSinceAsync"/> must then read everything again.</summary>
    public long DeleteStamp => Interlocked.Read(ref _deleteStamp);

    /// <summary>What every read of whole rows selects: <see cref="Map"/> reads them in this order.</summary>
    private const string Columns = "id, data, heartbeat_at";

    internal const string ChangedSinceSql = $"SELECT {Columns}, change_seq FROM services WHERE change_seq > @after AND \"binary\" = @b";

    /// <summary>
    /// The services of <paramref name="binary"/> written after change number <paramref name="afterSeq"/>, each with its
    /// change number (every write gives its row the table's highest plus one; through an index, so a reader that
    /// keeps the highest it has seen reads only what changed since). A heartbeat is not such a write: see
    /// <see cref="ListHeartbeatsSinceAsync"/>.
    /// </summary>
    /// <param name="isNew">When given, only the (host, change number) pairs are read first and the rows are read only
    /// for the pairs it accepts: a reader that looks back over rows it already has reads their keys, not their JSON.</param>
    public Task<List<(Service Service, long Seq)>> ListChangedSinceAsync(string binary, long afterSeq, CancellationToken cancellationToken,
        Func<string, long, bool>? isNew = null) =>
        db.ReadAsync(async (c, ct) =>
        {
            if (isNew is null)
            {
                await using var command = FerryDatabase.Command(c, null, ChangedSinceSql, ("@after", afterSeq), ("@b", binary));
                return await Rows.ReadAllAsync(command, ReadWithSeq, ct);
            }
            List<string> wanted;
            await using (var keys = FerryDatabase.Command(c, null, ChangedKeysSinceSql, ("@after", afterSeq), ("@b", binary)))
            {
                wanted = (await Rows.ReadAllAsync(keys, r => (Host: r.GetString(0), Seq: Convert.ToInt64(r.GetValue(1), System.Globalization.CultureInfo.InvariantCulture)), ct))
                    .Where(k => isNew(k.Host, k.Seq)).Select(k => k.Host).ToList();
            }
            var rows = new List<(Service Service, long Seq)>(wanted.Count);
            foreach (var chunk in wanted.Chunk(500))
            {
                var names = chunk.Select((_, i) => $"@h{i}").ToArray();
                await using var command = FerryDatabase.Command(c, null,
                    $"SELECT {Columns}, change_seq FROM services WHERE \"binary\" = @b AND host IN ({string.Join(", ", names)})",
                    [("@b", binary), .. chunk.Select((h, i) => ($"@h{i}", (object?)h))]);
                rows.AddRange(await Rows.ReadAllAsync(command, ReadWithSeq, ct));
            }
            return rows;
        }, cancellationToken);

    internal const string ChangedKeysSinceSql = "SELECT host, change_seq FROM services WHERE change_seq > @after AND \"binary\" = @b";

    private static (Service Service, long Seq) ReadWithSeq(DbDataReader r) =>
        (Map(r), Convert.ToInt64(r.GetValue(3), System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>
    /// The last heartbeat of each service of <paramref name="binary"/> that reported after <paramref name="after"/> (all
    /// of them when null): host and time. A scan without an index, of two narrow columns; the scheduler's view reads it
    /// once a second instead of every heartbeat's row.
    /// </summary>
    public Task<List<(string Host, DateTimeOffset At)>> ListHeartbeatsSinceAsync(string binary, DateTimeOffset? after, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null,
                "SELECT host, heartbeat_at FROM services WHERE \"binary\" = @b AND heartbeat_at > @after",
                ("@b", binary), ("@after", after?.UtcTicks ?? long.MinValue));
            return await Rows.ReadAllAsync(command, r => (r.GetString(0), FromTicks(r.GetValue(1))), ct);
        }, cancellationToken);

    /// <summary>Records a heartbeat, creating the service on its first report (an upsert, so two processes never make two rows).</summary>
    public async Task<Service> ReportAsync(string host, string binary, string topic, int version, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        // A heartbeat is this one statement, outside any transaction and without waiting for the disk (10,000 hosts report
        // every 10 s: BEGIN, SET LOCAL, the insert attempt, a locking read, the write and COMMIT each were most of the
        // database's work). It writes only heartbeat_at, so an admin's disable or forced_down written meanwhile stays (the
        // row lock of the UPDATE orders it with that write), no index changes and it takes no change number. One a
        // PostgreSQL crash loses is the next one's to make.
        // Heartbeats that arrive together are written together (HeartbeatWriter).
        while (true)
        {
            if (await _heartbeats.BeatAsync(host, binary, now.UtcTicks, cancellationToken) is { } reported)
            {
                return await WithVersionAsync(reported, version, now, cancellationToken);
            }
            Interlocked.Increment(ref _changeStamp);
            var fresh = new Service
            {
                Id = 0, Uuid = Guid.NewGuid().ToString(), Host = host, Binary = binary, Topic = topic,
                Zone = binary == "nova-compute" ? "nova" : "internal", Version = version,
                LastSeenUp = now, CreatedAt = now, UpdatedAt = now,
            };
            // A first report is this one statement (row, change number and id at once) and, like a heartbeat, its own
            // transaction that does not wait for the disk: one round trip, where BEGIN, SET LOCAL, the insert and COMMIT were
            // four for each of 10,000 hosts registering at start. A row a PostgreSQL crash loses is made again by the host's
            // next report, and nothing refers to it by id (the node is found by host). The row's id lives in its column; the
            // JSON's is not read.
            if (await db.QueryFirstWithoutFlushAsync(
                "INSERT INTO services(uuid, host, \"binary\", data, heartbeat_at, change_seq) VALUES (@u, @h, @b, @d, @at, "
                + "(SELECT COALESCE(MAX(change_seq), 0) + 1 FROM services)) ON CONFLICT(host, \"binary\") DO NOTHING RETURNING id",
                r => fresh with { Id = Rows.Int(r, 0) }, cancellationToken,
                ("@u", fresh.Uuid), ("@h", host), ("@b", binary), ("@d", Rows.Json(fresh, PersistenceJsonContext.Default.Service)), ("@at", now.UtcTicks)) is { } made)
            {
                return made;
            }
            // Another process made the row since the heartbeat found none (or this insert ran twice, its connection lost
            // after the commit): this report is a heartbeat on it.
        }
    }

    /// <summary>
    /// The row a heartbeat read back, with the reported <paramref name="version"/>: a new one (the host's agent was upgraded)
    /// is a change the readers of changes must see, so it is written (<see cref="VersionSql"/>, without waiting for the disk as
    /// the heartbeat).
    /// </summary>
    private async Task<Service> WithVersionAsync(Service reported, int version, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (reported.Version == version)
        {
            return reported;
        }
        Interlocked.Increment(ref _changeStamp);
        return await db.QueryFirstWithoutFlushAsync(_versionSql, Map, cancellationToken,
            ("@h", reported.Host), ("@b", reported.Binary), ("@keys", VersionKeys(now, version))) ?? reported;
    }

    /// <summary>
    /// A report of a new version: the version and updated_at keys set in the stored JSON (<see cref="SqlDialect.JsonSetKeys"/>,
    /// so an admin's flags written meanwhile stay) and the table's next change number, the row read back.
    /// </summary>
    private static string VersionSql(SqlDialect dialect) =>
        $"UPDATE services SET data = {dialect.JsonSetKeys("data", "@keys")}, change_seq = (SELECT COALESCE(MAX(change_seq), 0) + 1 FROM services) "
        + $"WHERE host = @h AND \"binary\" = @b RETURNING {Columns}";

    /// <summary>The keys a new version sets, spelled and formatted as <see cref="PersistenceJsonContext"/> writes a <see cref="Service"/>.</summary>
    private static string VersionKeys(DateTimeOffset now, int version)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(128);
        using (var json = new System.Text.Json.Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("updated_at", now);
            json.WriteNumber("version", version);
            json.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>
    /// Makes the nova-compute services of every host not in <paramref name="runningHosts"/> down at once (their
    /// last heartbeat is forgotten; updated_at stays), for a process that knows which compute hosts it runs:
    /// hosts of an earlier run must not look up until service_down_time passes. Returns the hosts marked down.
    /// </summary>
    public Task<List<string>> MarkComputesDownExceptAsync(IReadOnlyCollection<string> runningHosts, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            Interlocked.Increment(ref _changeStamp);
            List<Service> stale;
            await using (var command = FerryDatabase.Command(c, t, $"SELECT {Columns} FROM services WHERE \"binary\" = 'nova-compute' ORDER BY id" + db.Dialect.ForUpdate))
            {
                stale = (await Rows.ReadAllAsync(command, Map, ct)).Where(s => !runningHosts.Contains(s.Host)).ToList();
            }
            foreach (var service in stale)
            {
                await SaveAsync(c, t, service with { LastSeenUp = DateTimeOffset.UnixEpoch }, ct);
            }
            return stale.Select(s => s.Host).ToList();
        }, cancellationToken);

    public Task<List<Service>> ListAsync(CancellationToken cancellationToken, string? host = null, string? binary = null) =>
        db.ReadAsync(async (c, ct) =>
        {
            // Only the given filters reach the SQL, so the (host, binary) index serves a host's rows.
            var where = string.Join(" AND ", new[] { host is null ? null : "host = @h", binary is null ? null : "\"binary\" = @b" }.OfType<string>());
            await using var command = FerryDatabase.Command(c, null,
                $"SELECT {Columns} FROM services" + (where.Length > 0 ? " WHERE " + where : "") + " ORDER BY id",
                ("@h", host), ("@b", binary));
            return await Rows.ReadAllAsync(command, Map, ct);
        }, cancellationToken);

    /// <summary>The services of <paramref name="binary"/> on each of <paramref name="hosts"/>, by host: one query per 500 hosts.</summary>
    public Task<Dictionary<string, Service>> FindByHostsAsync(IReadOnlyCollection<string> hosts, string binary, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            var found = new Dictionary<string, Service>(StringComparer.Ordinal);
            foreach (var chunk in hosts.Distinct(StringComparer.Ordinal).Chunk(500))
            {
                var names = chunk.Select((_, i) => $"@h{i}").ToArray();
                await using var command = FerryDatabase.Command(c, null,
                    $"SELECT {Columns} FROM services WHERE \"binary\" = @b AND host IN ({string.Join(", ", names)})",
                    [("@b", binary), .. chunk.Select((h, i) => ($"@h{i}", (object?)h))]);
                foreach (var service in await Rows.ReadAllAsync(command, Map, ct))
                {
                    found[service.Host] = service;
                }
            }
            return found;
        }, cancellationToken);

    public Task<Service?> FindByUuidAsync(string uuid, CancellationToken cancellationToken) =>
        db.ReadAsync((c, ct) => FindAsync(c, null, "uuid = @a", uuid, null, ct), cancellationToken);

    public Task<Service?> FindByIdAsync(int id, CancellationToken cancellationToken) =>
        db.ReadAsync((c, ct) => FindAsync(c, null, "id = @a", id, null, ct), cancellationToken);

    public Task<Service?> FindAsync(string host, string binary, CancellationToken cancellationToken) =>
        db.ReadAsync((c, ct) => FindAsync(c, null, "host = @a AND \"binary\" = @b", host, binary, ct), cancellationToken);

    public Task<Service> UpdateAsync(int id, Func<Service, Service> change, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            Interlocked.Increment(ref _changeStamp);
            var service = await FindAsync(c, t, "id = @a" + db.Dialect.ForUpdate, id, null, ct) ?? throw new NotFoundException($"Service {id} could not be found.");
            return await SaveAsync(c, t, change(service) with { UpdatedAt = time.GetUtcNow() }, ct);
        }, cancellationToken);

    public Task DeleteAsync(int id, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            Interlocked.Increment(ref _changeStamp);
            Interlocked.Increment(ref _deleteStamp);
            await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "DELETE FROM services WHERE id = @id", ("@id", id)), ct);
        }, cancellationToken);

    private static async Task<Service> SaveAsync(DbConnection c, DbTransaction t, Service s, CancellationToken cancellationToken)
    {
        if (s.Id == 0)
        {
            var id = await FerryDatabase.ScalarAsync(FerryDatabase.Command(c, t,
                "INSERT INTO services(uuid, host, \"binary\", data) VALUES (@u, @h, @b, @d) RETURNING id",
                ("@u", s.Uuid), ("@h", s.Host), ("@b", s.Binary), ("@d", Rows.Json(s, PersistenceJsonContext.Default.Service))), cancellationToken);
            s = s with { Id = Convert.ToInt32(id, System.Globalization.CultureInfo.InvariantCulture) };
        }
        // heartbeat_at is written with the rest: the row was read locked, so it holds the last heartbeat, or the time a
        // caller set (MarkComputesDownExceptAsync forgets it).
        await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t,
            "UPDATE services SET data = @d, heartbeat_at = @at, change_seq = (SELECT COALESCE(MAX(change_seq), 0) + 1 FROM services) WHERE id = @id",
            ("@id", s.Id), ("@d", Rows.Json(s, PersistenceJsonContext.Default.Service)), ("@at", s.LastSeenUp?.UtcTicks)), cancellationToken);
        return s;
    }

    private static async Task<Service?> FindAsync(DbConnection c, DbTransaction? t, string where, object a, object? b, CancellationToken cancellationToken)
    {
        await using var command = FerryDatabase.Command(c, t, $"SELECT {Columns} FROM services WHERE {where}", ("@a", a), ("@b", b));
        return await Rows.ReadFirstAsync(command, Map, cancellationToken);
    }

    /// <summary>A row read as <see cref="Columns"/>: the JSON, with its id, and the last heartbeat when the row has one (it moves updated_at too, as Nova's report does).</summary>
    private static Service Map(DbDataReader r)
    {
        var service = Rows.FromJson(r.GetString(1), PersistenceJsonContext.Default.Service) with { Id = Rows.Int(r, 0) };
        if (r.IsDBNull(2))
        {
            return service;
        }
        var beat = FromTicks(r.GetValue(2));
        return service with { LastSeenUp = beat, UpdatedAt = beat > service.UpdatedAt ? beat : service.UpdatedAt };
    }

    private static DateTimeOffset FromTicks(object ticks) =>
        new(Convert.ToInt64(ticks, System.Globalization.CultureInfo.InvariantCulture), TimeSpan.Zero);
}
