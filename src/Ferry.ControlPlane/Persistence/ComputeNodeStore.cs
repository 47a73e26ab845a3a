using Ferry.Core.Domain;
using System.Data.Common;

namespace Ferry.ControlPlane.Persistence;

/// <summary>Compute nodes, one per host (Ferry's hosts each have one node named after the host).</summary>
public sealed class ComputeNodeStore(FerryDatabase db)
{
    private long _changeStamp;

    private long _deleteStamp;

    /// <summary>Grows on every write, so readers can cache and notice changes cheaply.</summary>
    public long ChangeStamp => Interlocked.Read(ref _changeStamp);

    /// <summary>Grows on every delete in this process: a reader that follows <see cref="ListChangedSince"/> must then read everything again.</summary>
    public long DeleteStamp => Interlocked.Read(ref _deleteStamp);

    /// <summary>The nodes written after change number <paramref name="afterSeq"/>, each with its change number (see <see cref="ServiceStore.ListChangedSince"/>).</summary>
    /// <param name="isNew">When given, only the (id, change number) pairs are read first, and the rows only for the pairs it accepts.</param>
    public List<(ComputeNode Node, long Seq)> ListChangedSince(long afterSeq, Func<int, long, bool>? isNew = null) =>
        db.Read(c =>
        {
            if (isNew is null)
            {
                using var command = FerryDatabase.Command(c, null, "SELECT data, change_seq FROM compute_nodes WHERE change_seq > @after", ("@after", afterSeq));
                return Rows.ReadAll(command, ReadWithSeq);
            }
            using var keys = FerryDatabase.Command(c, null, "SELECT id, change_seq FROM compute_nodes WHERE change_seq > @after", ("@after", afterSeq));
            var wanted = Rows.ReadAll(keys, r => (Id: Rows.Int(r, 0), Seq: Convert.ToInt64(r.GetValue(1), System.Globalization.CultureInfo.InvariantCulture)))
                .Where(k => isNew(k.Id, k.Seq)).Select(k => k.Id).ToList();
            var rows = new List<(ComputeNode Node, long Seq)>(wanted.Count);
            foreach (var chunk in wanted.Chunk(500))
            {
                var names = chunk.Select((_, i) => $"@i{i}").ToArray();
                using var command = FerryDatabase.Command(c, null, $"SELECT data, change_seq FROM compute_nodes WHERE id IN ({string.Join(", ", names)})",
                    [.. chunk.Select((id, i) => ($"@i{i}", (object?)id))]);
                rows.AddRange(Rows.ReadAll(command, ReadWithSeq));
            }
            return rows;
        });

    private static (ComputeNode Node, long Seq) ReadWithSeq(DbDataReader r) =>
        (Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.ComputeNode), Convert.ToInt64(r.GetValue(1), System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Creates or updates the host's node; a node keeps its uuid (= resource provider uuid) for life.</summary>
    public ComputeNode Upsert(ComputeNode node) =>
        db.Write((c, t) =>
        {
            Interlocked.Increment(ref _changeStamp);
            // Insert-or-nothing and then lock the row: two processes registering one host end with one node.
            using (var ensure = FerryDatabase.Command(c, t, "INSERT INTO compute_nodes(uuid, host, data) VALUES (@u, @h, '{}') ON CONFLICT(host) DO NOTHING",
                ("@u", node.Uuid), ("@h", node.Host)))
            {
                ensure.ExecuteNonQuery();
            }
            using var find = FerryDatabase.Command(c, t, "SELECT id, uuid, data FROM compute_nodes WHERE host = @h" + db.Dialect.ForUpdate, ("@h", node.Host));
            using var reader = find.ExecuteReader();
            reader.Read();
            var saved = node with { Id = Rows.Int(reader, 0), Uuid = reader.GetString(1) };
            var previous = reader.GetString(2);
            reader.Close();
            if (previous != "{}" && Rows.FromJson(previous, PersistenceJsonContext.Default.ComputeNode) with { BootedAt = saved.BootedAt } is var same
                && Rows.Json(same, PersistenceJsonContext.Default.ComputeNode) == Rows.Json(saved, PersistenceJsonContext.Default.ComputeNode))
            {
                // A restarted agent reporting the same node: only its boot time moves, which a PostgreSQL crash may lose (the
                // uptime shows the boot before); 10,000 hosts restarting no longer wait on 10,000 disk flushes.
                db.CommitWithoutFlush(c, t);
            }
            using var update = FerryDatabase.Command(c, t,
                "UPDATE compute_nodes SET data = @d, change_seq = (SELECT COALESCE(MAX(change_seq), 0) + 1 FROM compute_nodes) WHERE id = @id",
                ("@id", saved.Id), ("@d", Rows.Json(saved, PersistenceJsonContext.Default.ComputeNode)));
            update.ExecuteNonQuery();
            return saved;
        });

    public List<ComputeNode> List() =>
        db.Read(c =>
        {
            using var command = FerryDatabase.Command(c, null, "SELECT data FROM compute_nodes ORDER BY id");
            return Rows.ReadAll(command, r => Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.ComputeNode));
        });

    /// <summary>
    /// One page of nodes in id order after <paramref name="afterId"/>, at most <paramref name="limit"/> (null: all),
    /// as Nova's compute_node_get_all_by_pagination: one query on the primary key, however many nodes there are.
    /// </summary>
    public List<ComputeNode> ListPage(int? afterId, int? limit) =>
        db.Read(c =>
        {
            using var command = FerryDatabase.Command(c, null,
                "SELECT data FROM compute_nodes" + (afterId is null ? "" : " WHERE id > @after") + " ORDER BY id" + (limit is null ? "" : " LIMIT @limit"),
                ("@after", afterId), ("@limit", limit));
            return Rows.ReadAll(command, r => Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.ComputeNode));
        });

    public ComputeNode? FindById(int id) => db.Read(c => Find(c, null, "id = @k", id));

    public ComputeNode? FindByHost(string host) => db.Read(c => Find(c, null, "host = @k", host));

    public ComputeNode? FindByUuid(string uuid) => db.Read(c => Find(c, null, "uuid = @k", uuid));

    public void Delete(string host) =>
        db.Write((c, t) =>
        {
            Interlocked.Increment(ref _changeStamp);
            Interlocked.Increment(ref _deleteStamp);
            using var command = FerryDatabase.Command(c, t, "DELETE FROM compute_nodes WHERE host = @h", ("@h", host));
            command.ExecuteNonQuery();
        });

    private static ComputeNode? Find(DbConnection c, DbTransaction? t, string where, object key)
    {
        using var command = FerryDatabase.Command(c, t, $"SELECT data FROM compute_nodes WHERE {where}", ("@k", key));
        return command.ExecuteScalar() is string json ? Rows.FromJson(json, PersistenceJsonContext.Default.ComputeNode) : null;
    }
}
