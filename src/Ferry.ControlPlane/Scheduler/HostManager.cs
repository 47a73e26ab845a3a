using System.Buffers;
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
        // Walks the candidates (placement offers at most max_placement_results of them), not every node: at 10,000 nodes
        // three string-keyed lookups for each node were most of a request's time. Their positions put them back in
        // compute-node order, the order the weighers' ties keep.
        var offered = candidates.ProviderUuids;
        var nodes = source.GetComputeNodes();
        var positions = ArrayPool<int>.Shared.Rent(Math.Max(offered.Count, 1));
        try
        {
            var found = 0;
            for (var i = 0; i < offered.Count; i++)
            {
                // A position of a newer load than `nodes` (a refresh in between that added nodes) is not used.
                var position = source.IndexOfComputeNode(offered[i]);
                if (position >= 0 && position < nodes.Count && string.Equals(nodes[position].Uuid, offered[i], StringComparison.Ordinal))
                {
                    positions[found++] = position;
                }
            }
            Array.Sort(positions, 0, found);
            return FillStates(nodes, positions.AsSpan(0, found), candidates.Summaries, spec, states);
        }
        finally
        {
            ArrayPool<int>.Shared.Return(positions);
        }
    }

    private int FillStates(IReadOnlyList<ComputeNode> nodes, ReadOnlySpan<int> positions, IReadOnlyDictionary<string, ProviderSummary> summaries,
        RequestSpec spec, Span<HostState> states)
    {
        var services = source.GetComputeServices();
        var ignore = spec.IgnoreHosts;
        var requested = spec.RequestedHost;
        var count = 0;
        for (var i = 0; i < positions.Length && count < states.Length; i++)
        {
            if (i > 0 && positions[i] == positions[i - 1])
            {
                continue; // offered twice
            }
            var node = nodes[positions[i]];
            if (!summaries.TryGetValue(node.Uuid, out var summary))
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
