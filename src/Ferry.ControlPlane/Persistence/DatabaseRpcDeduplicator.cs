using System.Collections.Concurrent;
using Ferry.Core.Rpc;

namespace Ferry.ControlPlane.Persistence;

/// <summary>
/// An <see cref="IRpcDeduplicator"/> shared by every replica of a topic through the database: a replica that died
/// between finishing a message and acking it leaves the outcome here, and the replica that gets the redelivery answers
/// with it instead of running the handler again. A claim is renewed by its process while the run goes on (a live
/// migration's cast runs for minutes); one not renewed for the lease (its process died) is taken over. Outcomes are kept
/// for <see cref="Ttl"/>.
/// Its rows are written without waiting for the WAL flush (<see cref="FerryDatabase.WriteHistoryAsync{T}"/>): they are seen by
/// the other replicas at once all the same, and a claim or outcome matters only while the process that wrote it has not
/// yet acked its message, so only a PostgreSQL crash in that same instant could lose one that counts. Waiting for the
/// flush cost two disk flushes per conductor and scheduler message: half the commits of a move, and most of the
/// heartbeats' at 2,000 hosts (BENCHMARKS.md).
/// </summary>
public sealed class DatabaseRpcDeduplicator : IRpcDeduplicator, IDisposable
{
    private readonly Func<FerryDatabase> _database;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, byte> _running = new();
    private int _renewing;
    private readonly ITimer _renewal;
    private readonly Lock _gate = new();
    private TimeSpan _renewedLease;
    private long _nextEvictionMs;

    /// <param name="database">The database, opened on first use (a process that never takes a message never opens it).</param>
    public DatabaseRpcDeduplicator(Func<FerryDatabase> database, TimeProvider time)
    {
        _database = database;
        _time = time;
        _renewal = time.CreateTimer(_ => Renew(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    public TimeSpan Ttl { get; init; } = TimeSpan.FromMinutes(10);

    private long NowMs => _time.GetUtcNow().ToUnixTimeMilliseconds();

    public async ValueTask<RpcClaim> ClaimAsync(string messageId, TimeSpan lease, CancellationToken cancellationToken)
    {
        ScheduleRenewal(lease);
        await EvictOldAsync(cancellationToken);
        var now = NowMs;
        // A first delivery (nearly every one) is a single statement; a redelivery reads the row in a transaction.
        if (await _database().ExecuteHistoryAsync(
                "INSERT INTO rpc_messages(message_id, renewed_ms) VALUES (@id, @now) ON CONFLICT(message_id) DO NOTHING", cancellationToken,
                ("@id", messageId), ("@now", now)) == 1)
        {
            _running[messageId] = 0;
            return RpcClaim.Claimed;
        }
        var claim = await _database().WriteHistoryAsync(async (c, t, ct) =>
        {
            await using var read = FerryDatabase.Command(c, t,
                "SELECT renewed_ms, completed_ms, is_error, outcome FROM rpc_messages WHERE message_id = @id" + _database().Dialect.ForUpdate, ("@id", messageId));
            await using var row = await read.ExecuteReaderAsync(ct);
            if (!await row.ReadAsync(ct))
            {
                return RpcClaim.Busy; // released between the two statements: the next poll claims it
            }
            if (!row.IsDBNull(1))
            {
                return new RpcClaim(RpcClaimState.Done, new RpcOutcome(Convert.ToInt64(row.GetValue(2)) != 0, (byte[])row.GetValue(3)));
            }
            var renewed = Convert.ToInt64(row.GetValue(0));
            await row.CloseAsync();
            if (now - renewed < (long)lease.TotalMilliseconds)
            {
                return RpcClaim.Busy;
            }
            // Its process stopped renewing: it died with the run unfinished, so this delivery runs it again.
            await using var takeOver = FerryDatabase.Command(c, t,
                "UPDATE rpc_messages SET renewed_ms = @now WHERE message_id = @id AND completed_ms IS NULL AND renewed_ms = @renewed",
                ("@id", messageId), ("@now", now), ("@renewed", renewed));
            return await takeOver.ExecuteNonQueryAsync(ct) == 1 ? RpcClaim.Claimed : RpcClaim.Busy;
        }, cancellationToken);
        if (claim.State == RpcClaimState.Claimed)
        {
            _running[messageId] = 0;
        }
        return claim;
    }

    /// <remarks>The outcome of a run that happened is kept whatever the token says: a redelivery must not run it again.</remarks>
    public async ValueTask CompleteAsync(string messageId, RpcOutcome outcome, CancellationToken cancellationToken)
    {
        await _database().ExecuteHistoryAsync(
            "UPDATE rpc_messages SET completed_ms = @now, is_error = @error, outcome = @outcome WHERE message_id = @id", CancellationToken.None,
            ("@id", messageId), ("@now", NowMs), ("@error", outcome.IsError ? 1 : 0), ("@outcome", outcome.Body));
        _running.TryRemove(messageId, out _);
    }

    /// <remarks>Runs whatever the token says: a claim left behind would hold the redelivery off for its lease.</remarks>
    public async ValueTask ReleaseAsync(string messageId, CancellationToken cancellationToken)
    {
        _running.TryRemove(messageId, out _);
        await _database().ExecuteHistoryAsync("DELETE FROM rpc_messages WHERE message_id = @id AND completed_ms IS NULL", CancellationToken.None,
            ("@id", messageId));
    }

    /// <summary>Renews this process's claims a few times per lease, so only a dead process's claims expire.</summary>
    private void ScheduleRenewal(TimeSpan lease)
    {
        lock (_gate)
        {
            if (lease != _renewedLease)
            {
                _renewedLease = lease;
                _renewal.Change(lease / 3, lease / 3);
            }
        }
    }

    /// <remarks>
    /// Synchronous on purpose: a timer tick off every request path, a few times per lease, and a renewal done when the tick
    /// returns (a claim is never seen stale because its renewal was still on its way).
    /// </remarks>
    private void Renew()
    {
        var running = _running.Keys.ToArray();
        // A tick that finds the last one still running leaves it be: ticks piling up would each hold a thread.
        if (running.Length == 0 || Interlocked.Exchange(ref _renewing, 1) == 1)
        {
            return;
        }
        try
        {
            var now = NowMs;
            var database = _database();
            database.WriteHistory((c, t) =>
            {
                if (database.IsShared)
                {
                    // One statement, and rows another transaction holds are skipped, not waited for: that one is writing the
                    // outcome (or a release), after which there is nothing to renew. Waiting here held a thread-pool thread
                    // per tick while the writer's async continuation queued for a thread: under 240 moves at once the
                    // conductors' pools starved and their calls timed out.
                    using var renew = FerryDatabase.Command(c, t,
                        "UPDATE rpc_messages SET renewed_ms = @now WHERE message_id IN " +
                        "(SELECT message_id FROM rpc_messages WHERE message_id = ANY(@ids) AND completed_ms IS NULL FOR UPDATE SKIP LOCKED)",
                        ("@ids", running), ("@now", now));
                    renew.ExecuteNonQuery();
                    return;
                }
                foreach (var id in running)
                {
                    using var renew = FerryDatabase.Command(c, t,
                        "UPDATE rpc_messages SET renewed_ms = @now WHERE message_id = @id AND completed_ms IS NULL", ("@id", id), ("@now", now));
                    renew.ExecuteNonQuery();
                }
            });
        }
        catch (Exception ex) when (ex is System.Data.Common.DbException or DatabaseUnavailableException)
        {
            // The database is away: the next tick renews (a claim outlives a short outage by the rest of its lease).
        }
        finally
        {
            Volatile.Write(ref _renewing, 0);
        }
    }

    /// <summary>Forgets outcomes older than <see cref="Ttl"/>, at most once a minute.</summary>
    private async Task EvictOldAsync(CancellationToken cancellationToken)
    {
        var now = NowMs;
        var next = Interlocked.Read(ref _nextEvictionMs);
        if (now < next || Interlocked.CompareExchange(ref _nextEvictionMs, now + 60_000, next) != next)
        {
            return;
        }
        await _database().WriteHistoryAsync(async (c, t, ct) =>
        {
            await using var delete = FerryDatabase.Command(c, t, "DELETE FROM rpc_messages WHERE completed_ms < @before", ("@before", now - (long)Ttl.TotalMilliseconds));
            await delete.ExecuteNonQueryAsync(ct);
        }, cancellationToken);
    }

    public void Dispose() => _renewal.Dispose();
}
