using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Ferry.Core.Observability;

/// <summary>
/// Message bus health: 1 while the transport is connected, 0 while it is not, by transport (<c>in-process</c>,
/// <c>rabbitmq</c>). Transports report their own state; nothing is reported before the first report.
/// </summary>
public static class BusMetrics
{
    private static readonly ConcurrentDictionary<string, int> s_up = new();

    static BusMetrics()
    {
        FerryMeters.Meter.CreateObservableGauge("ferry.bus.up", Observe,
            description: "1 while the message bus transport is connected, 0 while it is not.");
    }

    public static void ReportUp(string transport, bool up) => s_up[transport] = up ? 1 : 0;

    private static IEnumerable<Measurement<int>> Observe() =>
        [.. s_up.Select(t => new Measurement<int>(t.Value, new KeyValuePair<string, object?>("transport", t.Key)))];
}
