using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Ferry.ControlPlane.Scheduler;
using Ferry.Core.Domain;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Ferry.Benchmarks;

/// <summary>
/// A scheduler over a large cloud without the rest of Ferry: placement on a temp SQLite file holding
/// <c>hosts</c> providers (VCPU 64 ratio 4, MEMORY_MB 262144, DISK_GB 4000) and <c>instances</c>
/// allocations spread over them, and a host-state source with one up compute service per node.
/// </summary>
internal sealed class SchedulerWorld : IDisposable
{
    private readonly ServiceProvider _services;
    private readonly string _directory;
    private int _next;

    public SchedulerWorld(int hosts, int instances)
    {
        _directory = Directory.CreateTempSubdirectory("ferry-bench-sched-").FullName;
        var source = new BenchHostStateSource();
        var services = new ServiceCollection();
        services.AddLogging(l => l.ClearProviders().SetMinimumLevel(LogLevel.None));
        services.AddSingleton(new FerryDatabase(Path.Combine(_directory, "placement.db")));
        services.AddFerryPlacement();
        services.AddSingleton<IHostStateSource>(source);
        // The services' heartbeats are frozen at setup: a long service_down_time keeps them up for a long BDN run.
        services.AddFerryScheduler(o => o.ServiceDownTime = TimeSpan.FromDays(1));
        _services = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true });
        Placement = _services.GetRequiredService<IPlacementService>();
        Scheduler = _services.GetRequiredService<SchedulerManager>();

        var now = DateTimeOffset.UtcNow;
        var inventories = new Dictionary<string, Inventory>(StringComparer.Ordinal)
        {
            [ResourceClasses.Vcpu] = new() { Total = 64, AllocationRatio = 4.0 },
            [ResourceClasses.MemoryMb] = new() { Total = 262_144 },
            [ResourceClasses.DiskGb] = new() { Total = 4_000 },
        };
        var uuids = new string[hosts];
        for (var h = 0; h < hosts; h++)
        {
            var name = $"host{h:D4}";
            var uuid = uuids[h] = Guid.NewGuid().ToString();
            Placement.EnsureProvider(uuid, name);
            Placement.SetInventories(uuid, null, inventories);
            source.Nodes.Add(new ComputeNode
            {
                Id = h + 1,
                Uuid = uuid,
                Host = name,
                HypervisorHostname = name,
                HypervisorType = "QEMU",
                HypervisorVersion = 8_002_000,
                Vcpus = 64,
                MemoryMb = 262_144,
                LocalGb = 4_000,
            });
            source.Services[name] = new Service
            {
                Id = h + 1,
                Uuid = Guid.NewGuid().ToString(),
                Host = name,
                Binary = "nova-compute",
                Topic = "compute",
                LastSeenUp = now,
                CreatedAt = now,
                UpdatedAt = now,
            };
        }

        // Existing instances, of assorted sizes, spread unevenly so the weighers have work to do.
        var random = new Random(42);
        var batch = new Dictionary<string, AllocationRequest>(StringComparer.Ordinal);
        for (var i = 0; i < instances; i++)
        {
            var vcpus = 1 << random.Next(0, 3);
            batch[Guid.NewGuid().ToString()] = new AllocationRequest
            {
                Allocations = new(StringComparer.Ordinal)
                {
                    [uuids[random.Next(hosts)]] = new(StringComparer.Ordinal)
                    {
                        [ResourceClasses.Vcpu] = vcpus,
                        [ResourceClasses.MemoryMb] = 1024L * vcpus * (1 + random.Next(2)),
                        [ResourceClasses.DiskGb] = 10L * (1 + random.Next(4)),
                    },
                },
                ProjectId = $"project-{i % 50}",
                UserId = "user-1",
            };
            if (batch.Count == 500 || i == instances - 1)
            {
                Placement.PostAllocations(batch);
                batch.Clear();
            }
        }
    }

    public IPlacementService Placement { get; }
    public SchedulerManager Scheduler { get; }

    public static readonly Flavor Small = new() { InternalId = 2, Id = "2", Name = "m1.small", Vcpus = 1, MemoryMb = 2048, RootGb = 20 };

    /// <summary>A boot request for a new instance (Nova asks for two alternates by default: max_attempts 3).</summary>
    public RequestSpec NextSpec() => new()
    {
        InstanceUuid = $"bench-{Interlocked.Increment(ref _next):D8}-0000-0000-0000-000000000000",
        ProjectId = "project-bench",
        UserId = "user-bench",
        Flavor = Small,
    };

    public void Dispose()
    {
        _services.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private sealed class BenchHostStateSource : IHostStateSource
    {
        public List<ComputeNode> Nodes { get; } = [];
        public Dictionary<string, Service> Services { get; } = new(StringComparer.Ordinal);

        public ValueTask RefreshAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public IReadOnlyList<ComputeNode> GetComputeNodes() => Nodes;

        // Filled at the first request, after setup has added every node.
        private Dictionary<string, int>? _positions;

        public int IndexOfComputeNode(string uuid)
        {
            _positions ??= Nodes.Select((n, i) => (n.Uuid, i)).ToDictionary(p => p.Uuid, p => p.i, StringComparer.Ordinal);
            return _positions.TryGetValue(uuid, out var position) ? position : -1;
        }

        public IReadOnlyDictionary<string, Service> GetComputeServices() => Services;

        public string GetAvailabilityZone(string host) => "nova";
    }
}
