using System.Diagnostics;
using System.Diagnostics.Metrics;
using Ferry.Core.Errors;

namespace Ferry.Core.Observability;

/// <summary>
/// RPC calls and casts by topic and method, with the outcome of each call. The topic label is the topic's service
/// (<c>compute</c> for every <c>compute.&lt;host&gt;</c>) so the series set does not grow with the number of hosts.
/// </summary>
public static class RpcMetrics
{
    public const string Ok = "ok";
    public const string Error = "error";
    public const string Timeout = "timeout";
    public const string Cancelled = "cancelled";

    private static readonly Histogram<double> s_calls = FerryMeters.Meter.CreateHistogram(
        "ferry.rpc.client.call.duration", "s", "RPC calls made, by topic, method and outcome (ok, error, timeout, cancelled), with their latency.",
        advice: FerryMeters.LatencySeconds);

    private static readonly Counter<long> s_casts = FerryMeters.Meter.CreateCounter<long>(
        "ferry.rpc.client.casts", description: "RPC casts (fire-and-forget messages) sent, by topic and method.");

    private static readonly Histogram<double> s_handled = FerryMeters.Meter.CreateHistogram(
        "ferry.rpc.server.duration", "s", "RPC messages (calls and casts) handled by this process, by method and outcome, with the handler's run time.",
        advice: FerryMeters.LatencySeconds);

    /// <summary>Runs one call and records its latency and outcome: a reply is ok, no reply in time is a timeout, anything else an error.</summary>
    public static async Task<byte[]> TimeCallAsync(string topic, string method, Func<Task<byte[]>> call)
    {
        var started = Stopwatch.GetTimestamp();
        var outcome = Error;
        try
        {
            var reply = await call();
            outcome = Ok;
            return reply;
        }
        catch (RpcTimeoutException)
        {
            outcome = Timeout;
            throw;
        }
        catch (OperationCanceledException)
        {
            outcome = Cancelled;
            throw;
        }
        finally
        {
            s_calls.Record(Stopwatch.GetElapsedTime(started).TotalSeconds,
                new("topic", TopicService(topic)), new("method", method), new("outcome", outcome));
        }
    }

    /// <summary>Counts one cast and passes its send task through.</summary>
    public static Task CountCast(string topic, string method, Task send)
    {
        s_casts.Add(1, new KeyValuePair<string, object?>("topic", TopicService(topic)), new("method", method));
        return send;
    }

    /// <summary>Runs one handler for a delivered message and records its run time and outcome.</summary>
    public static async Task<byte[]> TimeHandlerAsync(string method, Func<Task<byte[]>> handle)
    {
        var started = Stopwatch.GetTimestamp();
        var outcome = Error;
        try
        {
            var reply = await handle();
            outcome = Ok;
            return reply;
        }
        catch (OperationCanceledException)
        {
            outcome = Cancelled;
            throw;
        }
        finally
        {
            s_handled.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, new("method", method), new("outcome", outcome));
        }
    }

    /// <summary><c>compute.compute7</c> → <c>compute</c>; <c>conductor</c> stays itself.</summary>
    public static string TopicService(string topic)
    {
        var dot = topic.IndexOf('.', StringComparison.Ordinal);
        return dot < 0 ? topic : topic[..dot];
    }
}
