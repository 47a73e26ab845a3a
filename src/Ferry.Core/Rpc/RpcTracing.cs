using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace Ferry.Core.Rpc;

/// <summary>Puts a received message's trace into the handler's <see cref="Activity"/> and log scope, on every transport.</summary>
public static class RpcTracing
{
    public const string ActivitySourceName = "Ferry.Rpc";

    private static readonly ActivitySource s_source = new(ActivitySourceName);

    /// <summary>
    /// Starts the activity a handler runs in, a child of the sender's span. Without an OpenTelemetry listener the
    /// source gives none, so a bare activity still carries the trace id into logs and nested calls.
    /// </summary>
    public static Activity StartHandlerActivity(RpcEnvelope envelope, string topic)
    {
        var name = $"{topic} {envelope.Method} process";
        if (!ActivityContext.TryParse(envelope.TraceParent, null, out var parent))
        {
            parent = new ActivityContext(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom(), ActivityTraceFlags.None);
        }
        var activity = s_source.StartActivity(name, ActivityKind.Consumer, parent);
        if (activity is null)
        {
            activity = new Activity(name);
            activity.SetParentId(parent.TraceId, parent.SpanId, parent.TraceFlags);
            activity.Start();
        }
        activity.SetTag("messaging.destination.name", topic);
        activity.SetTag("messaging.message.id", envelope.MessageId);
        activity.SetTag("rpc.method", envelope.Method);
        return activity;
    }

    /// <summary>The log scope a handler runs in: every line it logs names the trace, the message and the method.</summary>
    public static IDisposable? BeginScope(ILogger logger, RpcEnvelope envelope, Activity activity) =>
        logger.BeginScope(new Dictionary<string, object>
        {
            ["TraceId"] = activity.TraceId.ToString(),
            ["MessageId"] = envelope.MessageId,
            ["RpcMethod"] = envelope.Method,
        });
}
