using System.Data;
using System.Data.Common;
using Ferry.Core.Observability;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Ferry.ControlPlane.Persistence;

/// <summary>
/// The control plane's database, on one of two engines chosen by the connection setting (see
/// <see cref="DatabaseConnection"/>). SQLite, the embedded default, is one connection used under a lock:
/// every store operation is a short synchronous transaction, so serializing them is simpler and faster than
/// pooling and retrying on SQLITE_BUSY. PostgreSQL is a pooled <see cref="NpgsqlDataSource"/> shared by any
/// number of processes, with no process lock: a store that decides from what it reads locks the row
/// (<see cref="SqlDialect.ForUpdate"/>) or makes its UPDATE conditional and counts rows, and ids come from
/// identity columns.
/// </summary>
public sealed partial class FerryDatabase : IDisposable
{
    /// <summary>Key of the PostgreSQL advisory lock that serializes schema upgrades between processes.</summary>
    private const long MigrationLockKey = 0x4665727279_01;

    private const int TransientRetries = 5;

    private readonly SqliteConnection? _sqlite;
    private readonly NpgsqlDataSource? _postgres;
    // Connections whose sessions commit without waiting for the WAL flush, for ExecuteHistoryAsync; opened on first use.
    private readonly Lazy<NpgsqlDataSource>? _postgresHistory;
    // SQLite's one connection, taken by one operation at a time. A semaphore rather than a lock so that an async operation
    // may hold it across its awaits (Microsoft.Data.Sqlite's async methods complete synchronously, so it is held as briefly);
    // always taken by a blocking wait (see EnterSqlite).
    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <param name="connection">A SQLite file path (or <c>sqlite:PATH</c>, or <c>:memory:</c>), a
    /// <c>postgresql://user@host:port/db</c> URI or an Npgsql keyword string (<c>Host=…;Database=…</c>).</param>
    public FerryDatabase(string connection)
    {
        var parsed = DatabaseConnection.Parse(connection);
        Dialect = parsed.Engine == DatabaseEngine.PostgreSql ? SqlDialect.PostgreSql : SqlDialect.Sqlite;
        Description = parsed.Description;
        if (parsed.Engine == DatabaseEngine.PostgreSql)
        {
            var tuned = WithFerryDefaults(parsed.ConnectionString);
            _postgres = NpgsqlDataSource.Create(tuned);
            _postgresHistory = new Lazy<NpgsqlDataSource>(() => NpgsqlDataSource.Create(WithoutFlushWait(tuned)));
            return;
        }
        var path = parsed.ConnectionString;
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
        _sqlite = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
        }.ToString());
        _sqlite.Open();
        using var pragmas = Command(_sqlite, null, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;");
        pragmas.ExecuteNonQuery();
    }

    /// <summary>
    /// Lets the thread pool add threads at once up to the connection pool's size and a margin. A synchronous call blocks
    /// a thread while it waits for a pooled connection that an async write may hold, and that write needs a thread for its
    /// next step: with the pool's slow thread injection, 240 moves at once starved a conductor while most stores were
    /// synchronous (threads in <c>Open</c>, transactions idle mid-way, calls timing out after 60 s). Every store is async
    /// now; this stays as a guard for the synchronous paths left (the deduplicator's renewal tick, start-up). Called by the
    /// <c>ferry</c> program for a PostgreSQL database, not here: it sets the whole process's pool.
    /// </summary>
    public static void EnsureThreadsForPool(string connection)
    {
        var maxPoolSize = new NpgsqlConnectionStringBuilder(DatabaseConnection.Parse(connection).ConnectionString).MaxPoolSize;
        ThreadPool.GetMinThreads(out var workers, out var completionPorts);
        var wanted = maxPoolSize + 32;
        if (workers < wanted)
        {
            ThreadPool.SetMinThreads(wanted, completionPorts);
        }
    }

    public SqlDialect Dialect { get; }

    /// <summary>
    /// Ferry's defaults over an operator's connection string (a keyword the operator gave wins):
    /// <list type="bullet">
    /// <item>No Reset On Close: Ferry's sessions keep no state between uses (SET LOCAL and transaction-scoped advisory locks
    /// only; no SET, LISTEN, session lock or temp table), so a connection going back to the pool needs no <c>DISCARD ALL</c>:
    /// that was one more round trip on every store call (21 per live migration).</item>
    /// <item>Max Auto Prepare: the stores run a few hundred distinct statements over and over; prepared on a connection after
    /// their second use, PostgreSQL no longer parses and plans each run (its CPU was half the machine's in 240 moves at once).</item>
    /// </list>
    /// </summary>
    internal static string WithFerryDefaults(string connectionString)
    {
        // The plain builder: Npgsql's own says it "contains" every keyword it knows, set or not.
        var given = new DbConnectionStringBuilder { ConnectionString = connectionString };
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (!given.ContainsKey("No Reset On Close") && !given.ContainsKey("NoResetOnClose"))
        {
            builder.NoResetOnClose = true;
        }
        if (!given.ContainsKey("Max Auto Prepare") && !given.ContainsKey("MaxAutoPrepare"))
        {
            builder.MaxAutoPrepare = AutoPreparedStatements;
            builder.AutoPrepareMinUsages = 2;
        }
        return builder.ConnectionString;
    }

    /// <summary>
    /// The same database for <see cref="ExecuteHistoryAsync"/>: every session commits without waiting for its WAL flush
    /// (<c>synchronous_commit</c> off from the connection's start-up options), at most <see cref="HistoryConnections"/> of them.
    /// </summary>
    internal static string WithoutFlushWait(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        builder.Options = $"{builder.Options} -c synchronous_commit=off".TrimStart();
        builder.MaxPoolSize = Math.Min(builder.MaxPoolSize, HistoryConnections);
        builder.MinPoolSize = 0;
        return builder.ConnectionString;
    }

    // History statements are one short round trip each: a few connections carry a process's share.
    private const int HistoryConnections = 16;

    // Room for every statement the stores, placement and the deduplicator run (~150 distinct texts) on each connection.
    private const int AutoPreparedStatements = 256;

    /// <summary>
    /// PostgreSQL: how long an operation keeps trying while the server cannot be reached (down, restarting, or every
    /// pooled connection broken by a restart) before it throws <see cref="DatabaseUnavailableException"/>.
    /// </summary>
    public TimeSpan UnavailableWait { get; set; } = TimeSpan.FromSeconds(30);

    private static readonly TimeSpan s_unavailableRetryInterval = TimeSpan.FromMilliseconds(250);

    /// <summary>True when other processes may write the same database (PostgreSQL): in-memory caches must re-check it.</summary>
    public bool IsShared => _postgres is not null;

    /// <summary>The engine and where it is, without credentials (for logs and errors).</summary>
    public string Description { get; }

    /// <summary>
    /// Brings one component's schema up to date: runs each script whose index is at or above the recorded
    /// version, in order, in one transaction. Scripts are only ever appended; a database already at a later
    /// version (a newer Ferry ran) is left as it is. On PostgreSQL an advisory lock makes processes that start
    /// together upgrade one after the other.
    /// </summary>
    public void Migrate(string component, IReadOnlyList<string> scripts)
    {
        Write((connection, transaction) =>
        {
            if (IsShared)
            {
                using var gate = Command(connection, transaction, "SELECT pg_advisory_xact_lock(@k)", ("@k", MigrationLockKey));
                gate.ExecuteNonQuery();
            }
            using (var create = Command(connection, transaction, "CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"))
            {
                create.ExecuteNonQuery();
            }
            var current = Version(connection, transaction, component);
            if (current >= scripts.Count)
            {
                return;
            }
            for (var i = current; i < scripts.Count; i++)
            {
                using var step = Command(connection, transaction, Dialect.Translate(scripts[i]));
                step.ExecuteNonQuery();
            }
            using var save = Command(connection, transaction,
                "INSERT INTO schema_version(component, version) VALUES (@c, @v) ON CONFLICT(component) DO UPDATE SET version = @v",
                ("@c", component), ("@v", scripts.Count));
            save.ExecuteNonQuery();
        });
    }

    /// <summary>
    /// Opens a connection and runs a trivial query, so a process fails at start, in one line naming the database,
    /// rather than on its first request.
    /// </summary>
    /// <exception cref="DatabaseUnavailableException">The server cannot be reached or refuses the login.</exception>
    public void CheckReachable()
    {
        try
        {
            // Once, without waiting for the server: a start names the database at once.
            ReadOnce(connection =>
            {
                using var ping = Command(connection, null, "SELECT 1");
                return ping.ExecuteScalar();
            });
        }
        catch (Exception e) when (e is DbException or TimeoutException or System.Net.Sockets.SocketException)
        {
            throw new DatabaseUnavailableException(Description, e);
        }
    }

    /// <summary>The recorded schema version of a component; 0 when it has none yet.</summary>
    public int SchemaVersion(string component) =>
        Read(connection =>
        {
            using var exists = Command(connection, null, IsShared
                ? "SELECT to_regclass('schema_version') IS NOT NULL"
                : "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'");
            return Convert.ToBoolean(exists.ExecuteScalar()) ? Version(connection, null, component) : 0;
        });

    private static int Version(DbConnection connection, DbTransaction? transaction, string component)
    {
        using var read = Command(connection, transaction, "SELECT version FROM schema_version WHERE component = @c", ("@c", component));
        return Convert.ToInt32(read.ExecuteScalar() ?? 0);
    }

    public T Read<T>(Func<DbConnection, T> read) => DatabaseMetrics.Measure("read", () => ReadUnmeasured(read));

    private T ReadUnmeasured<T>(Func<DbConnection, T> read)
    {
        if (_postgres is null)
        {
            return ReadOnce(read);
        }
        return WhileReachable(() => ReadOnce(read));
    }

    private T ReadOnce<T>(Func<DbConnection, T> read)
    {
        if (_postgres is null)
        {
            _gate.Wait();
            try
            {
                return read(_sqlite!);
            }
            finally
            {
                _gate.Release();
            }
        }
        using var connection = _postgres.OpenConnection();
        return read(connection);
    }

    /// <summary>
    /// Runs <paramref name="operation"/>, and again while the server cannot be reached, for at most
    /// <see cref="UnavailableWait"/>. A failure of the connection drops every pooled one: after a server restart they are
    /// all broken, and each would fail once more. A commit whose connection broke is not run again (it may have landed).
    /// </summary>
    private T WhileReachable<T>(Func<T> operation)
    {
        var started = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return operation();
            }
            catch (Exception e) when (IsConnectionFailure(e))
            {
                _postgres!.Clear();
                if (e is CommitFailedException || started.Elapsed + s_unavailableRetryInterval > UnavailableWait)
                {
                    throw new DatabaseUnavailableException(Description, e is CommitFailedException ? e.InnerException! : e);
                }
                Thread.Sleep(s_unavailableRetryInterval);
            }
        }
    }

    /// <summary>The server is away or the connection broke (not a deadlock: <see cref="SqlDialect.IsTransient"/> runs those again).</summary>
    private static bool IsConnectionFailure(Exception e) =>
        e is CommitFailedException
        || (e is NpgsqlException { IsTransient: true } npgsql && !SqlDialect.IsTransient(npgsql))
        || (e is InvalidOperationException && e.InnerException is NpgsqlException { IsTransient: true });

    private sealed class CommitFailedException(Exception inner) : Exception(inner.Message, inner);

    /// <summary>
    /// Runs <paramref name="read"/> on one consistent snapshot of the whole database (PostgreSQL's REPEATABLE
    /// READ), for a reader that must see several tables as of one moment.
    /// </summary>
    public T Snapshot<T>(Func<DbConnection, DbTransaction, T> read)
    {
        if (_postgres is null)
        {
            return Write(read);
        }
        return WhileReachable(() =>
        {
            using var connection = _postgres.OpenConnection();
            using var transaction = connection.BeginTransaction(IsolationLevel.RepeatableRead);
            var result = read(connection, transaction);
            transaction.Commit();
            return result;
        });
    }

    /// <summary>
    /// Runs <paramref name="write"/> in one transaction and commits it; an exception rolls everything back.
    /// On PostgreSQL a deadlock or serialization failure runs it again (so it must not depend on having run once).
    /// </summary>
    public T Write<T>(Func<DbConnection, DbTransaction, T> write) => DatabaseMetrics.Measure("write", () => WriteUnmeasured(write));

    private T WriteUnmeasured<T>(Func<DbConnection, DbTransaction, T> write)
    {
        if (_postgres is null)
        {
            _gate.Wait();
            try
            {
                using var transaction = _sqlite!.BeginTransaction();
                var result = write(_sqlite, transaction);
                transaction.Commit();
                return result;
            }
            finally
            {
                _gate.Release();
            }
        }
        return WhileReachable(() =>
        {
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    using var connection = _postgres.OpenConnection();
                    using var transaction = connection.BeginTransaction(IsolationLevel.ReadCommitted);
                    var result = write(connection, transaction);
                    try
                    {
                        transaction.Commit();
                    }
                    catch (Exception e) when (IsConnectionFailure(e))
                    {
                        throw new CommitFailedException(e);
                    }
                    return result;
                }
                catch (DbException e) when (attempt < TransientRetries && SqlDialect.IsTransient(e))
                {
                    // Another transaction held rows this one needed in the other order: run it again.
                }
            }
        });
    }

    public void Write(Action<DbConnection, DbTransaction> write) =>
        Write<int>((c, t) =>
        {
            write(c, t);
            return 0;
        });

    /// <summary>
    /// <see cref="Write"/> for rows that are history only (an instance action's events): on PostgreSQL the commit does not
    /// wait for its WAL flush (<c>synchronous_commit</c> off for this transaction alone), which saves a disk flush on each of
    /// the ten events a move records. A PostgreSQL crash may lose the last such rows (never half of one, never a durable
    /// row: every later durable commit flushes them with it); no move decides anything from them.
    /// </summary>
    public void WriteHistory(Action<DbConnection, DbTransaction> write) =>
        WriteHistory<int>((c, t) =>
        {
            write(c, t);
            return 0;
        });

    /// <inheritdoc cref="WriteHistory(Action{DbConnection, DbTransaction})"/>
    public T WriteHistory<T>(Func<DbConnection, DbTransaction, T> write) =>
        Write((c, t) =>
        {
            CommitWithoutFlush(c, t);
            return write(c, t);
        });

    /// <summary>
    /// Lets the commit of transaction <paramref name="t"/> return before its WAL flush (PostgreSQL; SQLite commits the same
    /// way either way), for a write a crash may lose at no cost: <see cref="WriteHistory{T}"/>, or a heartbeat's time.
    /// </summary>
    public void CommitWithoutFlush(DbConnection c, DbTransaction t)
    {
        if (_postgres is not null)
        {
            using var relax = Command(c, t, "SET LOCAL synchronous_commit TO OFF");
            relax.ExecuteNonQuery();
        }
    }

    /// <summary>Builds a parameterized command (<c>@name</c> parameters); null values become SQL NULL.</summary>
    public static DbCommand Command(DbConnection connection, DbTransaction? transaction, string sql, params (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.Add(Parameter(command.CreateParameter(), name, value));
        }
        return command;
    }

    /// <summary><see cref="Command"/> for one statement of a <see cref="DbBatch"/>, added to it.</summary>
    public static void AddBatchCommand(DbBatch batch, string sql, params (string Name, object? Value)[] parameters)
    {
        var command = batch.CreateBatchCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.Add(Parameter(command.CreateParameter(), name, value));
        }
        batch.BatchCommands.Add(command);
    }

    private static DbParameter Parameter(DbParameter parameter, string name, object? value)
    {
        parameter.ParameterName = name;
        parameter.Value = value ?? DBNull.Value;
        return parameter;
    }

    public void Dispose()
    {
        _postgres?.Dispose();
        if (_postgresHistory is { IsValueCreated: true })
        {
            _postgresHistory.Value.Dispose();
        }
        _gate.Wait();
        try
        {
            _sqlite?.Dispose();
        }
        finally
        {
            _gate.Release();
        }
    }
}
