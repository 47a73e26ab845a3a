using Ferry.Core.Domain;

namespace Ferry.ControlPlane.Scheduler.Filters;

/// <summary>
/// The hosts of a scheduler hint's instances, as the spec's builder read them (<see cref="RequestSpec.HintedHosts"/>):
/// a filter runs once per candidate host, up to a thousand per request, and must not read the database.
/// </summary>
internal static class HintedInstanceHosts
{
    private static readonly List<string> s_none = [];

    /// <summary>The distinct hosts of the hinted instances (empty when none is placed); null when the hint is absent or empty.</summary>
    public static List<string>? HostsFor(RequestSpec spec, string hint)
    {
        if (!spec.SchedulerHints.TryGetValue(hint, out var uuids) || uuids.Count == 0)
        {
            return null;
        }
        return spec.HintedHosts.GetValueOrDefault(hint) ?? s_none;
    }

    public static bool Contains(List<string> hosts, string host)
    {
        foreach (var h in hosts)
        {
            if (string.Equals(h, host, StringComparison.Ordinal))
            {
                return true;
            }
        }
        return false;
    }
}
