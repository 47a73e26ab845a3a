using Ferry.Core.Domain;
using System.Data.Common;

namespace Ferry.ControlPlane.Persistence;

/// <summary>Compute nodes, one per host (Ferry's hosts each have one node named after the host).</summary>
/// <remarks>Reads stop on their token; a write honours it only until its transaction begins (see <see cref="FerryDatabase.WriteAsync{T}"/>).</remarks>
public sealed class ComputeNodeStore(FerryDatabase db)
{
    private long _changeStamp;

    private long _deleteStamp;

    /// <summary>Grows on every write, so readers can cache and notice changes cheaply.</summary>
    public long ChangeStamp => Interlocked.Read(ref _changeStamp);

    /// <summary>Grows on every delete in this process: a reader that follows <see cref="ListChangedSinceAsync"/> must then read everything again.</summary>
    public long DeleteStamp => Interlocked.Read(ref _deleteStamp);

    /// <summary>The nodes written after change number <paramref name="afterSeq"/>, each with its change number (see <see cref="ServiceStore.ListChangedSinceAsync"/>).</summary>
    /// <param name="isNew">When given, only the (id, change number) pairs are read first, and the rows only for the pairs it accepts.</param>
    public Task<List<(ComputeNode Node, long Seq)>> ListChangedSinceAsync(long afterSeq, CancellationToken cancellationToken, Func<int, long, bool>? isNew = null) =>
        db.ReadAsync(async (c, ct) =>
        {
            if (isNew is null)
            {
                await using var command = FerryDatabase.Command(c, null, "SELECT id, data, change_seq FROM compute_nodes WHERE change_seq > @after", ("@after", afterSeq));
                return await Rows.ReadAllAsync(command, ReadWithSeq, ct);
            }
            List<int> wanted;
            await using (var keys = FerryDatabase.Command(c, null, "SELECT id, change_seq FROM compute_nodes WHERE change_seq > @after", ("@after", afterSeq)))
            {
                wanted = (await Rows.ReadAllAsync(keys, r => (Id: Rows.Int(r, 0), Seq: Convert.ToInt64(r.GetValue(1), System.Globalization.CultureInfo.InvariantCulture)), ct))
                    .Where(k => isNew(k.Id, k.Seq)).Select(k => k.Id).ToList();
            }
            var rows = new List<(ComputeNode Node, long Seq)>(wanted.Count);
            foreach (var chunk in wanted.Chunk(500))
            {
                var names = chunk.Select((_, i) => $"@i{i}").ToArray();
                await using var command = FerryDatabase.Command(c, null, $"SELECT id, data, change_seq FROM compute_nodes WHERE id IN ({string.Join(", ", names)})",
                    [.. chunk.Select((id, i) => ($"@i{i}", (object?)id))]);
                rows.AddRange(await Rows.ReadAllAsync(command, ReadWithSeq, ct));
            }
            return rows;
        }, cancellationToken);

    private static (ComputeNode Node, long Seq) ReadWithSeq(DbDataReader r) =>
        (Read(r), Convert.ToInt64(r.GetValue(2), System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>A row read as <c>id, data</c>: the id lives in its column (a new node's JSON is written before the insert gives it one).</summary>
    private static ComputeNode Read(DbDataReader r) => Rows.FromJson(r.GetString(1), PersistenceJsonContext.Default.ComputeNode) with { Id = Rows.Int(r, 0) };

    /// <summary>Creates or updates the host's node; a node keeps its uuid (= resource provider uuid) for life.</summary>
    public Task<ComputeNode> UpsertAsync(ComputeNode node, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            Interlocked.Increment(ref _changeStamp);
            // A new host's node is this one statement (row, change number and id at once); a known host's row is locked and
            // rewritten, so two processes registering one host end with one node.
            await using (var insert = FerryDatabase.Command(c, t,
                "INSERT INTO compute_nodes(uuid, host, data, change_seq) VALUES (@u, @h, @d, (SELECT COALESCE(MAX(change_seq), 0) + 1 FROM compute_nodes)) "
                + "ON CONFLICT(host) DO NOTHING RETURNING id",
                ("@u", node.Uuid), ("@h", node.Host), ("@d", Rows.Json(node, PersistenceJsonContext.Default.ComputeNode))))
            {
                if (await insert.ExecuteScalarAsync(ct) is { } id and not DBNull)
                {
                    return node with { Id = Convert.ToInt32(id, System.Globalization.CultureInfo.InvariantCulture) };
                }
            }
            ComputeNode saved;
            string previous;
            await using (var find = FerryDatabase.Command(c, t, "SELECT id, uuid, data FROM compute_nodes WHERE host = @h" + db.Dialect.ForUpdate, ("@h", node.Host)))
            {
                (saved, previous) = (await Rows.ReadFirstAsync(find, r => (node with { Id = Rows.Int(r, 0), Uuid = r.GetString(1) }, r.GetString(2)), ct))!;
            }
            if (Rows.FromJson(previous, PersistenceJsonContext.Default.ComputeNode) with { Id = saved.Id, BootedAt = saved.BootedAt } is var same
                && Rows.Json(same, PersistenceJsonContext.Default.ComputeNode) == Rows.Json(saved, PersistenceJsonContext.Default.ComputeNode))
            {
                // A restarted agent reporting the same node: only its boot time moves, which a PostgreSQL crash may lose (the
                // uptime shows the boot before); 10,000 hosts restarting no longer wait on 10,000 disk flushes.
                await db.CommitWithoutFlushAsync(c, t, ct);
            }
            await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t,
                "UPDATE compute_nodes SET data = @d, change_seq = (SELECT COALESCE(MAX(change_seq), 0) + 1 FROM compute_nodes) WHERE id = @id",
                ("@id", saved.Id), ("@d", Rows.Json(saved, PersistenceJsonContext.Default.ComputeNode))), ct);
            return saved;
        }, cancellationToken);

    public Task<List<ComputeNode>> ListAsync(CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null, "SELECT id, data FROM compute_nodes ORDER BY id");
            return await Rows.ReadAllAsync(command, Read, ct);
        }, cancellationToken);

    /// <summary>
    /// One page of nodes in id order after <paramref name="afterId"/>, at most <paramref name="limit"/> (null: all),
    /// as Nova's compute_node_get_all_by_pagination: one query on the primary key, however many nodes there are.
    /// </summary>
    public Task<List<ComputeNode>> ListPageAsync(int? afterId, int? limit, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null,
                "SELECT id, data FROM compute_nodes" + (afterId is null ? "" : " WHERE id > @after") + " ORDER BY id" + (limit is null ? "" : " LIMIT @limit"),
                ("@after", afterId), ("@limit", limit));
            return await Rows.ReadAllAsync(command, Read, ct);
        }, cancellationToken);

    public Task<ComputeNode?> FindByIdAsync(int id, CancellationToken cancellationToken) =>
        db.ReadAsync((c, ct) => FindAsync(c, "id = @k", id, ct), cancellationToken);

    public Task<ComputeNode?> FindByHostAsync(string host, CancellationToken cancellationToken) =>
        db.ReadAsync((c, ct) => FindAsync(c, "host = @k", host, ct), cancellationToken);

    public Task<ComputeNode?> FindByUuidAsync(string uuid, CancellationToken cancellationToken) =>
        db.ReadAsync((c, ct) => FindAsync(c, "uuid = @k", uuid, ct), cancellationToken);

    public Task DeleteAsync(string host, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            Interlocked.Increment(ref _changeStamp);
            Interlocked.Increment(ref _deleteStamp);
            await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "DELETE FROM compute_nodes WHERE host = @h", ("@h", host)), ct);
        }, cancellationToken);

    private static async Task<ComputeNode?> FindAsync(DbConnection c, string where, object key, CancellationToken cancellationToken)
    {
        await using var command = FerryDatabase.Command(c, null, $"SELECT id, data FROM compute_nodes WHERE {where}", ("@k", key));
        return await Rows.ReadFirstAsync(command, Read, cancellationToken);
    }
}
