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
        var node = await context.Conductor.UpdateComputeNodeAsync(new ComputeNodeUpdateRequest(new ComputeNode
        {
            Uuid = Guid.NewGuid().ToString(),
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
        await context.Placement.EnsureResourceProviderAsync(node.Uuid, context.Host, ct);
        await context.Placement.SetInventoriesAsync(node.Uuid, new Dictionary<string, InventoryDto>
        {
            ["VCPU"] = new(resources.Vcpus, MaxUnit: resources.Vcpus, AllocationRatio: options.CpuAllocationRatio),
            ["MEMORY_MB"] = new(resources.MemoryMb, Reserved: options.ReservedHostMemoryMb, MaxUnit: resources.MemoryMb, AllocationRatio: options.RamAllocationRatio),
            ["DISK_GB"] = new(resources.LocalGb, MaxUnit: resources.LocalGb, AllocationRatio: options.DiskAllocationRatio),
        }, ct);
        return node;
    }
}
