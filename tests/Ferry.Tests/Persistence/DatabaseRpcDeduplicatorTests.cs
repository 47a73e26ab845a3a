using Ferry.ControlPlane.Persistence;
using Ferry.Core.Rpc;
using Ferry.Tests.Shared;
using Microsoft.Extensions.Time.Testing;

namespace Ferry.Tests.Persistence;

public sealed class SqliteRpcDeduplicatorTests() : DatabaseRpcDeduplicatorTests(DatabaseEngine.Sqlite);

[Collection(PostgresServer.Collection)]
public sealed class PostgresRpcDeduplicatorTests() : DatabaseRpcDeduplicatorTests(DatabaseEngine.PostgreSql);

/// <summary>
/// The deduplicator the replicas of a topic share through the database, on each engine. Two instances over one
/// database are two replicas (on PostgreSQL each has its own connection pool, as separate processes would).
/// </summary>
public abstract class DatabaseRpcDeduplicatorTests : IDisposable
{
    private static readonly TimeSpan s_lease = TimeSpan.FromSeconds(30);
    private static readonly RpcOutcome s_reply = new(false, [1, 2, 3]);

    private readonly TestDatabase _files;
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 5, 0, 0, 0, TimeSpan.Zero));
    private readonly DatabaseRpcDeduplicator _replica1;
    private readonly DatabaseRpcDeduplicator _replica2;

    protected DatabaseRpcDeduplicatorTests(DatabaseEngine engine)
    {
        _files = new TestDatabase(engine);
        var first = _files.Open();
        DatabaseSchema.Sync(first);
        var second = _files.Open();
        _replica1 = new DatabaseRpcDeduplicator(() => first, _time);
        _replica2 = new DatabaseRpcDeduplicator(() => second, _time);
    }

    public void Dispose()
    {
        _replica1.Dispose();
        _replica2.Dispose();
        _files.Dispose();
    }

    [Fact]
    public async Task ClaimAsync_FirstDelivery_ClaimsAndRedeliveryToOtherReplicaIsBusy()
    {
        Assert.Equal(RpcClaimState.Claimed, (await _replica1.ClaimAsync("m1", s_lease, default)).State);

        Assert.Equal(RpcClaimState.Busy, (await _replica2.ClaimAsync("m1", s_lease, default)).State);
    }

    [Fact]
    public async Task ClaimAsync_FinishedOnOneReplica_OtherGetsTheRecordedOutcome()
    {
        await _replica1.ClaimAsync("m1", s_lease, default);
        await _replica1.CompleteAsync("m1", s_reply, default);
        await _replica1.ClaimAsync("m2", s_lease, default);
        await _replica1.CompleteAsync("m2", new RpcOutcome(true, [9]), default);

        var done = await _replica2.ClaimAsync("m1", s_lease, default);
        var failed = await _replica2.ClaimAsync("m2", s_lease, default);

        Assert.Equal(RpcClaimState.Done, done.State);
        Assert.Equal(s_reply.Body, done.Outcome!.Body);
        Assert.False(done.Outcome.IsError);
        Assert.Equal((RpcClaimState.Done, true), (failed.State, failed.Outcome!.IsError));
        Assert.Equal([9], failed.Outcome.Body);
    }

    [Fact]
    public async Task ClaimAsync_AfterRelease_OtherReplicaClaims()
    {
        await _replica1.ClaimAsync("m1", s_lease, default);
        await _replica1.ReleaseAsync("m1", default);

        Assert.Equal(RpcClaimState.Claimed, (await _replica2.ClaimAsync("m1", s_lease, default)).State);
    }

    [Fact]
    public async Task ClaimAsync_RunRenewedLongerThanLease_StaysBusy()
    {
        // A live migration's cast runs for minutes: its replica renews the claim, so no redelivery runs it twice.
        await _replica1.ClaimAsync("m1", s_lease, default);
        for (var i = 0; i < 12; i++)
        {
            _time.Advance(s_lease / 3); // each step fires the renewal timer of replica 1
        }

        Assert.Equal(RpcClaimState.Busy, (await _replica2.ClaimAsync("m1", s_lease, default)).State);
    }

    [Fact]
    public async Task ClaimAsync_ClaimOfADeadReplica_TakenOverAfterTheLease()
    {
        await _replica1.ClaimAsync("m1", s_lease, default);
        _replica1.Dispose(); // its process died: nothing renews the claim any more
        _time.Advance(s_lease - TimeSpan.FromSeconds(1));
        Assert.Equal(RpcClaimState.Busy, (await _replica2.ClaimAsync("m1", s_lease, default)).State);

        _time.Advance(TimeSpan.FromSeconds(2));

        Assert.Equal(RpcClaimState.Claimed, (await _replica2.ClaimAsync("m1", s_lease, default)).State);
        await _replica2.CompleteAsync("m1", s_reply, default);
        Assert.Equal(RpcClaimState.Done, (await _replica2.ClaimAsync("m1", s_lease, default)).State);
    }

    [Fact]
    public async Task ClaimAsync_OutcomeOlderThanTtl_IsForgotten()
    {
        await _replica1.ClaimAsync("m1", s_lease, default);
        await _replica1.CompleteAsync("m1", s_reply, default);
        _time.Advance(TimeSpan.FromMinutes(11));

        await _replica1.ClaimAsync("m-later", s_lease, default); // a later message's claim sweeps what aged out

        Assert.Equal(RpcClaimState.Claimed, (await _replica2.ClaimAsync("m1", s_lease, default)).State);
    }
}
