using Ferry.ControlPlane.Placement;
using Ferry.ControlPlane.Scheduler;
using Ferry.Core.Domain;
using Microsoft.Extensions.Options;

namespace Ferry.Tests.Scheduler;

/// <summary>Builders shared by the scheduler tests.</summary>
internal static class SchedulerTestData
{
    public static readonly DateTimeOffset Now = new(2025, 1, 1, 12, 0, 0, TimeSpan.Zero);

    public static Flavor Flavor(int vcpus = 2, int memoryMb = 2048, int rootGb = 20) => new()
    {
        InternalId = 1,
        Id = "flavor-" + vcpus + "-" + memoryMb + "-" + rootGb,
        Name = "m1.test",
        Vcpus = vcpus,
        MemoryMb = memoryMb,
        RootGb = rootGb,
    };

    public static RequestSpec Spec(
        string instanceUuid = "inst-1",
        Flavor? flavor = null,
        string? availabilityZone = null,
        Dictionary<string, string>? imageProperties = null,
        ServerGroupPolicy? group = null,
        Dictionary<string, List<string>>? hints = null,
        List<string>? ignoreHosts = null,
        string? requestedHost = null,
        Dictionary<string, List<string>>? hintedHosts = null) => new()
    {
        InstanceUuid = instanceUuid,
        ProjectId = "project-1",
        UserId = "user-1",
        Flavor = flavor ?? Flavor(),
        AvailabilityZone = availabilityZone,
        ImageProperties = imageProperties ?? [],
        Group = group,
        SchedulerHints = hints ?? [],
        HintedHosts = hintedHosts ?? [],
        IgnoreHosts = ignoreHosts ?? [],
        RequestedHost = requestedHost,
    };

    public static Service Service(string host, bool disabled = false, bool forcedDown = false, DateTimeOffset? lastSeenUp = null) => new()
    {
        Id = 1,
        Uuid = "svc-" + host,
        Host = host,
        Binary = "nova-compute",
        Topic = "compute",
        Disabled = disabled,
        ForcedDown = forcedDown,
        LastSeenUp = lastSeenUp ?? Now,
        CreatedAt = Now.AddDays(-1),
        UpdatedAt = Now,
    };

    public static HostState State(
        string host,
        long freeMemoryMb = 4096,
        long freeVcpus = 8,
        long freeDiskGb = 100,
        Service? service = null,
        string availabilityZone = "nova",
        string hypervisorType = "QEMU",
        long hypervisorVersion = 8_002_000,
        IReadOnlyList<string>? architectures = null) => new()
    {
        Host = host,
        Nodename = host + ".node",
        NodeUuid = "rp-" + host,
        TotalMemoryMb = 16384,
        FreeMemoryMb = freeMemoryMb,
        TotalVcpus = 16,
        FreeVcpus = freeVcpus,
        TotalDiskGb = 500,
        FreeDiskGb = freeDiskGb,
        Service = service ?? Service(host),
        AvailabilityZone = availabilityZone,
        HypervisorType = hypervisorType,
        HypervisorVersion = hypervisorVersion,
        SupportedArchitectures = architectures ?? ["x86_64"],
    };

    /// <summary>A host of 16 vCPUs, <paramref name="memoryMb"/> and 200 GB: its provider and inventory put in placement, its compute node returned.</summary>
    public static ComputeNode AddHost(IPlacementService placement, string uuid, string host, int memoryMb)
    {
        placement.EnsureProvider(uuid, host + ".node");
        placement.SetInventories(uuid, null, new Dictionary<string, Inventory>
        {
            [ResourceClasses.Vcpu] = new() { Total = 16 },
            [ResourceClasses.MemoryMb] = new() { Total = memoryMb },
            [ResourceClasses.DiskGb] = new() { Total = 200 },
        });
        return new ComputeNode
        {
            Uuid = uuid,
            Host = host,
            HypervisorHostname = host + ".node",
            HypervisorType = "QEMU",
            HypervisorVersion = 8_002_000,
            Vcpus = 16,
            MemoryMb = memoryMb,
            LocalGb = 200,
        };
    }

    public static IOptions<SchedulerOptions> Options(Action<SchedulerOptions>? configure = null)
    {
        var options = new SchedulerOptions();
        configure?.Invoke(options);
        return Microsoft.Extensions.Options.Options.Create(options);
    }
}

/// <summary>A clock the test moves by hand.</summary>
internal sealed class ManualTimeProvider(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = now;

    public override DateTimeOffset GetUtcNow() => Now;
}

/// <summary>An in-memory <see cref="IHostStateSource"/> whose contents the test sets directly.</summary>
internal sealed class TestHostStateSource : IHostStateSource
{
    public List<ComputeNode> Nodes { get; } = [];
    public Dictionary<string, Service> Services { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, string> Zones { get; } = new(StringComparer.Ordinal);

    public int Refreshes { get; private set; }

    public ValueTask RefreshAsync(CancellationToken cancellationToken)
    {
        Refreshes++;
        return ValueTask.CompletedTask;
    }

    public IReadOnlyList<ComputeNode> GetComputeNodes() => Nodes;

    public int IndexOfComputeNode(string uuid) => Nodes.FindIndex(n => n.Uuid == uuid);

    public IReadOnlyDictionary<string, Service> GetComputeServices() => Services;

    public string GetAvailabilityZone(string host) => Zones.GetValueOrDefault(host, "nova");

    public DateTimeOffset? HeartbeatsAsOf { get; set; }
}
