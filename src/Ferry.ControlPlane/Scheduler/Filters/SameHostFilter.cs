using Ferry.Core.Domain;

namespace Ferry.ControlPlane.Scheduler.Filters;

/// <summary>
/// Hint <c>same_host</c>: passes only hosts running one of the listed instances
/// (nova/scheduler/filters/affinity_filter.py SameHostFilter).
/// </summary>
public sealed class SameHostFilter : IHostFilter
{
    private const string Hint = "same_host";

    public string Name => "SameHostFilter";

    public bool HostPasses(HostState host, RequestSpec spec) =>
        HintedInstanceHosts.HostsFor(spec, Hint) is not { } hosts || HintedInstanceHosts.Contains(hosts, host.Host);
}
