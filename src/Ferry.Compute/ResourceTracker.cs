using Ferry.Core.Domain;
using Ferry.Core.Placement;
using Ferry.Virt;

namespace Ferry.Compute;

/// <summary>This host's node as the driver sees it, and its inventory reported to placement (Nova's resource tracker).</summary>
public sealed class ResourceTracker(ComputeContext context)
{
    private readonly HostResources _resources = context.Driver.GetHostResources();

    /// <summary>
    /// The node to report, with a new uuid: the conductor keeps a node's uuid for life, so the one it saves is this one
    /// only when the node is new.
    /// </summary>
    public ComputeNode ProposedNode()
    {
        var options = context.Options;
        return new ComputeNode
        {
            Uuid = Guid.NewGuid().ToString(),
            Host = context.Host,
            HypervisorHostname = context.Host,
            HostIp = options.MyIp,
            HypervisorType = _resources.HypervisorType,
            HypervisorVersion = _resources.HypervisorVersion,
            Vcpus = _resources.Vcpus,
            MemoryMb = _resources.MemoryMb,
            LocalGb = _resources.LocalGb,
            CpuInfo = new CpuInfo { Arch = _resources.Arch, Model = _resources.CpuModel, Vendor = _resources.CpuVendor, Features = [.. _resources.CpuFeatures] },
            SupportedArchitectures = [_resources.Arch],
            CpuAllocationRatio = options.CpuAllocationRatio,
            RamAllocationRatio = options.RamAllocationRatio,
            DiskAllocationRatio = options.DiskAllocationRatio,
            ReservedHostMemoryMb = options.ReservedHostMemoryMb,
            BootedAt = context.Time.GetUtcNow(),
        };
    }

    /// <summary>Adopts the node the conductor saved and reports its inventory (a node created now has a new provider too).</summary>
    public async Task ReportInventoryAsync(ComputeNode saved, ComputeNode proposed, CancellationToken ct)
    {
        var options = context.Options;
        context.NodeUuid = saved.Uuid;
        await context.Placement.ReportResourceProviderAsync(saved.Uuid, context.Host, new Dictionary<string, InventoryDto>
        {
            ["VCPU"] = new(_resources.Vcpus, MaxUnit: _resources.Vcpus, AllocationRatio: options.CpuAllocationRatio),
            ["MEMORY_MB"] = new(_resources.MemoryMb, Reserved: options.ReservedHostMemoryMb, MaxUnit: _resources.MemoryMb, AllocationRatio: options.RamAllocationRatio),
            ["DISK_GB"] = new(_resources.LocalGb, MaxUnit: _resources.LocalGb, AllocationRatio: options.DiskAllocationRatio),
        }, newNode: saved.Uuid == proposed.Uuid, ct);
    }
}
