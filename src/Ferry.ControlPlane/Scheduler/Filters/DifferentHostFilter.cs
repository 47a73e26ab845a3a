using Ferry.Core.Domain;

namespace Ferry.ControlPlane.Scheduler.Filters;

/// <summary>
/// Hint <c>different_host</c>: passes only hosts running none of the listed instances
/// (nova/scheduler/filters/affinity_filter.py DifferentHostFilter).
/// </summary>
public sealed class DifferentHostFilter(IHostStateSource source) : IHostFilter
{
    private readonly HintedInstanceHosts _hinted = new(source, "different_host");

    public string Name => "DifferentHostFilter";

    public bool HostPasses(HostState host, RequestSpec spec) =>
        _hinted.HostsFor(spec) is not { } hosts || !HintedInstanceHosts.Contains(hosts, host.Host);
}
