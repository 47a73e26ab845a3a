using Ferry.Core.Domain;

namespace Ferry.ControlPlane.Scheduler;

/// <summary>
/// A host weigher (nova/scheduler/weights). Raw values are normalised to [0, 1] across the filtered
/// hosts, multiplied by <see cref="Multiplier"/> and summed; the highest total wins.
/// </summary>
public interface IHostWeigher
{
    double Multiplier { get; }

    double RawWeight(HostState host, RequestSpec spec);
}
