using System.Diagnostics;
using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Ferry.ControlPlane.Scheduler;
using Ferry.Core.Domain;
using Ferry.Host;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Ferry.Benchmarks;

/// <summary>
/// The all-in-one (one fake agent) over a large cloud written straight into its database through the stores and
/// placement, with no agent behind the seeded hosts: <c>hosts</c> compute services and nodes (up: service_down_time
/// is a day), their providers (VCPU 64 ratio 4, MEMORY_MB 262144, DISK_GB 4000), and <c>instances</c> ACTIVE servers
/// in 50 projects spread over them with their allocations. The API, the real scheduler and its host-state source
/// then read it as they would a real cloud of that size. SQLite in a temp directory, or a PostgreSQL database.
/// </summary>
internal sealed class QueryWorld : IAsyncDisposable
{
    private static readonly TimeSpan s_bootLimit = TimeSpan.FromSeconds(60);
    private readonly string _dataDirectory;
    private int _next;

    private QueryWorld(string dataDirectory, AllInOne ferry)
    {
        _dataDirectory = dataDirectory;
        Ferry = ferry;
        Http = InProcessFerry.Client(ferry.Options.ComputeApiUrl);
        Placement = ferry.Services.GetRequiredService<IPlacementService>();
        Scheduler = ferry.Services.GetRequiredService<SchedulerManager>();
    }

    public AllInOne Ferry { get; }
    public HttpClient Http { get; }
    public IPlacementService Placement { get; }
    public SchedulerManager Scheduler { get; }
    public double SeedMs { get; private set; }

    public static readonly Flavor[] Flavors =
    [
        new() { InternalId = 1, Id = "1", Name = "q.small", Vcpus = 1, MemoryMb = 1024, RootGb = 10 },
        new() { InternalId = 2, Id = "2", Name = "q.medium", Vcpus = 2, MemoryMb = 4096, RootGb = 20 },
        new() { InternalId = 3, Id = "3", Name = "q.large", Vcpus = 4, MemoryMb = 8192, RootGb = 40 },
    ];

    /// <param name="database">A PostgreSQL connection string, or null for SQLite in the data directory.</param>
    public static async Task<QueryWorld> StartAsync(int hosts, int instances, string? database, Action<string> log)
    {
        var dataDirectory = Directory.CreateTempSubdirectory("ferry-bench-queries-").FullName;
        var options = new FerryHostOptions
        {
            DataDirectory = dataDirectory,
            Database = database,
            ComputeApiPort = 0,
            PlacementPort = 0,
            ImagePort = 0,
            NetworkPort = 0,
            VolumePort = 0,
            Hosts = 1,
            FakeTimeScale = 0,
            FakeBandwidthMiBps = 0,
            ServiceDownTime = TimeSpan.FromDays(1), // the seeded hosts never heartbeat
            Metrics = false,
        };
        var ferry = AllInOne.Build(options, logging => logging.ClearProviders().SetMinimumLevel(LogLevel.None));
        using (var cts = new CancellationTokenSource(s_bootLimit))
        {
            await ferry.StartAsync(cts.Token);
        }
        var world = new QueryWorld(dataDirectory, ferry);
        var seed = Stopwatch.StartNew();
        world.Seed(hosts, instances, parallel: database is not null, log);
        world.SeedMs = seed.Elapsed.TotalMilliseconds;
        return world;
    }

    private void Seed(int hostCount, int instanceCount, bool parallel, Action<string> log)
    {
        var services = Ferry.Services.GetRequiredService<ServiceStore>();
        var nodes = Ferry.Services.GetRequiredService<ComputeNodeStore>();
        var instances = Ferry.Services.GetRequiredService<InstanceStore>();
        var inventories = new Dictionary<string, Inventory>(StringComparer.Ordinal)
        {
            [ResourceClasses.Vcpu] = new() { Total = 64, AllocationRatio = 4.0 },
            [ResourceClasses.MemoryMb] = new() { Total = 262_144 },
            [ResourceClasses.DiskGb] = new() { Total = 4_000 },
        };
        var uuids = new string[hostCount];
        var names = new string[hostCount];
        // One worker on SQLite (one connection under a lock anyway); a few on PostgreSQL, whose round trips dominate.
        var workers = new ParallelOptions { MaxDegreeOfParallelism = parallel ? 8 : 1 };
        Parallel.For(0, hostCount, workers, h =>
        {
            var name = names[h] = $"qhost{h:D5}";
            services.Report(name, "nova-compute", "compute", 1);
            var node = nodes.Upsert(new ComputeNode
            {
                Uuid = Guid.NewGuid().ToString(), Host = name, HypervisorHostname = name, HypervisorType = "fake",
                HypervisorVersion = 1000, Vcpus = 64, MemoryMb = 262_144, LocalGb = 4_000,
            });
            uuids[h] = node.Uuid;
            Placement.EnsureProvider(node.Uuid, name);
            Placement.SetInventories(node.Uuid, null, inventories);
        });
        log($"seeded {hostCount} hosts");

        var start = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        const int Batch = 500;
        Parallel.For(0, (instanceCount + Batch - 1) / Batch, workers, b =>
        {
            var random = new Random(b);
            var allocations = new Dictionary<string, AllocationRequest>(StringComparer.Ordinal);
            for (var i = b * Batch; i < Math.Min(instanceCount, (b + 1) * Batch); i++)
            {
                var h = random.Next(hostCount);
                var flavor = Flavors[random.Next(Flavors.Length)];
                var project = $"project-{i % 50:D2}";
                var created = start.AddSeconds(i / 4); // four servers a second: created_at ties the id must break
                var instance = instances.Create(id => new Instance
                {
                    Id = id, Uuid = Guid.NewGuid().ToString(), DisplayName = $"q-{i}", ProjectId = project, UserId = project,
                    Host = names[h], Node = names[h], Flavor = flavor, ImageRef = "ferry-test-guest",
                    VmState = VmState.Active, PowerState = PowerState.Running, CreatedAt = created, UpdatedAt = created, LaunchedAt = created,
                    Metadata = new() { ["role"] = "bench" },
                });
                allocations[instance.Uuid] = new AllocationRequest
                {
                    Allocations = new(StringComparer.Ordinal)
                    {
                        [uuids[h]] = new(StringComparer.Ordinal)
                        {
                            [ResourceClasses.Vcpu] = flavor.Vcpus,
                            [ResourceClasses.MemoryMb] = flavor.MemoryMb,
                            [ResourceClasses.DiskGb] = flavor.RootGb,
                        },
                    },
                    ProjectId = project,
                    UserId = project,
                };
            }
            Placement.PostAllocations(allocations);
            if ((b + 1) * Batch % 20_000 == 0)
            {
                log($"seeded {(b + 1) * Batch} instances");
            }
        });
    }

    /// <summary>A boot request for a new instance (two alternates, as Nova's max_attempts 3 asks).</summary>
    public RequestSpec NextSpec() => new()
    {
        InstanceUuid = $"bench-{Interlocked.Increment(ref _next):D8}-0000-0000-0000-000000000000",
        ProjectId = "project-bench",
        UserId = "user-bench",
        Flavor = Flavors[0],
    };

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await Ferry.DisposeAsync();
        try
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
