using System.Collections.Concurrent;
using Ferry.ControlPlane.Placement;
using Ferry.Core.Domain;
using Ferry.Core.Errors;

namespace Ferry.ControlPlane.Scheduler;

/// <summary>
/// Turns placement's candidates into <see cref="HostState"/>s (nova/scheduler/host_manager.py
/// get_host_states_by_uuids), dropping ignored hosts and keeping only a requested host.
/// A node's state is rebuilt only when its compute node, service or provider summary changed
/// (all immutable snapshots), so a request over a thousand hosts allocates next to nothing here.
/// </summary>
public sealed class HostManager(IHostStateSource source)
{
    private readonly ConcurrentDictionary<string, HostState> _states = new(StringComparer.Ordinal);

    /// <summary>Loads the host facts a request reads (<see cref="IHostStateSource.RefreshAsync"/>): the rest of this class reads memory only.</summary>
    public ValueTask RefreshAsync(CancellationToken cancellationToken) => source.RefreshAsync(cancellationToken);

    /// <summary>The uuid of the (first) compute node of <paramref name="host"/>, or null when it has none.</summary>
    public string? GetNodeUuid(string host)
    {
        var nodes = source.GetComputeNodes();
        for (var i = 0; i < nodes.Count; i++)
        {
            if (string.Equals(nodes[i].Host, host, StringComparison.Ordinal))
            {
                return nodes[i].Uuid;
            }
        }
        return null;
    }

    /// <summary>Number of compute nodes known (bounds the candidates query when it must be unlimited).</summary>
    public int NodeCount => source.GetComputeNodes().Count;

    /// <summary>
    /// Writes the states of the candidate nodes into <paramref name="states"/> (which needs room for
    /// every candidate), in compute-node order, without <see cref="RequestSpec.IgnoreHosts"/> and,
    /// when <see cref="RequestSpec.RequestedHost"/> is set, only that host's. Returns how many.
    /// </summary>
    /// <exception cref="NoValidHostException">The requested host is not a candidate.</exception>
    public int GetHostStates(AllocationCandidates candidates, RequestSpec spec, Span<HostState> states)
    {
        var summaries = candidates.Summaries;
        // Placement may summarise more providers than it offers (trees); only offered ones are candidates.
        HashSet<string>? offered = summaries.Count == candidates.ProviderUuids.Count
            ? null
            : new HashSet<string>(candidates.ProviderUuids, StringComparer.Ordinal);
        var nodes = source.GetComputeNodes();
        var services = source.GetComputeServices();
        var ignore = spec.IgnoreHosts;
        var requested = spec.RequestedHost;
        var count = 0;
        for (var i = 0; i < nodes.Count && count < states.Length; i++)
        {
            var node = nodes[i];
            if (!summaries.TryGetValue(node.Uuid, out var summary) || (offered is not null && !offered.Contains(node.Uuid)))
            {
                continue;
            }
            if (requested is not null && !string.Equals(node.Host, requested, StringComparison.Ordinal))
            {
                continue;
            }
            if (ignore.Count > 0 && Contains(ignore, node.Host))
            {
                continue;
            }
            services.TryGetValue(node.Host, out var service);
            states[count++] = GetOrCreate(node, service, summary);
        }
        if (_states.Count > 2 * nodes.Count + 16)
        {
            _states.Clear(); // nodes were deleted; the live ones come back on the next requests
        }
        if (requested is not null && count == 0)
        {
            throw new NoValidHostException($"Requested host {requested} is not a valid destination.");
        }
        return count;
    }

    private HostState GetOrCreate(ComputeNode node, Service? service, ProviderSummary summary)
    {
        if (_states.TryGetValue(node.Uuid, out var state) && state.IsCurrent(node, service, summary))
        {
            return state;
        }
        state = HostState.Create(node, service, summary, source);
        _states[node.Uuid] = state;
        return state;
    }

    private static bool Contains(List<string> hosts, string host)
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
