using System.Data;
using System.Data.Common;
using Ferry.Core.Observability;

namespace Ferry.ControlPlane.Persistence;

/// <summary>
/// The asynchronous forms of the database's operations. On PostgreSQL they wait for the server without holding a thread
/// (Npgsql's async I/O); on SQLite they run as the synchronous ones do (Microsoft.Data.Sqlite's async methods complete
/// synchronously), one at a time on its one connection.
/// </summary>
/// <remarks>
/// A read hands its delegate the caller's token: an abandoned read changes nothing. A write honours the token only until
/// its transaction begins (waiting for the connection, or for an unreachable server between attempts); once begun it runs
/// to its commit with <see cref="CancellationToken.None"/>, so a state change is never left half made because a client
/// went away.
/// </remarks>
public sealed partial class FerryDatabase
{
    /// <summary>
    /// Takes SQLite's one connection, blocking the thread. Never by <c>WaitAsync</c>: a waiter queued that way is handed the
    /// connection on release but needs a pool thread to go on, while the threads blocked in the synchronous forms hold the pool;
    /// 2,000 hosts starting at once starved it so (conductor calls timed out after 60 s). Nothing awaited under the connection
    /// yields (SQLite's async methods complete synchronously), so the holder never needs another thread either.
    /// </summary>
    private void EnterSqlite(CancellationToken cancellationToken) => _gate.Wait(cancellationToken);

    /// <inheritdoc cref="Read{T}(Func{DbConnection, T})"/>
    public Task<T> ReadAsync<T>(Func<DbConnection, CancellationToken, Task<T>> read, CancellationToken cancellationToken) =>
        DatabaseMetrics.MeasureAsync("read", () => ReadUnmeasuredAsync(read, cancellationToken));

    private async Task<T> ReadUnmeasuredAsync<T>(Func<DbConnection, CancellationToken, Task<T>> read, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (_postgres is null)
        {
            EnterSqlite(cancellationToken);
            try
            {
                return await read(_sqlite!, cancellationToken);
            }
            finally
            {
                _gate.Release();
            }
        }
        return await WhileReachableAsync(async () =>
        {
            await using var connection = await _postgres.OpenConnectionAsync(cancellationToken);
            return await read(connection, cancellationToken);
        }, cancellationToken);
    }

    /// <inheritdoc cref="Snapshot{T}(Func{DbConnection, DbTransaction, T})"/>
    public Task<T> SnapshotAsync<T>(Func<DbConnection, DbTransaction, CancellationToken, Task<T>> read, CancellationToken cancellationToken) =>
        DatabaseMetrics.MeasureAsync("read", () => SnapshotUnmeasuredAsync(read, cancellationToken));

    private async Task<T> SnapshotUnmeasuredAsync<T>(Func<DbConnection, DbTransaction, CancellationToken, Task<T>> read, CancellationToken cancellationToken)
    {
        if (_postgres is null)
        {
            EnterSqlite(cancellationToken);
            try
            {
                // SQLite's one connection already sees one moment; the transaction keeps it so across statements.
                await using var transaction = await _sqlite!.BeginTransactionAsync(cancellationToken);
                var result = await read(_sqlite, transaction, cancellationToken);
                await transaction.CommitAsync(CancellationToken.None);
                return result;
            }
            finally
            {
                _gate.Release();
            }
        }
        return await WhileReachableAsync(async () =>
        {
            await using var connection = await _postgres.OpenConnectionAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, cancellationToken);
            var result = await read(connection, transaction, cancellationToken);
            await transaction.CommitAsync(CancellationToken.None);
            return result;
        }, cancellationToken);
    }

    /// <summary>
    /// Runs <paramref name="write"/> in one transaction and commits it; an exception rolls everything back. On PostgreSQL a
    /// deadlock or serialization failure runs it again (so it must not depend on having run once).
    /// <paramref name="cancellationToken"/> stops the wait for a connection; the delegate gets <see cref="CancellationToken.None"/>,
    /// so a write that has begun completes.
    /// </summary>
    public Task<T> WriteAsync<T>(Func<DbConnection, DbTransaction, CancellationToken, Task<T>> write, CancellationToken cancellationToken) =>
        DatabaseMetrics.MeasureAsync("write", () => WriteUnmeasuredAsync(write, cancellationToken));

    /// <inheritdoc cref="WriteAsync{T}(Func{DbConnection, DbTransaction, CancellationToken, Task{T}}, CancellationToken)"/>
    public Task WriteAsync(Func<DbConnection, DbTransaction, CancellationToken, Task> write, CancellationToken cancellationToken) =>
        WriteAsync<int>(async (c, t, ct) =>
        {
            await write(c, t, ct);
            return 0;
        }, cancellationToken);

    private async Task<T> WriteUnmeasuredAsync<T>(Func<DbConnection, DbTransaction, CancellationToken, Task<T>> write, CancellationToken cancellationToken)
    {
        // Npgsql hands out an idle pooled connection without looking at the token: check it before anything begins.
        cancellationToken.ThrowIfCancellationRequested();
        if (_postgres is null)
        {
            EnterSqlite(cancellationToken);
            try
            {
                await using var transaction = await _sqlite!.BeginTransactionAsync(CancellationToken.None);
                var result = await write(_sqlite, transaction, CancellationToken.None);
                await transaction.CommitAsync(CancellationToken.None);
                return result;
            }
            finally
            {
                _gate.Release();
            }
        }
        return await WhileReachableAsync(async () =>
        {
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    await using var connection = await _postgres.OpenConnectionAsync(cancellationToken);
                    await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.ReadCommitted, CancellationToken.None);
                    var result = await write(connection, transaction, CancellationToken.None);
                    try
                    {
                        await transaction.CommitAsync(CancellationToken.None);
                    }
                    catch (Exception e) when (IsConnectionFailure(e))
                    {
                        throw new CommitFailedException(e);
                    }
                    return result;
                }
                catch (DbException e) when (attempt < TransientRetries && SqlDialect.IsTransient(e))
                {
                    // Another transaction held rows this one needed in the other order: run it again (it rolled back).
                }
            }
        }, cancellationToken);
    }

    /// <summary>
    /// <see cref="WriteAsync{T}"/> for rows that are history only: the commit does not wait for its WAL flush (see
    /// <see cref="WriteHistory{T}(Func{DbConnection, DbTransaction, T})"/>).
    /// </summary>
    public Task<T> WriteHistoryAsync<T>(Func<DbConnection, DbTransaction, CancellationToken, Task<T>> write, CancellationToken cancellationToken) =>
        WriteAsync(async (c, t, ct) =>
        {
            await CommitWithoutFlushAsync(c, t, ct);
            return await write(c, t, ct);
        }, cancellationToken);

    /// <inheritdoc cref="WriteHistoryAsync{T}(Func{DbConnection, DbTransaction, CancellationToken, Task{T}}, CancellationToken)"/>
    public Task WriteHistoryAsync(Func<DbConnection, DbTransaction, CancellationToken, Task> write, CancellationToken cancellationToken) =>
        WriteHistoryAsync<int>(async (c, t, ct) =>
        {
            await write(c, t, ct);
            return 0;
        }, cancellationToken);

    /// <summary>
    /// One statement on rows that are history only (see <see cref="WriteHistory{T}(Func{DbConnection, DbTransaction, T})"/>),
    /// as its own transaction, committed without waiting for its WAL flush. On PostgreSQL it is one round trip on a connection
    /// whose sessions run with <c>synchronous_commit</c> off, where <see cref="WriteHistoryAsync{T}"/> takes four (BEGIN,
    /// SET LOCAL, the statement, COMMIT): the RPC deduplicator writes two such rows for every message. A connection lost
    /// mid-way runs it again, so it must be safe to run twice. Returns the rows it changed.
    /// </summary>
    /// <remarks>A write: <paramref name="cancellationToken"/> only stops the wait for a connection.</remarks>
    public Task<int> ExecuteHistoryAsync(string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters) =>
        WithoutFlushAsync(sql, parameters, (command, ct) => command.ExecuteNonQueryAsync(ct), cancellationToken);

    /// <summary>
    /// One statement that returns rows (<c>UPDATE … RETURNING</c>), as its own transaction, committed without waiting for
    /// its WAL flush, on the connections of <see cref="ExecuteHistoryAsync"/> (PostgreSQL: one round trip, no BEGIN, SET LOCAL
    /// or COMMIT). For writes that a PostgreSQL crash may lose because the next one makes them again (a heartbeat). A
    /// connection lost mid-way runs it again, so it must be safe to run twice. Returns its first row, mapped, or null.
    /// </summary>
    /// <remarks>A write: <paramref name="cancellationToken"/> only stops the wait for a connection.</remarks>
    public Task<T?> QueryFirstWithoutFlushAsync<T>(string sql, Func<DbDataReader, T> map, CancellationToken cancellationToken,
        params (string Name, object? Value)[] parameters) where T : class =>
        WithoutFlushAsync(sql, parameters, (command, ct) => Rows.ReadFirstAsync(command, map, ct), cancellationToken);

    /// <summary>
    /// <see cref="QueryFirstWithoutFlushAsync{T}"/> for a statement whose every row is wanted (heartbeats written in a
    /// group): all of them, mapped.
    /// </summary>
    /// <remarks>A write: <paramref name="cancellationToken"/> only stops the wait for a connection.</remarks>
    public Task<List<T>> QueryAllWithoutFlushAsync<T>(string sql, Func<DbDataReader, T> map, CancellationToken cancellationToken,
        params (string Name, object? Value)[] parameters) =>
        WithoutFlushAsync(sql, parameters, (command, ct) => Rows.ReadAllAsync(command, map, ct), cancellationToken);

    /// <summary>
    /// Runs one statement as its own transaction without waiting for its WAL flush: on PostgreSQL on the no-flush
    /// connections, retried while the server is unreachable (a begun statement finishes whatever the token); on SQLite
    /// as an ordinary write.
    /// </summary>
    private Task<T> WithoutFlushAsync<T>(string sql, (string Name, object? Value)[] parameters, Func<DbCommand, CancellationToken, Task<T>> run,
        CancellationToken cancellationToken) =>
        DatabaseMetrics.MeasureAsync("write", () =>
        {
            if (_postgresHistory is null)
            {
                return WriteUnmeasuredAsync(async (c, t, ct) =>
                {
                    await using var command = Command(c, t, sql, parameters);
                    return await run(command, ct);
                }, cancellationToken);
            }
            cancellationToken.ThrowIfCancellationRequested();
            return WhileReachableAsync(async () =>
            {
                await using var connection = await _postgresHistory.Value.OpenConnectionAsync(cancellationToken);
                await using var command = Command(connection, null, sql, parameters);
                return await run(command, CancellationToken.None);
            }, cancellationToken);
        });

    /// <inheritdoc cref="CommitWithoutFlush(DbConnection, DbTransaction)"/>
    public async Task CommitWithoutFlushAsync(DbConnection c, DbTransaction t, CancellationToken cancellationToken)
    {
        if (_postgres is not null)
        {
            await using var relax = Command(c, t, "SET LOCAL synchronous_commit TO OFF");
            await relax.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    /// <summary>The asynchronous form of <see cref="WhileReachable{T}"/>: the wait between attempts holds no thread and ends on cancellation.</summary>
    private async Task<T> WhileReachableAsync<T>(Func<Task<T>> operation, CancellationToken cancellationToken)
    {
        var started = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return await operation();
            }
            catch (Exception e) when (IsConnectionFailure(e))
            {
                _postgres!.Clear();
                if (_postgresHistory is { IsValueCreated: true })
                {
                    _postgresHistory.Value.Clear();
                }
                if (e is CommitFailedException || started.Elapsed + s_unavailableRetryInterval > UnavailableWait)
                {
                    throw new DatabaseUnavailableException(Description, e is CommitFailedException ? e.InnerException! : e);
                }
                await Task.Delay(s_unavailableRetryInterval, cancellationToken);
            }
        }
    }

    /// <summary>Runs <paramref name="command"/> (and disposes it), returning the rows it changed.</summary>
    public static async Task<int> ExecuteAsync(DbCommand command, CancellationToken cancellationToken)
    {
        await using (command)
        {
            return await command.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    /// <summary>Runs <paramref name="command"/> (and disposes it), returning the first column of its first row, or null.</summary>
    public static async Task<object?> ScalarAsync(DbCommand command, CancellationToken cancellationToken)
    {
        await using (command)
        {
            var value = await command.ExecuteScalarAsync(cancellationToken);
            return value is DBNull ? null : value;
        }
    }
}
