using Ferry.ControlPlane.Placement;
using Ferry.Core.Domain;

namespace Ferry.ControlPlane.Scheduler;

/// <summary>
/// One compute node as the filters and weighers see it (nova/scheduler/host_manager.py HostState).
/// Capacity comes from placement's provider summary, the rest from the compute node and its service.
/// Immutable, so <see cref="HostManager"/> reuses it across concurrent requests until one of its
/// inputs changes; a request's weights live beside it in <see cref="Weighers.WeighedHost"/>.
/// </summary>
public sealed class HostState
{
    private readonly IHostStateSource? _zoneSource;
    private readonly string? _availabilityZone;

    public HostState()
    {
    }

    private HostState(ComputeNode node, Service? service, ProviderSummary summary, IHostStateSource zoneSource)
    {
        Node = node;
        Summary = summary;
        _zoneSource = zoneSource;
        Service = service;
    }

    public required string Host { get; init; }
    public required string Nodename { get; init; }
    /// <summary>The compute node's uuid, which is also its resource provider's.</summary>
    public required string NodeUuid { get; init; }

    public long TotalVcpus { get; init; }
    public long FreeVcpus { get; init; }
    public long TotalMemoryMb { get; init; }
    public long FreeMemoryMb { get; init; }
    public long TotalDiskGb { get; init; }
    public long FreeDiskGb { get; init; }

    public string HypervisorType { get; init; } = "";
    public long HypervisorVersion { get; init; }
    public IReadOnlyList<string> SupportedArchitectures { get; init; } = [];

    /// <summary>The host's nova-compute service; null when it has none (such a host never passes ComputeFilter).</summary>
    public Service? Service { get; init; }

    /// <summary>
    /// Asked of the source on each read, not cached: zones change without the node changing, and
    /// only the AZ filter and the selected hosts ever ask.
    /// </summary>
    public string AvailabilityZone
    {
        get => _availabilityZone ?? _zoneSource?.GetAvailabilityZone(Host) ?? "nova";
        init => _availabilityZone = value;
    }

    /// <summary>The inputs this state was built from, to tell whether it is still current.</summary>
    internal ComputeNode? Node { get; }

    internal ProviderSummary? Summary { get; }

    internal bool IsCurrent(ComputeNode node, Service? service, ProviderSummary summary) =>
        ReferenceEquals(Node, node) && ReferenceEquals(Service, service) && ReferenceEquals(Summary, summary);

    /// <summary>Builds the state of a candidate node from its placement summary.</summary>
    public static HostState Create(ComputeNode node, Service? service, ProviderSummary summary, IHostStateSource zoneSource)
    {
        var (totalVcpus, freeVcpus) = Amounts(summary, ResourceClasses.Vcpu);
        var (totalMemory, freeMemory) = Amounts(summary, ResourceClasses.MemoryMb);
        var (totalDisk, freeDisk) = Amounts(summary, ResourceClasses.DiskGb);
        return new HostState(node, service, summary, zoneSource)
        {
            Host = node.Host,
            Nodename = node.HypervisorHostname,
            NodeUuid = node.Uuid,
            TotalVcpus = totalVcpus,
            FreeVcpus = freeVcpus,
            TotalMemoryMb = totalMemory,
            FreeMemoryMb = freeMemory,
            TotalDiskGb = totalDisk,
            FreeDiskGb = freeDisk,
            HypervisorType = node.HypervisorType,
            HypervisorVersion = node.HypervisorVersion,
            SupportedArchitectures = node.SupportedArchitectures,
        };
    }

    private static (long Total, long Free) Amounts(ProviderSummary summary, string resourceClass) =>
        summary.Resources.TryGetValue(resourceClass, out var r) ? (r.Capacity, r.Capacity - r.Used) : (0, 0);

    public override string ToString() => $"({Host}, {Nodename})";
}
