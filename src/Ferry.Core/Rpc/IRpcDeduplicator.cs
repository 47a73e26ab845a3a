namespace Ferry.Core.Rpc;

/// <summary>
/// Makes a redelivered message run its handler once. A broker redelivers a message whose consumer did not ack it:
/// the consumer's channel or process died, or the broker restarted, possibly after the handler had already finished
/// (or while it still runs). The transport claims the message id before running the handler and records the outcome
/// (with a call's reply) after; a redelivery of a finished message gets the recorded reply instead of a second run,
/// and one of a message still running waits for that run.
/// <para>
/// What it covers depends on who shares it: the in-memory <see cref="InMemoryRpcDeduplicator"/> covers redeliveries
/// to the same process (a broker restart or channel recovery mid-handler); a database-backed one shared by the
/// replicas of a topic also covers a replica that died between finishing and acking. Neither covers a handler whose
/// process died half-way through: that run never completes, its claim is released or expires, and the next delivery
/// runs the handler again, so handlers must still be safe to re-run from the start (Nova's rule).
/// </para>
/// </summary>
public interface IRpcDeduplicator
{
    /// <summary>
    /// Claims <paramref name="messageId"/> for one run. <see cref="RpcClaimState.Busy"/> means another run holds the
    /// claim. A store shared by replicas takes over a claim older than <paramref name="lease"/> (its replica is
    /// presumed dead); one that only serves its own process knows its runs are alive and may ignore the lease.
    /// </summary>
    ValueTask<RpcClaim> ClaimAsync(string messageId, TimeSpan lease, CancellationToken cancellationToken);

    /// <summary>Records the finished run's outcome; later claims get <see cref="RpcClaimState.Done"/> with it.</summary>
    ValueTask CompleteAsync(string messageId, RpcOutcome outcome, CancellationToken cancellationToken);

    /// <summary>Gives up a claim whose run did not finish (its service is stopping), so the next delivery runs it.</summary>
    ValueTask ReleaseAsync(string messageId, CancellationToken cancellationToken);
}

public enum RpcClaimState
{
    /// <summary>This run owns the message: run the handler, then complete or release.</summary>
    Claimed,

    /// <summary>The handler already ran: answer with <see cref="RpcClaim.Outcome"/>, do not run it again.</summary>
    Done,

    /// <summary>Another run is in progress: wait for it.</summary>
    Busy,
}

public sealed record RpcClaim(RpcClaimState State, RpcOutcome? Outcome = null)
{
    public static readonly RpcClaim Claimed = new(RpcClaimState.Claimed);
    public static readonly RpcClaim Busy = new(RpcClaimState.Busy);
}

/// <summary>A handler's result as it travels back: the serialized reply, or a serialized <see cref="RpcError"/>.</summary>
public sealed record RpcOutcome(bool IsError, byte[] Body);
