using System.Runtime.CompilerServices;
using Ferry.Core.Domain;

namespace Ferry.ControlPlane.Scheduler.Filters;

/// <summary>
/// Resolves a scheduler hint's instance uuids to hosts once per request rather than once per
/// candidate host: <see cref="IHostStateSource.GetInstanceHost"/> may be a lookup, and a request
/// is checked against up to a thousand hosts. Entries die with their <see cref="RequestSpec"/>.
/// </summary>
internal sealed class HintedInstanceHosts(IHostStateSource source, string hint)
{
    private readonly ConditionalWeakTable<RequestSpec, Resolved> _cache = new();

    /// <summary>The distinct hosts of the hinted instances; null when the hint is absent or empty.</summary>
    public string[]? HostsFor(RequestSpec spec)
    {
        if (!spec.SchedulerHints.TryGetValue(hint, out var uuids) || uuids.Count == 0)
        {
            return null;
        }
        if (_cache.TryGetValue(spec, out var resolved) && ReferenceEquals(resolved.Uuids, uuids) && resolved.Count == uuids.Count)
        {
            return resolved.Hosts;
        }
        resolved = new Resolved(uuids, uuids.Count, Resolve(uuids));
        _cache.AddOrUpdate(spec, resolved);
        return resolved.Hosts;
    }

    private string[] Resolve(List<string> uuids)
    {
        var hosts = new List<string>(uuids.Count);
        foreach (var uuid in uuids)
        {
            if (source.GetInstanceHost(uuid) is { } host && !hosts.Contains(host, StringComparer.Ordinal))
            {
                hosts.Add(host);
            }
        }
        return [.. hosts];
    }

    public static bool Contains(string[] hosts, string host)
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

    private sealed record Resolved(List<string> Uuids, int Count, string[] Hosts);
}
