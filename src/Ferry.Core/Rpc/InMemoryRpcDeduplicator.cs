using System.Collections.Concurrent;

namespace Ferry.Core.Rpc;

/// <summary>
/// The default <see cref="IRpcDeduplicator"/>: message ids of one process. A claim lives until its run completes or
/// releases it; the lease is not needed, since every run is in this process and a run that died took the process
/// (and this memory) with it. An outcome is kept for <see cref="Ttl"/> after it was recorded, and at most
/// <see cref="Capacity"/> outcomes (the oldest go first): a redelivery comes within seconds of the broker's
/// restart, so both bounds are generous, and a forgotten id only means the handler runs again.
/// </summary>
public sealed class InMemoryRpcDeduplicator(TimeProvider timeProvider) : IRpcDeduplicator
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new();
    private readonly ConcurrentQueue<(string Id, long Stamp, DateTimeOffset At)> _order = new();
    private readonly Lock _evictLock = new();
    private long _stamps;

    public InMemoryRpcDeduplicator() : this(TimeProvider.System)
    {
    }

    public int Capacity { get; init; } = 10_000;
    public TimeSpan Ttl { get; init; } = TimeSpan.FromMinutes(10);

    public int Count => _entries.Count;

    public ValueTask<RpcClaim> ClaimAsync(string messageId, TimeSpan lease, CancellationToken cancellationToken)
    {
        Evict(timeProvider.GetUtcNow());
        if (_entries.TryAdd(messageId, new Entry(Interlocked.Increment(ref _stamps), null)))
        {
            return ValueTask.FromResult(RpcClaim.Claimed);
        }
        if (!_entries.TryGetValue(messageId, out var entry))
        {
            // Released between the two looks: the caller's next poll claims it.
            return ValueTask.FromResult(RpcClaim.Busy);
        }
        return ValueTask.FromResult(entry.Outcome is null ? RpcClaim.Busy : new RpcClaim(RpcClaimState.Done, entry.Outcome));
    }

    public ValueTask CompleteAsync(string messageId, RpcOutcome outcome, CancellationToken cancellationToken)
    {
        var entry = new Entry(Interlocked.Increment(ref _stamps), outcome);
        _entries[messageId] = entry;
        // Only outcomes age out: a claim in progress stays until its run ends, however long that takes.
        _order.Enqueue((messageId, entry.Stamp, timeProvider.GetUtcNow()));
        return ValueTask.CompletedTask;
    }

    public ValueTask ReleaseAsync(string messageId, CancellationToken cancellationToken)
    {
        if (_entries.TryGetValue(messageId, out var entry) && entry.Outcome is null)
        {
            _entries.TryRemove(new KeyValuePair<string, Entry>(messageId, entry));
        }
        return ValueTask.CompletedTask;
    }

    private void Evict(DateTimeOffset now)
    {
        if (!_order.TryPeek(out var oldest) || (now - oldest.At < Ttl && _order.Count <= Capacity))
        {
            return;
        }
        lock (_evictLock)
        {
            while (_order.TryPeek(out oldest) && (now - oldest.At >= Ttl || _order.Count > Capacity))
            {
                _order.TryDequeue(out _);
                if (_entries.TryGetValue(oldest.Id, out var entry) && entry.Stamp == oldest.Stamp)
                {
                    _entries.TryRemove(new KeyValuePair<string, Entry>(oldest.Id, entry));
                }
            }
        }
    }

    private sealed record Entry(long Stamp, RpcOutcome? Outcome);
}
