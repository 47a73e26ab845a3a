using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Ferry.Core.Domain;
using Ferry.Host;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests;

/// <summary>
/// What must hold after every test, once the system is quiet: no task_state left, every migration
/// final (or legitimately holding: `finished` awaiting confirm, `done` awaiting the source's return),
/// per provider placement usage equal to what the instances and held migrations account for, and
/// each active instance's guest running on exactly one live host.
/// </summary>
public static class Invariants
{
    public static async Task AssertQuietAndConsistentAsync(AllInOne ferry, TimeSpan? timeout = null)
    {
        var services = ferry.Services;
        var instances = services.GetRequiredService<InstanceStore>();
        var migrations = services.GetRequiredService<MigrationStore>();
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        while (true)
        {
            var busy = instances.List().Where(i => i.TaskState is not null).Select(i => $"{i.Uuid} task_state {i.TaskState}")
                .Concat(migrations.ListUnfinished().Where(m => m.Status is not (MigrationStatus.Finished or MigrationStatus.Done))
                    .Select(m => $"migration {m.Id} {m.MigrationType} {m.Status}"))
                .ToList();
            if (busy.Count == 0)
            {
                break;
            }
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail("Not quiet after the test: " + string.Join("; ", busy));
            }
            await Task.Delay(20);
        }
        AssertPlacementMatches(ferry);
        AssertOneRunningCopy(ferry);
    }

    public static void AssertPlacementMatches(AllInOne ferry)
    {
        var services = ferry.Services;
        var placement = services.GetRequiredService<IPlacementService>();
        var nodes = services.GetRequiredService<ComputeNodeStore>().List();
        var instances = services.GetRequiredService<InstanceStore>().List();
        var catalog = services.GetRequiredService<CatalogStore>().ListFlavors().ToDictionary(f => f.InternalId);
        var migrationStore = services.GetRequiredService<MigrationStore>();
        // `finished` resizes and `done` evacuations still hold their source host.
        var holding = migrationStore.ListUnfinished().Concat(migrationStore.List(new MigrationFilter(Status: MigrationStatus.Done))).ToList();
        foreach (var node in nodes)
        {
            var expected = new Dictionary<string, long> { ["VCPU"] = 0, ["MEMORY_MB"] = 0, ["DISK_GB"] = 0 };
            void Add(Flavor f)
            {
                expected["VCPU"] += f.Vcpus;
                expected["MEMORY_MB"] += f.MemoryMb;
                expected["DISK_GB"] += f.DiskGb;
            }
            foreach (var instance in instances.Where(i => i.Host == node.Host))
            {
                Add(instance.Flavor);
            }
            foreach (var m in holding.Where(m => m.SourceCompute == node.Host))
            {
                if (m.Status == MigrationStatus.Finished && m.OldInstanceTypeId is { } old)
                {
                    Add(catalog[old]);
                }
                if (m.Status == MigrationStatus.Done && instances.FirstOrDefault(i => i.Uuid == m.InstanceUuid) is { } evacuated)
                {
                    Add(evacuated.Flavor);
                }
            }
            var actual = placement.GetProviderUsages(node.Uuid);
            foreach (var (rc, amount) in expected)
            {
                Assert.True(actual.GetValueOrDefault(rc) == amount,
                    $"{node.Host} {rc}: placement says {actual.GetValueOrDefault(rc)}, instances and migrations hold {amount}");
            }
        }
    }

    public static void AssertOneRunningCopy(AllInOne ferry)
    {
        var instances = ferry.Services.GetRequiredService<InstanceStore>().List();
        var live = ferry.Computes.Values.Where(c => c.IsRunning).ToList();
        foreach (var instance in instances.Where(i => i.VmState == VmState.Active))
        {
            var running = live.Where(c => c.Driver.GetGuest(instance.Uuid)?.PowerState == Virt.GuestPowerState.Running).Select(c => c.Host).ToList();
            var hostAlive = live.Any(c => c.Host == instance.Host);
            if (hostAlive)
            {
                Assert.True(running.SequenceEqual([instance.Host!]),
                    $"Instance {instance.Uuid} on {instance.Host} runs on [{string.Join(", ", running)}]");
            }
            else
            {
                Assert.True(running.Count == 0, $"Instance {instance.Uuid} of a dead host runs on [{string.Join(", ", running)}]");
            }
        }
    }
}
