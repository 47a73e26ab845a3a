using Ferry.Core.Domain;

namespace Ferry.ControlPlane.Scheduler.Filters;

/// <summary>
/// "affinity" groups: once members run somewhere, only their hosts pass
/// (nova/scheduler/filters/affinity_filter.py ServerGroupAffinityFilter).
/// </summary>
public sealed class ServerGroupAffinityFilter : IHostFilter
{
    public string Name => "ServerGroupAffinityFilter";

    public bool HostPasses(HostState host, RequestSpec spec)
    {
        if (spec.Group is not { Policy: "affinity", MemberHosts: { Count: > 0 } members })
        {
            return true;
        }
        foreach (var member in members)
        {
            if (string.Equals(member, host.Host, StringComparison.Ordinal))
            {
                return true;
            }
        }
        return false;
    }
}
