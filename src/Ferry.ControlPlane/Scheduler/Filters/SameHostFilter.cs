using Ferry.Core.Domain;

namespace Ferry.ControlPlane.Scheduler.Filters;

/// <summary>
/// Hint <c>same_host</c>: passes only hosts running one of the listed instances
/// (nova/scheduler/filters/affinity_filter.py SameHostFilter).
/// </summary>
public sealed class SameHostFilter(IHostStateSource source) : IHostFilter
{
    private readonly HintedInstanceHosts _hinted = new(source, "same_host");

    public string Name => "SameHostFilter";

    public bool HostPasses(HostState host, RequestSpec spec) =>
        _hinted.HostsFor(spec) is not { } hosts || HintedInstanceHosts.Contains(hosts, host.Host);
}
