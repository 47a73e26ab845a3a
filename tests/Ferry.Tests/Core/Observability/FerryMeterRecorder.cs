using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Ferry.Core.Observability;

namespace Ferry.Tests.Core.Observability;

/// <summary>
/// Listens to Ferry's meter as an exporter would: records every measurement with its tags, and reads observable
/// instruments on demand. Tests run in parallel and share the static instruments, so they filter by tags they own.
/// </summary>
internal sealed class FerryMeterRecorder : IDisposable
{
    private readonly MeterListener _listener = new();

    public FerryMeterRecorder()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == FerryMeters.Name)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<int>((i, v, tags, _) => Record(i, v, tags));
        _listener.Start();
    }

    public ConcurrentQueue<(string Instrument, double Value, Dictionary<string, object?> Tags)> Measurements { get; } = new();

    /// <summary>Reads every observable instrument once, as a scrape does.</summary>
    public void Observe() => _listener.RecordObservableInstruments();

    public List<double> ValuesOf(string instrument, params (string Tag, string Value)[] tags) =>
        [.. Measurements.Where(m => m.Instrument == instrument && tags.All(t => m.Tags.TryGetValue(t.Tag, out var v) && Equals(v, t.Value))).Select(m => m.Value)];

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var copy = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var tag in tags)
        {
            copy[tag.Key] = tag.Value;
        }
        Measurements.Enqueue((instrument.Name, value, copy));
    }

    public void Dispose() => _listener.Dispose();
}
