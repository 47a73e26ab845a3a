using System.Security.Cryptography;
using System.Text;
using Microsoft.Data.Sqlite;

namespace Ferry.FunctionalTests.Fuzz;

/// <summary>
/// Everything a request could change, as text: every row of every table of the SQLite file, the image
/// store's files and the identity file. Two equal snapshots mean nothing changed in between.
/// </summary>
internal sealed class StateSnapshot(string dataDirectory) : IDisposable
{
    private readonly SqliteConnection _db = Open(Path.Combine(dataDirectory, "ferry.db"));
    private List<string>? _tables;

    private static SqliteConnection Open(string path)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        connection.Open();
        return connection;
    }

    /// <summary>Table name → its rows (ordered).</summary>
    public SortedDictionary<string, string> Take()
    {
        var state = new SortedDictionary<string, string>(StringComparer.Ordinal);
        using (var read = _db.BeginTransaction())
        {
            foreach (var table in Tables(read))
            {
                using var cmd = _db.CreateCommand();
                cmd.Transaction = read;
                cmd.CommandText = $"SELECT * FROM \"{table}\"";
                var rows = new List<string>();
                using var reader = cmd.ExecuteReader();
                while (reader.Read())
                {
                    var row = new StringBuilder();
                    for (var i = 0; i < reader.FieldCount; i++)
                    {
                        row.Append(reader.IsDBNull(i) ? "∅" : Convert.ToString(reader.GetValue(i), System.Globalization.CultureInfo.InvariantCulture)).Append('|');
                    }
                    rows.Add(row.ToString());
                }
                rows.Sort(StringComparer.Ordinal);
                state[table] = string.Join('\n', rows);
            }
        }
        return state;
    }

    /// <summary>SQLite's <c>PRAGMA data_version</c>: changes whenever another connection commits to the file.</summary>
    public long Version()
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = "PRAGMA data_version";
        return (long)cmd.ExecuteScalar()!;
    }

    /// <summary>Instances still building or with a task under way.</summary>
    public long InFlight()
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = "SELECT count(*) FROM instances WHERE deleted = 0 AND (task_state IS NOT NULL OR vm_state = 'building')";
        return (long)cmd.ExecuteScalar()!;
    }

    /// <summary>The image store's files (name and size) and a hash of the identity file.</summary>
    public SortedDictionary<string, string> Files()
    {
        var state = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var dir in new[] { "images" })
        {
            var path = Path.Combine(dataDirectory, dir);
            state[$"files:{dir}"] = !Directory.Exists(path) ? "" : string.Join('\n',
                Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
                    .Select(f => $"{Path.GetRelativePath(path, f)}:{new FileInfo(f).Length}"));
        }
        var identity = Path.Combine(dataDirectory, "identity.json");
        state["files:identity.json"] = File.Exists(identity) ? Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(identity))) : "";
        return state;
    }

    private List<string> Tables(SqliteTransaction read)
    {
        if (_tables is null)
        {
            using var cmd = _db.CreateCommand();
            cmd.Transaction = read;
            cmd.CommandText = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name";
            using var reader = cmd.ExecuteReader();
            _tables = [];
            while (reader.Read())
            {
                _tables.Add(reader.GetString(0));
            }
        }
        return _tables;
    }

    /// <summary>The names of the entries that differ, with the first differing text of each.</summary>
    public static string Diff(SortedDictionary<string, string> before, SortedDictionary<string, string> after)
    {
        var changed = before.Keys.Union(after.Keys)
            .Where(k => before.GetValueOrDefault(k) != after.GetValueOrDefault(k))
            .Select(k =>
            {
                var a = (before.GetValueOrDefault(k) ?? "").Split('\n');
                var b = (after.GetValueOrDefault(k) ?? "").Split('\n');
                var added = b.Except(a).FirstOrDefault() ?? "";
                var removed = a.Except(b).FirstOrDefault() ?? "";
                return $"{k} (-{Cut(removed)} +{Cut(added)})";
            });
        return string.Join("; ", changed);
    }

    private static string Cut(string s) => s.Length > 160 ? s[..160] + "…" : s;

    public static bool Same(SortedDictionary<string, string> a, SortedDictionary<string, string> b) =>
        a.Count == b.Count && a.All(p => b.TryGetValue(p.Key, out var v) && v == p.Value);

    public void Dispose() => _db.Dispose();
}
