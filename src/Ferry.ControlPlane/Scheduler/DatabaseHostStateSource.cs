using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;

namespace Ferry.ControlPlane.Scheduler;

/// <summary>
/// Host facts for the scheduler, read from the database and cached until a service or node row
/// changes (or a second passes, so heartbeats are seen): scheduling then costs no query at all.
/// </summary>
public sealed class DatabaseHostStateSource(ComputeNodeStore nodes, ServiceStore services, InstanceStore instances, TimeProvider time) : IHostStateSource
{
    private static readonly TimeSpan s_maxAge = TimeSpan.FromSeconds(1);
    private volatile Snapshot? _snapshot;

    public IReadOnlyList<ComputeNode> GetComputeNodes() => Current().Nodes;

    public IReadOnlyDictionary<string, Service> GetComputeServices() => Current().Services;

    public string? GetInstanceHost(string instanceUuid) => instances.Find(instanceUuid)?.Host;

    public string GetAvailabilityZone(string host) =>
        Current().Services.TryGetValue(host, out var service) ? service.Zone : "nova";

    private Snapshot Current()
    {
        var snapshot = _snapshot;
        var now = time.GetTimestamp();
        if (snapshot is not null
            && snapshot.NodeStamp == nodes.ChangeStamp
            && snapshot.ServiceStamp == services.ChangeStamp
            && time.GetElapsedTime(snapshot.TakenAt, now) < s_maxAge)
        {
            return snapshot;
        }
        // Stamps are read before the rows so a concurrent write makes the next call reload.
        var nodeStamp = nodes.ChangeStamp;
        var serviceStamp = services.ChangeStamp;
        snapshot = new Snapshot(
            nodes.List(),
            services.List(binary: "nova-compute").ToDictionary(s => s.Host),
            nodeStamp,
            serviceStamp,
            now);
        _snapshot = snapshot;
        return snapshot;
    }

    private sealed record Snapshot(List<ComputeNode> Nodes, Dictionary<string, Service> Services, long NodeStamp, long ServiceStamp, long TakenAt);
}
