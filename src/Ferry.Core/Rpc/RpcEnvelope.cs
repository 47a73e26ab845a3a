using System.Diagnostics;

namespace Ferry.Core.Rpc;

/// <summary>
/// What travels with every message beside its payload, on every transport (oslo.messaging's message id,
/// reply queue and timeout; W3C trace context): the receiver drops a message past its <see cref="Deadline"/>
/// (its caller has given up), deduplicates redeliveries by <see cref="MessageId"/>, and runs the handler
/// inside an <see cref="Activity"/> that continues <see cref="TraceParent"/>.
/// </summary>
/// <param name="MessageId">Unique per message; also the correlation id of a call's reply.</param>
/// <param name="ReplyTo">Where a call's reply goes; null for a cast.</param>
/// <param name="Deadline">When the caller stops waiting (a call's timeout), or when a notification is worth nothing; null for a cast.</param>
/// <param name="TraceParent">The W3C <c>traceparent</c> of the sender's activity, or of a new trace.</param>
public sealed record RpcEnvelope(string MessageId, string Method, string? ReplyTo, DateTimeOffset? Deadline, string TraceParent)
{
    public static RpcEnvelope Create(string method, string? replyTo, DateTimeOffset? deadline) =>
        new(Guid.NewGuid().ToString("N"), method, replyTo, deadline, CurrentTraceParent());

    public bool IsExpired(DateTimeOffset now) => Deadline is { } deadline && now > deadline;

    /// <summary>The <c>traceparent</c> of <see cref="Activity.Current"/>, or of a new trace when there is none.</summary>
    public static string CurrentTraceParent()
    {
        var current = Activity.Current;
        if (current is not null && current.IdFormat == ActivityIdFormat.W3C)
        {
            return $"00-{current.TraceId}-{current.SpanId}-{(current.Recorded ? "01" : "00")}";
        }
        return $"00-{ActivityTraceId.CreateRandom()}-{ActivitySpanId.CreateRandom()}-00";
    }
}
