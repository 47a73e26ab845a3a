using System.Collections.Concurrent;

namespace Ferry.Core.Rpc;

/// <summary>
/// The default <see cref="IRpcDeduplicator"/>: message ids of one process, each outcome kept for <see cref="Ttl"/>
/// and at most <see cref="Capacity"/> of them (the oldest go first). A redelivery comes within seconds of the
/// original, so both bounds are generous; a forgotten id only means the handler runs again.
/// </summary>
public sealed class InMemoryRpcDeduplicator(TimeProvider timeProvider) : IRpcDeduplicator
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new();
    private readonly ConcurrentQueue<(string Id, DateTimeOffset At)> _order = new();
    private readonly Lock _evictLock = new();

    public InMemoryRpcDeduplicator() : this(TimeProvider.System)
    {
    }

    public int Capacity { get; init; } = 100_000;
    public TimeSpan Ttl { get; init; } = TimeSpan.FromMinutes(10);

    public int Count => _entries.Count;

    public ValueTask<RpcClaim> ClaimAsync(string messageId, TimeSpan lease, CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow();
        Evict(now);
        while (true)
        {
            var fresh = new Entry(now, null);
            if (_entries.TryAdd(messageId, fresh))
            {
                _order.Enqueue((messageId, now));
                return ValueTask.FromResult(RpcClaim.Claimed);
            }
            if (!_entries.TryGetValue(messageId, out var entry))
            {
                continue;
            }
            if (entry.Outcome is not null)
            {
                return ValueTask.FromResult(new RpcClaim(RpcClaimState.Done, entry.Outcome));
            }
            if (now - entry.ClaimedAt < lease)
            {
                return ValueTask.FromResult(RpcClaim.Busy);
            }
            // The claim outlived its lease: its run is presumed dead, so this one takes over.
            if (_entries.TryUpdate(messageId, fresh, entry))
            {
                _order.Enqueue((messageId, now));
                return ValueTask.FromResult(RpcClaim.Claimed);
            }
        }
    }

    public ValueTask CompleteAsync(string messageId, RpcOutcome outcome, CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow();
        if (_entries.TryGetValue(messageId, out var entry))
        {
            _entries[messageId] = entry with { Outcome = outcome };
        }
        else
        {
            _entries[messageId] = new Entry(now, outcome);
            _order.Enqueue((messageId, now));
        }
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
        if (!_order.TryPeek(out var oldest) || (now - oldest.At < Ttl && _entries.Count <= Capacity))
        {
            return;
        }
        lock (_evictLock)
        {
            while (_order.TryPeek(out oldest) && (now - oldest.At >= Ttl || _entries.Count > Capacity))
            {
                _order.TryDequeue(out _);
                // An id claimed again after release is enqueued twice; only its newest record ages it out.
                if (_entries.TryGetValue(oldest.Id, out var entry) && entry.ClaimedAt <= oldest.At)
                {
                    _entries.TryRemove(new KeyValuePair<string, Entry>(oldest.Id, entry));
                }
            }
        }
    }

    private sealed record Entry(DateTimeOffset ClaimedAt, RpcOutcome? Outcome);
}
