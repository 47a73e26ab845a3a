using System.Buffers;
using Ferry.ControlPlane.Placement;
using Ferry.ControlPlane.Scheduler.Weighers;
using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Ferry.ControlPlane.Scheduler;

/// <summary>
/// select_destinations (nova/scheduler/manager.py SchedulerManager._schedule): allocation candidates
/// from placement, host states, filters, weighers, then a claim in placement for the instance on the
/// best host, trying the next host when the claim loses a race. Stateless and thread-safe: concurrent
/// requests are serialized only by placement's provider and consumer generations.
/// </summary>
public sealed partial class SchedulerManager(
    IPlacementService placement,
    HostManager hostManager,
    IEnumerable<IHostFilter> filters,
    IEnumerable<IHostWeigher> weighers,
    IOptions<SchedulerOptions> options,
    ILogger<SchedulerManager> logger)
{
    /// <summary>Hosts whose compute service is disabled carry this trait (Nova's compute_status_filter).</summary>
    public const string ComputeStatusDisabledTrait = "COMPUTE_STATUS_DISABLED";

    internal const string NotEnoughHosts = "There are not enough hosts available.";

    private static readonly string[] s_forbiddenTraits = [ComputeStatusDisabledTrait];

    private readonly IHostFilter[] _filters = EnabledFilters(filters, options.Value.EnabledFilters);
    private readonly IHostWeigher[] _weighers = [.. weighers];

    /// <summary>
    /// Picks a host for <see cref="RequestSpec.InstanceUuid"/> and claims the flavor's resources there
    /// for that consumer. When the consumer already holds allocations (evacuation: the dead source),
    /// the claim keeps them and adds the new host's ("doubled" allocation). The first selection is the
    /// claimed host; up to <paramref name="numAlternates"/> further filtered hosts follow, unclaimed.
    /// </summary>
    /// <exception cref="NoValidHostException">No candidate passes the filters or can be claimed.</exception>
    public async Task<IReadOnlyList<Selection>> SelectDestinationsAsync(RequestSpec spec, int numAlternates, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        // Host facts are loaded before anything filters: the filter chain is synchronous and must not wait on the database.
        await hostManager.RefreshAsync(cancellationToken);
        var opts = options.Value;
        var resources = RequestedResources(spec.Flavor, spec.IsBfv);

        string? inTree = null;
        if (spec.RequestedHost is { } requestedHost)
        {
            inTree = hostManager.GetNodeUuid(requestedHost)
                ?? throw new NoValidHostException($"Compute host {requestedHost} could not be found.");
        }
        // Nova asks for every candidate when the group must land next to its members (§5.2).
        var limit = spec.Group is { Policy: "affinity" }
            ? Math.Max(opts.MaxPlacementResults, hostManager.NodeCount)
            : opts.MaxPlacementResults;

        var candidates = await placement.GetAllocationCandidatesAsync(resources, null, s_forbiddenTraits, inTree, limit, cancellationToken);
        if (candidates.ProviderUuids.Count == 0)
        {
            Log.NoCandidates(logger, spec.InstanceUuid);
            throw new NoValidHostException(NotEnoughHosts);
        }

        var states = ArrayPool<HostState>.Shared.Rent(candidates.ProviderUuids.Count);
        WeighedHost[]? weighed = null;
        try
        {
            var count = hostManager.GetHostStates(candidates, spec, states);
            count = RunFilters(states.AsSpan(0, count), spec);
            if (count == 0)
            {
                throw new NoValidHostException(NotEnoughHosts);
            }
            weighed = ArrayPool<WeighedHost>.Shared.Rent(count);
            Rank(weighed.AsSpan(0, count), states, spec, opts.HostSubsetSize);
            return await ClaimAndSelectAsync(new ArraySegment<WeighedHost>(weighed, 0, count), spec, resources, numAlternates, cancellationToken);
        }
        finally
        {
            ArrayPool<HostState>.Shared.Return(states, clearArray: true);
            if (weighed is not null)
            {
                ArrayPool<WeighedHost>.Shared.Return(weighed, clearArray: true);
            }
        }
    }

    /// <summary>Weighs the filtered hosts into <paramref name="hosts"/>, best first (a span: no await may cross it).</summary>
    private void Rank(Span<WeighedHost> hosts, HostState[] states, RequestSpec spec, int subsetSize)
    {
        for (var i = 0; i < hosts.Length; i++)
        {
            hosts[i] = new WeighedHost(states[i]);
        }
        HostWeighing.Weigh(hosts, _weighers, spec);
        HostWeighing.SortBestFirst(hosts);
        PickFromSubset(hosts, subsetSize);
    }

    /// <summary>Claims the first host that accepts, best first; the selection and the alternates after it.</summary>
    private async Task<List<Selection>> ClaimAndSelectAsync(ArraySegment<WeighedHost> hosts, RequestSpec spec, Dictionary<string, long> resources, int numAlternates,
        CancellationToken cancellationToken)
    {
        ConsumerAllocations? current = null;
        for (var chosen = 0; chosen < hosts.Count; chosen++)
        {
            bool claimed;
            (claimed, current) = await TryClaimAsync(hosts[chosen].Host, spec, resources, current, cancellationToken);
            if (!claimed)
            {
                continue;
            }
            // Alternates come after the claimed host: hosts before it just failed a claim.
            var alternates = Math.Clamp(numAlternates, 0, hosts.Count - chosen - 1);
            var selections = new List<Selection>(1 + alternates);
            for (var i = chosen; i <= chosen + alternates; i++)
            {
                selections.Add(ToSelection(hosts[i].Host, spec));
            }
            Log.Selected(logger, spec.InstanceUuid, hosts[chosen].Host.Host, hosts[chosen].Host.Nodename, hosts.Count);
            return selections;
        }
        Log.NoClaim(logger, spec.InstanceUuid, hosts.Count);
        throw new NoValidHostException(NotEnoughHosts);
    }

    /// <summary>The unnumbered request group of the flavor; zero amounts are left out as Nova does.</summary>
    internal static Dictionary<string, long> RequestedResources(Flavor flavor, bool isBfv)
    {
        var resources = new Dictionary<string, long>(3, StringComparer.Ordinal);
        if (flavor.Vcpus > 0)
        {
            resources[ResourceClasses.Vcpu] = flavor.Vcpus;
        }
        if (flavor.MemoryMb > 0)
        {
            resources[ResourceClasses.MemoryMb] = flavor.MemoryMb;
        }
        if (flavor.LocalDiskGb(isBfv) is > 0 and var disk)
        {
            resources[ResourceClasses.DiskGb] = disk;
        }
        return resources;
    }

    /// <summary>Moves passing hosts to the front, filter by filter; returns how many passed every filter.</summary>
    private int RunFilters(Span<HostState> hosts, RequestSpec spec)
    {
        var count = hosts.Length;
        foreach (var filter in _filters)
        {
            var kept = 0;
            for (var i = 0; i < count; i++)
            {
                var host = hosts[i];
                if (filter.HostPasses(host, spec))
                {
                    hosts[kept++] = host;
                }
            }
            count = kept;
            if (count == 0)
            {
                Log.FilterReturnedNoHosts(logger, spec.InstanceUuid, filter.Name);
                return 0;
            }
        }
        return count;
    }

    /// <summary>host_subset_size: the first host becomes a random one of the best N; the rest keep their order.</summary>
    private static void PickFromSubset(Span<WeighedHost> hosts, int subsetSize)
    {
        var n = Math.Min(subsetSize, hosts.Length);
        if (n <= 1)
        {
            return;
        }
        var pick = Random.Shared.Next(n);
        if (pick == 0)
        {
            return;
        }
        var chosen = hosts[pick];
        hosts[..pick].CopyTo(hosts[1..]);
        hosts[0] = chosen;
    }

    /// <summary>
    /// Claims <paramref name="resources"/> on <paramref name="host"/> for the instance (report.py
    /// claim_resources). An existing allocation is kept and the new one added to it, under the
    /// consumer generation read with it (_move_operation_alloc_request).
    /// </summary>
    private async Task<(bool Claimed, ConsumerAllocations? Current)> TryClaimAsync(HostState host, RequestSpec spec, Dictionary<string, long> resources,
        ConsumerAllocations? current, CancellationToken cancellationToken)
    {
        current ??= await placement.GetAllocationsAsync(spec.InstanceUuid, cancellationToken);
        var allocations = new Dictionary<string, Dictionary<string, long>>(current.Allocations.Count + 1, StringComparer.Ordinal);
        foreach (var (provider, amounts) in current.Allocations)
        {
            allocations[provider] = new Dictionary<string, long>(amounts, StringComparer.Ordinal);
        }
        if (allocations.TryGetValue(host.NodeUuid, out var onHost))
        {
            foreach (var (resourceClass, amount) in resources)
            {
                onHost[resourceClass] = onHost.GetValueOrDefault(resourceClass) + amount;
            }
        }
        else
        {
            allocations[host.NodeUuid] = new Dictionary<string, long>(resources, StringComparer.Ordinal);
        }
        try
        {
            await placement.PutAllocationsAsync(spec.InstanceUuid, new AllocationRequest
            {
                Allocations = allocations,
                ProjectId = spec.ProjectId,
                UserId = spec.UserId,
                ConsumerGeneration = current.ConsumerGeneration,
            }, cancellationToken);
            return (true, current);
        }
        catch (PlacementConflictException ex)
        {
            Log.ClaimConflict(logger, spec.InstanceUuid, host.Host, ex.Message);
            return (false, null); // the consumer may have changed too: read it again before the next attempt
        }
    }

    private static Selection ToSelection(HostState host, RequestSpec spec) => new()
    {
        ServiceHost = host.Host,
        Nodename = host.Nodename,
        ComputeNodeUuid = host.NodeUuid,
        Resources = new Dictionary<string, int>(3, StringComparer.Ordinal)
        {
            [ResourceClasses.Vcpu] = spec.Flavor.Vcpus,
            [ResourceClasses.MemoryMb] = spec.Flavor.MemoryMb,
            [ResourceClasses.DiskGb] = spec.Flavor.LocalDiskGb(spec.IsBfv),
        },
        AvailabilityZone = host.AvailabilityZone,
    };

    private static IHostFilter[] EnabledFilters(IEnumerable<IHostFilter> filters, List<string> enabled)
    {
        var byName = new Dictionary<string, IHostFilter>(StringComparer.Ordinal);
        foreach (var filter in filters)
        {
            byName.TryAdd(filter.Name, filter);
        }
        var result = new List<IHostFilter>(enabled.Count);
        foreach (var name in enabled)
        {
            if (!byName.TryGetValue(name, out var filter))
            {
                throw new InvalidOperationException($"Scheduler filter '{name}' is enabled but not registered.");
            }
            if (!result.Contains(filter))
            {
                result.Add(filter);
            }
        }
        return [.. result];
    }
}
