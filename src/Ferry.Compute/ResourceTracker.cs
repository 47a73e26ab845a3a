using Ferry.Core.Domain;
using Ferry.Core.Placement;
using Ferry.Core.Rpc.Conductor;

namespace Ferry.Compute;

/// <summary>Reports this host's node to the conductor and its inventory to placement (Nova's resource tracker).</summary>
public sealed class ResourceTracker(ComputeContext context)
{
    public async Task<ComputeNode> ReportAsync(CancellationToken ct)
    {
        var resources = context.Driver.GetHostResources();
        var options = context.Options;
        var proposedUuid = Guid.NewGuid().ToString();
        var node = await context.Conductor.UpdateComputeNodeAsync(new ComputeNodeUpdateRequest(new ComputeNode
        {
            Uuid = proposedUuid,
            Host = context.Host,
            HypervisorHostname = context.Host,
            HostIp = options.MyIp,
            HypervisorType = resources.HypervisorType,
            HypervisorVersion = resources.HypervisorVersion,
            Vcpus = resources.Vcpus,
            MemoryMb = resources.MemoryMb,
            LocalGb = resources.LocalGb,
            CpuInfo = new CpuInfo { Arch = resources.Arch, Model = resources.CpuModel, Vendor = resources.CpuVendor, Features = [.. resources.CpuFeatures] },
            SupportedArchitectures = [resources.Arch],
            CpuAllocationRatio = options.CpuAllocationRatio,
            RamAllocationRatio = options.RamAllocationRatio,
            DiskAllocationRatio = options.DiskAllocationRatio,
            ReservedHostMemoryMb = options.ReservedHostMemoryMb,
            BootedAt = context.Time.GetUtcNow(),
        }), ct);
        context.NodeUuid = node.Uuid;
        // The conductor keeps a node's uuid for life: ours back means the node was created now, so its provider is new too.
        await context.Placement.ReportResourceProviderAsync(node.Uuid, context.Host, new Dictionary<string, InventoryDto>
        {
            ["VCPU"] = new(resources.Vcpus, MaxUnit: resources.Vcpus, AllocationRatio: options.CpuAllocationRatio),
            ["MEMORY_MB"] = new(resources.MemoryMb, Reserved: options.ReservedHostMemoryMb, MaxUnit: resources.MemoryMb, AllocationRatio: options.RamAllocationRatio),
            ["DISK_GB"] = new(resources.LocalGb, MaxUnit: resources.LocalGb, AllocationRatio: options.DiskAllocationRatio),
        }, newNode: node.Uuid == proposedUuid, ct);
        return node;
    }
}
