using Ferry.Core.Domain;

namespace Ferry.ControlPlane.Scheduler.Filters;

/// <summary>
/// Hint <c>different_host</c>: passes only hosts running none of the listed instances
/// (nova/scheduler/filters/affinity_filter.py DifferentHostFilter).
/// </summary>
public sealed class DifferentHostFilter : IHostFilter
{
    private const string Hint = "different_host";

    public string Name => "DifferentHostFilter";

    public bool HostPasses(HostState host, RequestSpec spec) =>
        HintedInstanceHosts.HostsFor(spec, Hint) is not { } hosts || !HintedInstanceHosts.Contains(hosts, host.Host);
}
