using Ferry.Core.Rpc;

namespace Ferry.Tests.Core.Rpc;

public sealed class InMemoryRpcDeduplicatorTests
{
    private static readonly TimeSpan s_lease = TimeSpan.FromMinutes(1);
    private static readonly RpcOutcome s_reply = new(false, [1, 2, 3]);

    private sealed class ManualTime : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = new(2026, 12, 4, 0, 0, 0, TimeSpan.Zero);
        public override DateTimeOffset GetUtcNow() => Now;
    }

    [Fact]
    public async Task ClaimAsync_FirstDelivery_Claims()
    {
        var dedup = new InMemoryRpcDeduplicator();

        Assert.Equal(RpcClaimState.Claimed, (await dedup.ClaimAsync("m1", s_lease, default)).State);
    }

    [Fact]
    public async Task ClaimAsync_RedeliveryWhileFirstRuns_IsBusy()
    {
        var dedup = new InMemoryRpcDeduplicator();
        await dedup.ClaimAsync("m1", s_lease, default);

        Assert.Equal(RpcClaimState.Busy, (await dedup.ClaimAsync("m1", s_lease, default)).State);
    }

    [Fact]
    public async Task ClaimAsync_RedeliveryAfterCompletion_IsDoneWithRecordedReply()
    {
        var dedup = new InMemoryRpcDeduplicator();
        await dedup.ClaimAsync("m1", s_lease, default);
        await dedup.CompleteAsync("m1", s_reply, default);

        var claim = await dedup.ClaimAsync("m1", s_lease, default);

        Assert.Equal(RpcClaimState.Done, claim.State);
        Assert.Same(s_reply, claim.Outcome);
    }

    [Fact]
    public async Task ClaimAsync_AfterRelease_ClaimsAgain()
    {
        var dedup = new InMemoryRpcDeduplicator();
        await dedup.ClaimAsync("m1", s_lease, default);
        await dedup.ReleaseAsync("m1", default);

        Assert.Equal(RpcClaimState.Claimed, (await dedup.ClaimAsync("m1", s_lease, default)).State);
    }

    [Fact]
    public async Task ClaimAsync_RunLongerThanLeaseAndTtl_StaysBusyUntilItEnds()
    {
        // A live migration's cast runs for many minutes; a redelivery during it must wait, never run it twice.
        var time = new ManualTime();
        var dedup = new InMemoryRpcDeduplicator(time) { Ttl = TimeSpan.FromMinutes(10) };
        await dedup.ClaimAsync("m1", s_lease, default);
        time.Now += TimeSpan.FromHours(2);

        Assert.Equal(RpcClaimState.Busy, (await dedup.ClaimAsync("m1", s_lease, default)).State);
        await dedup.CompleteAsync("m1", s_reply, default);
        Assert.Equal(RpcClaimState.Done, (await dedup.ClaimAsync("m1", s_lease, default)).State);
    }

    [Fact]
    public async Task ClaimAsync_OutcomeOlderThanTtl_IsForgotten()
    {
        var time = new ManualTime();
        var dedup = new InMemoryRpcDeduplicator(time) { Ttl = TimeSpan.FromMinutes(10) };
        await dedup.ClaimAsync("m1", s_lease, default);
        await dedup.CompleteAsync("m1", s_reply, default);
        time.Now += TimeSpan.FromMinutes(11);

        Assert.Equal(RpcClaimState.Claimed, (await dedup.ClaimAsync("m1", s_lease, default)).State);
        Assert.Equal(1, dedup.Count);
    }

    [Fact]
    public async Task ClaimAsync_MoreThanCapacity_KeepsAtMostCapacityPlusOne()
    {
        var dedup = new InMemoryRpcDeduplicator { Capacity = 100 };
        for (var i = 0; i < 1000; i++)
        {
            await dedup.ClaimAsync($"m{i}", s_lease, default);
            await dedup.CompleteAsync($"m{i}", s_reply, default);
        }

        Assert.True(dedup.Count <= 101, $"{dedup.Count} entries kept");
        Assert.Equal(RpcClaimState.Done, (await dedup.ClaimAsync("m999", s_lease, default)).State);
    }
}
