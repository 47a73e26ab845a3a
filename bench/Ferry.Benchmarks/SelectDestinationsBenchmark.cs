using BenchmarkDotNet.Attributes;
using Ferry.ControlPlane.Placement;

namespace Ferry.Benchmarks;

/// <summary>
/// `./ferry bench bdn`: select_destinations over 1,000 hosts carrying 10,000 instances. Each invocation
/// claims for a new instance and releases the claim (placement's delete is part of the figure), so the
/// cloud stays the same size however many invocations BDN runs.
/// </summary>
[MemoryDiagnoser]
public class SelectDestinationsBenchmark
{
    private SchedulerWorld _world = null!;
    private Dictionary<string, long> _resources = null!;

    [GlobalSetup]
    public void Setup()
    {
        _world = new SchedulerWorld(hosts: 1_000, instances: 10_000);
        _resources = new(StringComparer.Ordinal) { [ResourceClasses.Vcpu] = 1, [ResourceClasses.MemoryMb] = 2048, [ResourceClasses.DiskGb] = 20 };
    }

    [GlobalCleanup]
    public void Cleanup() => _world.Dispose();

    [Benchmark(Description = "select_destinations + release, 1000 hosts")]
    public async Task<int> SelectDestinationsAndRelease()
    {
        var spec = _world.NextSpec();
        var count = (await _world.Scheduler.SelectDestinationsAsync(spec, numAlternates: 2, CancellationToken.None)).Count;
        _world.Placement.DeleteAllocations(spec.InstanceUuid);
        return count;
    }

    [Benchmark(Description = "allocation candidates only, 1000 hosts")]
    public int AllocationCandidates() =>
        _world.Placement.GetAllocationCandidates(_resources, null, [Ferry.ControlPlane.Scheduler.SchedulerManager.ComputeStatusDisabledTrait], null, 1000).ProviderUuids.Count;
}
