using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;

namespace Ferry.ControlPlane.Scheduler;

/// <summary>
/// Host facts for the scheduler, kept in memory as Nova's HostManager keeps its host states, and brought up to date
/// incrementally: a write in this process makes the next request read only the service and node rows changed since
/// the last look (their <c>change_seq</c>, through an index), so a request at 10,000 hosts reads a handful of rows, not
/// 20,000; other processes' writes are read once the view is a second old, by a read in the background that the
/// requests meanwhile do not wait for (they wait once it is 5 s old). Unchanged rows keep their objects, so
/// <see cref="HostManager"/> keeps their host states. A delete in this process reads everything again; on a shared
/// database (PostgreSQL) so does a minute's age, for other processes' deletes, and each incremental read goes back
/// a window of change numbers, since concurrent transactions can commit their numbers out of order. Heartbeats take
/// no change number: their times are read apart, at most once a second, from the column alone, and a service is judged
/// up as of that read (<see cref="HeartbeatsAsOf"/>), so a view a few seconds old never takes live hosts for silent ones.
/// Capacity never comes from here: placement's claims decide, so a stale view can pick a host that then refuses, never over-commit.
/// </summary>
public sealed class DatabaseHostStateSource(ComputeNodeStore nodes, ServiceStore services, FerryDatabase database, TimeProvider time)
    : IHostStateSource
{
    private const string ComputeBinary = "nova-compute";
    private static readonly TimeSpan s_maxAge = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan s_fullReloadAge = TimeSpan.FromMinutes(1);
    // Past s_maxAge a request uses the view while a background read renews it, until it is this much older.
    private static readonly TimeSpan s_backgroundWindow = TimeSpan.FromSeconds(4);
    // Heartbeats are read from a little before the newest one seen: one whose commit came later than a newer one's is read
    // too. One later still is read with the host's next heartbeat (a host is down only after service_down_time of silence).
    private static readonly TimeSpan s_heartbeatOverlap = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How far back in change numbers a read on a shared database looks again: a transaction that took its number
    /// before others but committed after them is still read, unless more than this many writes came in between
    /// (then the next full reload finds it).
    /// </summary>
    internal const long SharedOverlap = 2048;

    private static readonly Comparer<ComputeNode> s_byId = Comparer<ComputeNode>.Create((a, b) => a.Id.CompareTo(b.Id));

    // Held across the database reads, so one request reads the changes and the others wait for it (asynchronously).
    private readonly SemaphoreSlim _refresh = new(1, 1);
    private volatile Snapshot? _snapshot;
    private int _backgroundRunning;
    private Task _background = Task.CompletedTask;
    private int _fullReads;
    private int _incrementalReads;

    public IReadOnlyList<ComputeNode> GetComputeNodes() => Loaded().Nodes;

    public int IndexOfComputeNode(string uuid) => Loaded().Positions.TryGetValue(uuid, out var position) ? position : -1;

    public IReadOnlyDictionary<string, Service> GetComputeServices() => Loaded().Services;

    public DateTimeOffset? HeartbeatsAsOf => _snapshot?.HeartbeatsAsOf;

    public string GetAvailabilityZone(string host) =>
        Loaded().Services.TryGetValue(host, out var service) ? service.Zone : "nova";

    /// <summary>How many full reads and incremental reads this source made (for tests and diagnostics).</summary>
    internal (int Full, int Incremental) Reads => (_fullReads, _incrementalReads);

    private Snapshot Loaded() =>
        _snapshot ?? throw new InvalidOperationException("The scheduler's host states were read before they were loaded (RefreshAsync).");

    public ValueTask RefreshAsync(CancellationToken cancellationToken)
    {
        var snapshot = _snapshot;
        var now = time.GetTimestamp();
        if (snapshot is not null && IsCurrent(snapshot, now))
        {
            return ValueTask.CompletedTask;
        }
        if (snapshot is not null && !HasOwnWrites(snapshot) && time.GetElapsedTime(snapshot.TakenAt, now) < s_maxAge + s_backgroundWindow)
        {
            // Only other processes' writes can be missing, and the view is at most a few seconds old: this request uses it
            // while one read brings it up to date. At 10,000 hosts that read (a second's heartbeats, ~1,000 rows) was the
            // tail of select_destinations for the request that had to wait on it.
            if (Interlocked.CompareExchange(ref _backgroundRunning, 1, 0) == 0)
            {
                _background = Task.Run(async () =>
                {
                    try
                    {
                        await RefreshNowAsync(CancellationToken.None);
                    }
                    catch (Exception ex) when (ex is not OutOfMemoryException)
                    {
                        // Left as it was: a request once the view is older than the window reads inline and fails with the error.
                    }
                    finally
                    {
                        Volatile.Write(ref _backgroundRunning, 0);
                    }
                });
            }
            return ValueTask.CompletedTask;
        }
        return new ValueTask(RefreshNowAsync(cancellationToken));
    }

    /// <summary>The refresh a request started in the background, if any (tests wait on it).</summary>
    internal Task BackgroundRefresh => _background;

    private async Task RefreshNowAsync(CancellationToken cancellationToken)
    {
        await _refresh.WaitAsync(cancellationToken);
        try
        {
            // Another request may have refreshed it while this one waited.
            var snapshot = _snapshot;
            var now = time.GetTimestamp();
            if (snapshot is not null && IsCurrent(snapshot, now))
            {
                return;
            }
            // Stamps are read before the rows so a concurrent write makes the next call read again.
            var stamps = new Stamps(nodes.ChangeStamp, services.ChangeStamp, nodes.DeleteStamp, services.DeleteStamp);
            var full = snapshot is null
                || stamps.NodeDeletes != snapshot.Stamps.NodeDeletes
                || stamps.ServiceDeletes != snapshot.Stamps.ServiceDeletes
                || (database.IsShared && time.GetElapsedTime(snapshot.FullAt, now) >= s_fullReloadAge);
            var next = full ? await ReadAllAsync(stamps, now, cancellationToken) : await ReadChangesAsync(snapshot!, stamps, now, cancellationToken);
            if (time.GetElapsedTime(next.HeartbeatsReadAt, now) >= s_maxAge)
            {
                next = await ReadHeartbeatsAsync(next, now, cancellationToken);
            }
            _snapshot = next;
        }
        finally
        {
            _refresh.Release();
        }
    }

    private bool IsCurrent(Snapshot snapshot, long now) =>
        !HasOwnWrites(snapshot) && time.GetElapsedTime(snapshot.TakenAt, now) < s_maxAge;

    private bool HasOwnWrites(Snapshot snapshot) =>
        snapshot.Stamps.Nodes != nodes.ChangeStamp || snapshot.Stamps.Services != services.ChangeStamp;

    private async Task<Snapshot> ReadAllAsync(Stamps stamps, long now, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _fullReads);
        var asOf = time.GetUtcNow(); // before the read: every heartbeat written before it is read
        var nodeRows = await nodes.ListChangedSinceAsync(-1, cancellationToken);
        var serviceRows = await services.ListChangedSinceAsync(ComputeBinary, -1, cancellationToken);
        var nodeSeqs = new Dictionary<int, long>(nodeRows.Count);
        var serviceSeqs = new Dictionary<string, long>(serviceRows.Count, StringComparer.Ordinal);
        var byHost = new Dictionary<string, Service>(serviceRows.Count, StringComparer.Ordinal);
        foreach (var (node, seq) in nodeRows)
        {
            nodeSeqs[node.Id] = seq;
        }
        // By id, as services.List gives them, so that of two rows of one host (never, with the unique key) the later wins.
        foreach (var (service, seq) in serviceRows.OrderBy(r => r.Service.Id))
        {
            byHost[service.Host] = service;
            serviceSeqs[service.Host] = seq;
        }
        var ordered = nodeRows.Select(r => r.Node).OrderBy(n => n.Id).ToArray();
        return new Snapshot(ordered, PositionsOf(ordered), byHost, nodeSeqs, serviceSeqs,
            nodeRows.Count == 0 ? 0 : nodeRows.Max(r => r.Seq), serviceRows.Count == 0 ? 0 : serviceRows.Max(r => r.Seq), stamps, now, now,
            now, asOf, byHost.Values.Max(s => s.LastSeenUp));
    }

    /// <summary>The heartbeats since the newest the view has seen (less the overlap), set on the services they came from.</summary>
    private async Task<Snapshot> ReadHeartbeatsAsync(Snapshot old, long now, CancellationToken cancellationToken)
    {
        var asOf = time.GetUtcNow();
        var beats = await services.ListHeartbeatsSinceAsync(ComputeBinary, old.NewestHeartbeat - s_heartbeatOverlap, cancellationToken);
        Dictionary<string, Service>? byHost = null;
        var newest = old.NewestHeartbeat;
        foreach (var (host, at) in beats)
        {
            newest = newest is null || at > newest ? at : newest;
            // A host whose row the view has not read yet comes with its row, on the read of changes.
            if (old.Services.TryGetValue(host, out var service) && service.LastSeenUp != at)
            {
                byHost ??= new Dictionary<string, Service>(old.Services, StringComparer.Ordinal);
                byHost[host] = service with { LastSeenUp = at, UpdatedAt = at > service.UpdatedAt ? at : service.UpdatedAt };
            }
        }
        return old with { Services = byHost ?? old.Services, HeartbeatsReadAt = now, HeartbeatsAsOf = asOf, NewestHeartbeat = newest };
    }

    private async Task<Snapshot> ReadChangesAsync(Snapshot old, Stamps stamps, long now, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _incrementalReads);
        // Rows already seen at the same change number are not changes. The shared overlap looks back over many such
        // rows: there only their keys are read, and the rows of the new pairs.
        List<(ComputeNode Node, long Seq)> changedNodes;
        List<(Service Service, long Seq)> changedServices;
        if (database.IsShared)
        {
            changedNodes = await nodes.ListChangedSinceAsync(old.NodeSeq - SharedOverlap, cancellationToken,
                (id, seq) => !old.NodeSeqs.TryGetValue(id, out var seen) || seen != seq);
            changedServices = await services.ListChangedSinceAsync(ComputeBinary, old.ServiceSeq - SharedOverlap, cancellationToken,
                (host, seq) => !old.ServiceSeqs.TryGetValue(host, out var seen) || seen != seq);
        }
        else
        {
            changedNodes = await nodes.ListChangedSinceAsync(old.NodeSeq, cancellationToken);
            changedServices = await services.ListChangedSinceAsync(ComputeBinary, old.ServiceSeq, cancellationToken);
        }
        if (changedNodes.Count == 0 && changedServices.Count == 0)
        {
            return old with { Stamps = stamps, TakenAt = now };
        }

        var nodeList = old.Nodes;
        var positions = old.Positions;
        var nodeSeqs = old.NodeSeqs;
        var nodeSeq = old.NodeSeq;
        if (changedNodes.Count > 0)
        {
            nodeSeqs = new Dictionary<int, long>(old.NodeSeqs);
            nodeList = (ComputeNode[])old.Nodes.Clone();
            var added = new List<ComputeNode>();
            foreach (var (node, seq) in changedNodes)
            {
                // Ids only grow, so the list stays in id order: an updated node is found by binary search.
                var at = Array.BinarySearch(nodeList, node, s_byId);
                if (at >= 0)
                {
                    nodeList[at] = node;
                }
                else
                {
                    added.Add(node);
                }
                nodeSeqs[node.Id] = seq;
                nodeSeq = Math.Max(nodeSeq, seq);
            }
            if (added.Count > 0)
            {
                nodeList = [.. nodeList.Concat(added).OrderBy(n => n.Id)];
                positions = PositionsOf(nodeList);
            }
        }

        var byHost = old.Services;
        var serviceSeqs = old.ServiceSeqs;
        var serviceSeq = old.ServiceSeq;
        if (changedServices.Count > 0)
        {
            byHost = new Dictionary<string, Service>(old.Services, StringComparer.Ordinal);
            serviceSeqs = new Dictionary<string, long>(old.ServiceSeqs, StringComparer.Ordinal);
            foreach (var (service, seq) in changedServices)
            {
                byHost[service.Host] = service;
                serviceSeqs[service.Host] = seq;
                serviceSeq = Math.Max(serviceSeq, seq);
            }
        }
        return new Snapshot(nodeList, positions, byHost, nodeSeqs, serviceSeqs, nodeSeq, serviceSeq, stamps, now, old.FullAt,
            old.HeartbeatsReadAt, old.HeartbeatsAsOf, old.NewestHeartbeat);
    }

    // A node's uuid is kept for life, so positions change only when nodes come or go.
    private static Dictionary<string, int> PositionsOf(ComputeNode[] nodes)
    {
        var positions = new Dictionary<string, int>(nodes.Length, StringComparer.Ordinal);
        for (var i = 0; i < nodes.Length; i++)
        {
            positions[nodes[i].Uuid] = i;
        }
        return positions;
    }

    private sealed record Stamps(long Nodes, long Services, long NodeDeletes, long ServiceDeletes);

    private sealed record Snapshot(
        ComputeNode[] Nodes,
        Dictionary<string, int> Positions,
        Dictionary<string, Service> Services,
        Dictionary<int, long> NodeSeqs,
        Dictionary<string, long> ServiceSeqs,
        long NodeSeq,
        long ServiceSeq,
        Stamps Stamps,
        long TakenAt,
        long FullAt,
        long HeartbeatsReadAt,
        DateTimeOffset HeartbeatsAsOf,
        DateTimeOffset? NewestHeartbeat);
}
