using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Ferry.Core.Observability;

/// <summary>
/// Database health as the process sees it: whether its last query succeeded, how long ago one last did, and query
/// latency by operation (read, write). A process that never queried (a compute agent) reports none of these.
/// </summary>
public static class DatabaseMetrics
{
    private static readonly Histogram<double> s_queries = FerryMeters.Meter.CreateHistogram(
        "ferry.db.query.duration", "s", "Database operations by kind (read, write) and outcome, with their latency (inside the connection's lock).",
        advice: FerryMeters.LatencySeconds);

    private static long s_lastSuccess;
    private static int s_up = -1;

    static DatabaseMetrics()
    {
        FerryMeters.Meter.CreateObservableGauge("ferry.db.up", ObserveUp,
            description: "1 while the last database operation succeeded, 0 after one failed.");
        FerryMeters.Meter.CreateObservableGauge("ferry.db.last_success.age", ObserveAge, "s",
            "Seconds since a database operation last succeeded.");
    }

    /// <summary>Runs one database operation and records its latency and outcome.</summary>
    public static T Measure<T>(string operation, Func<T> query)
    {
        var started = Stopwatch.GetTimestamp();
        var outcome = "error";
        try
        {
            var result = query();
            outcome = "ok";
            Volatile.Write(ref s_lastSuccess, Stopwatch.GetTimestamp());
            return result;
        }
        finally
        {
            Volatile.Write(ref s_up, outcome == "ok" ? 1 : 0);
            s_queries.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, new("operation", operation), new("outcome", outcome));
        }
    }

    /// <summary>The asynchronous form, for a database driver with async I/O (Npgsql).</summary>
    public static async Task<T> MeasureAsync<T>(string operation, Func<Task<T>> query)
    {
        var started = Stopwatch.GetTimestamp();
        var outcome = "error";
        try
        {
            var result = await query();
            outcome = "ok";
            Volatile.Write(ref s_lastSuccess, Stopwatch.GetTimestamp());
            return result;
        }
        catch (OperationCanceledException)
        {
            outcome = "cancelled"; // the caller went away: says nothing about the database's health
            throw;
        }
        finally
        {
            if (outcome != "cancelled")
            {
                Volatile.Write(ref s_up, outcome == "ok" ? 1 : 0);
            }
            s_queries.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, new("operation", operation), new("outcome", outcome));
        }
    }

    private static IEnumerable<Measurement<int>> ObserveUp()
    {
        var up = Volatile.Read(ref s_up);
        return up < 0 ? [] : [new Measurement<int>(up)];
    }

    private static IEnumerable<Measurement<double>> ObserveAge()
    {
        var last = Volatile.Read(ref s_lastSuccess);
        return last == 0 ? [] : [new Measurement<double>(Stopwatch.GetElapsedTime(last).TotalSeconds)];
    }
}
