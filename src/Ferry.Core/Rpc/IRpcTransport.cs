namespace Ferry.Core.Rpc;

/// <summary>
/// Moves serialized messages between services by topic (conductor, scheduler, compute.&lt;host&gt;).
/// A cast is fire-and-forget; a call waits for a reply or times out. Messages to a topic nobody
/// listens on wait for a listener, as on a durable broker queue. Implementations must run each
/// message on its own task: a handler may make a nested call while its caller waits on it.
/// </summary>
public interface IRpcTransport
{
    Task CastAsync(string topic, string method, byte[] payload, CancellationToken cancellationToken);

    /// <summary>
    /// A cast that is worth nothing after <paramref name="expiresAfter"/> and that a restart of the bus may lose (a
    /// heartbeat: the next one replaces it). The bus keeps it off its disk and drops it once expired. A plain cast
    /// where the transport has no such difference.
    /// </summary>
    Task NotifyAsync(string topic, string method, byte[] payload, TimeSpan expiresAfter, CancellationToken cancellationToken) =>
        CastAsync(topic, method, payload, cancellationToken);

    /// <exception cref="Errors.RpcTimeoutException">No reply within <paramref name="timeout"/>.</exception>
    /// <exception cref="Errors.FerryException">The handler failed; rebuilt from the wire.</exception>
    Task<byte[]> CallAsync(string topic, string method, byte[] payload, TimeSpan timeout, CancellationToken cancellationToken);

    /// <summary>Starts delivering a topic's messages to <paramref name="dispatcher"/> until the result is disposed.</summary>
    IAsyncDisposable Listen(string topic, IRpcDispatcher dispatcher);
}

/// <summary>Runs one message for a listener and returns the serialized reply.</summary>
public interface IRpcDispatcher
{
    Task<byte[]> DispatchAsync(string method, byte[] payload, CancellationToken cancellationToken);

    /// <summary>
    /// True when running <paramref name="method"/> twice for one message leaves the same state and reply as running it once
    /// (reads, writes that only set values). A transport then skips its deduplication (<see cref="IRpcDeduplicator"/>) for
    /// it, as oslo.messaging never dedups: a redelivery runs the handler again, and no claim or outcome is written for it.
    /// </summary>
    bool IsIdempotent(string method) => false;
}
