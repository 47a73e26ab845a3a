using Ferry.Core.Domain;

namespace Ferry.ControlPlane.Scheduler.Filters;

/// <summary>Passes hosts in the requested availability zone (nova/scheduler/filters/availability_zone_filter.py).</summary>
public sealed class AvailabilityZoneFilter : IHostFilter
{
    public string Name => "AvailabilityZoneFilter";

    public bool HostPasses(HostState host, RequestSpec spec) =>
        spec.AvailabilityZone is not { } zone || string.Equals(host.AvailabilityZone, zone, StringComparison.Ordinal);
}
