using System.Diagnostics;
using Ferry.Compute;
using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Ferry.Core.Domain;
using Ferry.Host;
using Ferry.Virt.Fake;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.Benchmarks;

/// <summary>
/// Builds a large world in a running all-in-one on the fake driver without booting through the API (100,000 boots at
/// ~170/s would take 10 minutes): for each instance the database row a finished boot leaves (ACTIVE, running, on its
/// host and node, no task), its allocation in placement against the host's provider, and its guest spawned on the host's
/// fake hypervisor (definition file and instance directory, as a boot leaves them), so the functional tests' invariants
/// hold and a restart on the same data directory finds every guest again. Shared by `./ferry bench --only scale` and the
/// bounded scale test (linked into Ferry.FunctionalTests).
/// </summary>
public static class ScaleWorld
{
    /// <summary>Instances seeded per host at once: a host's guests are spawned in order, hosts in parallel.</summary>
    private const int HostConcurrency = 16;

    /// <summary>
    /// Seeds <paramref name="instances"/> ACTIVE instances of <paramref name="flavorName"/> spread round-robin over every
    /// running compute agent of <paramref name="ferry"/> (each agent's first start must be over: its node and provider exist).
    /// </summary>
    /// <returns>The seeded instances' uuids, by host.</returns>
    public static async Task<SeedResult> SeedAsync(AllInOne ferry, int instances, CancellationToken ct,
        string flavorName = "m1.nano", string projectId = "admin", string userId = "admin")
    {
        var services = ferry.Services;
        var hosts = ferry.Computes.Values.Where(c => c.IsRunning).Select(c => c.Host).Order(StringComparer.Ordinal).ToList();
        return await SeedAsync(services.GetRequiredService<InstanceStore>(), services.GetRequiredService<IPlacementService>(),
            services.GetRequiredService<CatalogStore>(), services.GetRequiredService<ComputeNodeStore>(), hosts, host => (FakeDriver)ferry.Drivers[host],
            instances, ct, flavorName, projectId, userId);
    }

    /// <summary>
    /// Seeds <paramref name="instances"/> ACTIVE instances round-robin over <paramref name="hosts"/> through the stores and
    /// placement, each guest spawned by <paramref name="driverOf"/> its host (the distributed bench: a driver on the host's
    /// instances directory while its agent is stopped, so the agent finds the guest when it starts).
    /// </summary>
    public static async Task<SeedResult> SeedAsync(InstanceStore store, IPlacementService placement, CatalogStore catalog, ComputeNodeStore computeNodes,
        IReadOnlyList<string> hosts, Func<string, FakeDriver> driverOf, int instances, CancellationToken ct,
        string flavorName = "m1.nano", string projectId = "admin", string userId = "admin")
    {
        ArgumentOutOfRangeException.ThrowIfNegative(instances);
        var started = Stopwatch.GetTimestamp();
        var flavor = catalog.FindFlavor(flavorName) ?? throw new InvalidOperationException($"No flavor {flavorName} to seed with.");
        var image = catalog.ListImages().FirstOrDefault(i => i.Name == "ferry-test-guest")
            ?? throw new InvalidOperationException("No image ferry-test-guest to seed with.");
        var nodes = (await computeNodes.ListAsync(ct)).ToDictionary(n => n.Host, StringComparer.Ordinal);
        if (hosts.Count == 0 && instances > 0)
        {
            throw new InvalidOperationException("No running compute host to seed instances on.");
        }
        var perHost = hosts.ToDictionary(h => h, _ => 0, StringComparer.Ordinal);
        for (var i = 0; i < instances; i++)
        {
            perHost[hosts[i % hosts.Count]]++;
        }
        var byHost = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        await Parallel.ForEachAsync(hosts.Where(h => perHost[h] > 0), new ParallelOptions { MaxDegreeOfParallelism = HostConcurrency, CancellationToken = ct },
            async (host, token) =>
            {
                var node = nodes[host];
                var driver = driverOf(host);
                var now = DateTimeOffset.UtcNow;
                var created = store.CreateMany(perHost[host], (n, id) => new Instance
                {
                    Id = id,
                    Uuid = Guid.NewGuid().ToString(),
                    DisplayName = $"scale-{host}-{n}",
                    ProjectId = projectId,
                    UserId = userId,
                    Host = host,
                    Node = node.HypervisorHostname,
                    Flavor = flavor,
                    ImageRef = image.Id,
                    VmState = VmState.Active,
                    PowerState = PowerState.Running,
                    CreatedAt = now,
                    UpdatedAt = now,
                    LaunchedAt = now,
                });
                // One placement write per host: its instances' allocations against its provider, as the scheduler claims them.
                placement.PostAllocations(created.ToDictionary(i => i.Uuid, i => new AllocationRequest
                {
                    Allocations = new(StringComparer.Ordinal)
                    {
                        [node.Uuid] = new(StringComparer.Ordinal)
                        {
                            [ResourceClasses.Vcpu] = flavor.Vcpus,
                            [ResourceClasses.MemoryMb] = flavor.MemoryMb,
                            [ResourceClasses.DiskGb] = flavor.DiskGb,
                        },
                    },
                    ProjectId = projectId,
                    UserId = userId,
                }, StringComparer.Ordinal));
                foreach (var instance in created)
                {
                    await driver.SpawnAsync(ComputeContext.GuestFor(instance), reuseDisks: false, token);
                }
                lock (byHost)
                {
                    byHost[host] = [.. created.Select(i => i.Uuid)];
                }
            });
        return new SeedResult(byHost, instances, Stopwatch.GetElapsedTime(started));
    }

    /// <summary>What <see cref="SeedAsync"/> made: instance uuids by host, their count and the time it took.</summary>
    public sealed record SeedResult(IReadOnlyDictionary<string, List<string>> InstancesByHost, int Instances, TimeSpan Elapsed);
}
