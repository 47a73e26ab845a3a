using System.Diagnostics.Metrics;

namespace Ferry.Core.Observability;

/// <summary>
/// The one <see cref="Meter"/> every Ferry project records on. Instruments are static, as the BCL's own are: recording
/// costs next to nothing until an exporter listens (the host adds one, see docs/architecture.md "Metrics").
/// </summary>
public static class FerryMeters
{
    public const string Name = "Ferry";

    public static Meter Meter { get; } = new(Name);

    /// <summary>Latency buckets in seconds, from an in-process RPC (sub-millisecond) to a 300 s long call.</summary>
    public static InstrumentAdvice<double> LatencySeconds { get; } = new()
    {
        HistogramBucketBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    };
}
