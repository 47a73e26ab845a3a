using Ferry.Core.Domain;

namespace Ferry.ControlPlane.Scheduler.Filters;

/// <summary>
/// "anti-affinity" groups: a host passes while it runs fewer than max_server_per_host members
/// (nova/scheduler/filters/affinity_filter.py ServerGroupAntiAffinityFilter). The instance being
/// moved is not in <see cref="ServerGroupPolicy.MemberHosts"/>, so its own host is not held against it.
/// </summary>
public sealed class ServerGroupAntiAffinityFilter : IHostFilter
{
    public string Name => "ServerGroupAntiAffinityFilter";

    public bool HostPasses(HostState host, RequestSpec spec)
    {
        if (spec.Group is not { Policy: "anti-affinity" } group)
        {
            return true;
        }
        var onHost = 0;
        foreach (var member in group.MemberHosts)
        {
            if (string.Equals(member, host.Host, StringComparison.Ordinal))
            {
                onHost++;
            }
        }
        return onHost < Math.Max(1, group.MaxServerPerHost);
    }
}
