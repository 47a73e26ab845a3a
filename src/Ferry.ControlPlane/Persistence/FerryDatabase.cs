using Ferry.Core.Observability;
using Microsoft.Data.Sqlite;

namespace Ferry.ControlPlane.Persistence;

/// <summary>
/// The control plane's SQLite database. One connection, used under a lock: every store operation is
/// a short synchronous transaction, so serializing them is both simpler and faster than pooling and
/// retrying on SQLITE_BUSY. Compare-and-swap updates rely on this: a read and the write that depends
/// on it happen inside one <see cref="Write{T}"/>.
/// </summary>
public sealed class FerryDatabase : IDisposable
{
    private readonly SqliteConnection _connection;
    private readonly Lock _gate = new();

    public FerryDatabase(string path)
    {
        if (path != ":memory:")
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            // SQLite creates the file with the umask's mode (world-readable) and its -wal/-shm files with the
            // database file's mode: create it owner-only first, and narrow files an older start left behind.
            if (!File.Exists(path))
            {
                PrivateFiles.Create(path).Dispose();
            }
            foreach (var file in new[] { path, path + "-wal", path + "-shm" })
            {
                PrivateFiles.Restrict(file);
            }
        }
        _connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
        }.ToString());
        _connection.Open();
        Execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;");
        Execute("CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL)");
    }

    /// <summary>
    /// Brings one component's schema up to date: runs each script whose index is at or above the
    /// recorded version, in order, each in its own transaction. Scripts are only ever appended.
    /// </summary>
    public void Migrate(string component, IReadOnlyList<string> scripts)
    {
        Write((connection, transaction) =>
        {
            using var read = Command(connection, transaction, "SELECT version FROM schema_version WHERE component = $c", ("$c", component));
            var current = Convert.ToInt32(read.ExecuteScalar() ?? 0);
            for (var i = current; i < scripts.Count; i++)
            {
                using var step = Command(connection, transaction, scripts[i]);
                step.ExecuteNonQuery();
            }
            using var save = Command(connection, transaction,
                "INSERT INTO schema_version(component, version) VALUES ($c, $v) ON CONFLICT(component) DO UPDATE SET version = $v",
                ("$c", component), ("$v", scripts.Count));
            save.ExecuteNonQuery();
            return 0;
        });
    }

    public T Read<T>(Func<SqliteConnection, T> read)
    {
        lock (_gate)
        {
            return DatabaseMetrics.Measure("read", () => read(_connection));
        }
    }

    public T Write<T>(Func<SqliteConnection, SqliteTransaction, T> write)
    {
        lock (_gate)
        {
            return DatabaseMetrics.Measure("write", () =>
            {
                using var transaction = _connection.BeginTransaction();
                var result = write(_connection, transaction);
                transaction.Commit();
                return result;
            });
        }
    }

    public void Write(Action<SqliteConnection, SqliteTransaction> write) =>
        Write<int>((c, t) =>
        {
            write(c, t);
            return 0;
        });

    private void Execute(string sql)
    {
        using var command = _connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    /// <summary>Builds a parameterized command; null values become SQL NULL.</summary>
    public static SqliteCommand Command(SqliteConnection connection, SqliteTransaction? transaction, string sql, params (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }
        return command;
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _connection.Dispose();
        }
    }
}
