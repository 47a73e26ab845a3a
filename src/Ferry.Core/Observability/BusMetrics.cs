using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Ferry.Core.Observability;

/// <summary>
/// Message bus health: 1 while the transport is connected, 0 while it is not, by transport (<c>in-process</c>,
/// <c>rabbitmq</c>). A transport either reports its state (<see cref="ReportUp"/>) or registers a probe read at every
/// collection (<see cref="Register"/>), so a scrape sees the connection as it is now; with several transports of one
/// kind in a process (tests), the kind is up only while all of them are. Nothing is reported before the first report.
/// </summary>
public static class BusMetrics
{
    private static readonly ConcurrentDictionary<string, int> s_up = new();
    private static readonly ConcurrentDictionary<object, (string Transport, Func<bool> IsUp)> s_probes = new();

    static BusMetrics()
    {
        FerryMeters.Meter.CreateObservableGauge("ferry.bus.up", Observe,
            description: "1 while the message bus transport is connected, 0 while it is not.");
    }

    public static void ReportUp(string transport, bool up) => s_up[transport] = up ? 1 : 0;

    /// <summary>Adds a probe of <paramref name="transport"/>'s connection, read at every collection until the result is disposed.</summary>
    public static IDisposable Register(string transport, Func<bool> isUp)
    {
        var registration = new Registration();
        s_probes[registration] = (transport, isUp);
        return registration;
    }

    /// <summary>The current value of each transport's gauge (what a collection reads).</summary>
    public static IReadOnlyDictionary<string, int> Current()
    {
        var values = new Dictionary<string, int>(s_up);
        foreach (var group in s_probes.Values.GroupBy(p => p.Transport))
        {
            values[group.Key] = group.All(p => p.IsUp()) ? 1 : 0;
        }
        return values;
    }

    private static IEnumerable<Measurement<int>> Observe() =>
        [.. Current().Select(t => new Measurement<int>(t.Value, new KeyValuePair<string, object?>("transport", t.Key)))];

    private sealed class Registration : IDisposable
    {
        public void Dispose() => s_probes.TryRemove(this, out _);
    }
}
