using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Ferry.ControlPlane.Scheduler;
using Ferry.ControlPlane.Scheduler.Filters;
using Ferry.ControlPlane.Scheduler.Weighers;
using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Microsoft.Extensions.Logging.Abstractions;
using static Ferry.Tests.Scheduler.SchedulerTestData;

namespace Ferry.Tests.Scheduler;

/// <summary>select_destinations against a real <see cref="PlacementService"/> on an in-memory database.</summary>
public sealed class SchedulerManagerTests : IDisposable
{
    // Equal vCPU and disk everywhere, so free RAM decides: h2 > h3 > h1 > h4.
    private static readonly (string Host, int MemoryMb)[] s_hosts = [("h1", 8192), ("h2", 16384), ("h3", 12288), ("h4", 4096)];

    private readonly FerryDatabase _database = new(":memory:");
    private readonly PlacementService _placement;
    private readonly InterceptingPlacement _intercepting;
    private readonly TestHostStateSource _source = new();
    private readonly ManualTimeProvider _time = new(Now);

    public SchedulerManagerTests()
    {
        _placement = new PlacementService(_database);
        _intercepting = new InterceptingPlacement(_placement);
        foreach (var (host, memoryMb) in s_hosts)
        {
            _source.Nodes.Add(AddHost(_placement, NodeUuid(host), host, memoryMb));
            _source.Services[host] = Service(host);
        }
    }

    public void Dispose() => _database.Dispose();

    private static string NodeUuid(string host) => $"00000000-0000-0000-0000-0000000000{host[1..].PadLeft(2, '0')}";

    private SchedulerManager Scheduler(Action<SchedulerOptions>? configure = null)
    {
        var options = Options(configure);
        IHostFilter[] filters =
        [
            new ComputeFilter(_time, options),
            new AvailabilityZoneFilter(),
            new ImagePropertiesFilter(),
            new ServerGroupAntiAffinityFilter(),
            new ServerGroupAffinityFilter(),
            new SameHostFilter(),
            new DifferentHostFilter(),
        ];
        IHostWeigher[] weighers = [new RamWeigher(options), new CpuWeigher(options), new DiskWeigher(options)];
        return new SchedulerManager(_intercepting, new HostManager(_source), filters, weighers, options, NullLogger<SchedulerManager>.Instance);
    }

    private long Used(string host, string resourceClass = ResourceClasses.MemoryMb) =>
        _placement.GetProviderUsages(NodeUuid(host)).GetValueOrDefault(resourceClass);

    [Fact]
    public void SelectDestinations_HostWithMostFreeRam_SelectedAndClaimed()
    {
        var selections = Scheduler().SelectDestinations(Spec(flavor: Flavor(vcpus: 2, memoryMb: 2048, rootGb: 20)), 0);

        var selection = Assert.Single(selections);
        Assert.Equal("h2", selection.ServiceHost);
        Assert.Equal("h2.node", selection.Nodename);
        Assert.Equal(NodeUuid("h2"), selection.ComputeNodeUuid);
        Assert.Equal("nova", selection.AvailabilityZone);
        Assert.Equal(new Dictionary<string, int> { ["VCPU"] = 2, ["MEMORY_MB"] = 2048, ["DISK_GB"] = 20 }, selection.Resources);
        Assert.Equal(2048, Used("h2"));
        Assert.Equal(2, Used("h2", ResourceClasses.Vcpu));
        Assert.Equal(20, Used("h2", ResourceClasses.DiskGb));
        var allocations = _placement.GetAllocations("inst-1");
        Assert.Equal([NodeUuid("h2")], allocations.Allocations.Keys);
        Assert.Equal("project-1", allocations.ProjectId);
    }

    [Fact]
    public void SelectDestinations_ConsumedCapacity_ChangesTheBestHost()
    {
        var scheduler = Scheduler();

        var first = scheduler.SelectDestinations(Spec("inst-1", Flavor(memoryMb: 8192)), 0);
        var second = scheduler.SelectDestinations(Spec("inst-2", Flavor(memoryMb: 8192)), 0);

        Assert.Equal("h2", first[0].ServiceHost);   // 16384 free, then 8192
        Assert.Equal("h3", second[0].ServiceHost);  // 12288 free beats h2's 8192
    }

    [Fact]
    public void SelectDestinations_IgnoreHosts_NeverSelected()
    {
        var selections = Scheduler().SelectDestinations(Spec(ignoreHosts: ["h2", "h3"]), 5);

        Assert.Equal(["h1", "h4"], selections.Select(s => s.ServiceHost));
        Assert.Equal(0, Used("h2"));
    }

    [Fact]
    public void SelectDestinations_RequestedHost_OnlyThatHost()
    {
        var selections = Scheduler().SelectDestinations(Spec(requestedHost: "h4"), 3);

        Assert.Equal("h4", Assert.Single(selections).ServiceHost);
        Assert.Equal(2048, Used("h4"));
    }

    [Fact]
    public void SelectDestinations_RequestedHostUnknown_ThrowsNoValidHost()
    {
        Assert.Throws<NoValidHostException>(() => Scheduler().SelectDestinations(Spec(requestedHost: "nope"), 0));
    }

    [Fact]
    public void SelectDestinations_RequestedHostIgnored_ThrowsNoValidHost()
    {
        Assert.Throws<NoValidHostException>(() => Scheduler().SelectDestinations(Spec(requestedHost: "h4", ignoreHosts: ["h4"]), 0));
    }

    [Fact]
    public void SelectDestinations_RequestedHostTooSmall_ThrowsNoValidHost()
    {
        Assert.Throws<NoValidHostException>(() =>
            Scheduler().SelectDestinations(Spec(flavor: Flavor(memoryMb: 8192), requestedHost: "h4"), 0));
        Assert.Equal(0, Used("h4"));
    }

    [Fact]
    public void SelectDestinations_NothingFits_ThrowsNoValidHost()
    {
        var ex = Assert.Throws<NoValidHostException>(() => Scheduler().SelectDestinations(Spec(flavor: Flavor(memoryMb: 32768)), 0));

        Assert.Equal("No valid host was found. There are not enough hosts available.", ex.Message);
        Assert.Empty(_placement.GetAllocations("inst-1").Allocations);
    }

    [Fact]
    public void SelectDestinations_ClaimConflictOnBestHost_ClaimsNextHost()
    {
        // Another request fills h2 between our candidates query and our claim.
        _intercepting.AfterCandidates = () => _placement.PutAllocations("racer", new AllocationRequest
        {
            Allocations = new() { [NodeUuid("h2")] = new() { [ResourceClasses.MemoryMb] = 16384 } },
            ProjectId = "p",
            UserId = "u",
        });

        var selections = Scheduler().SelectDestinations(Spec(), 3);

        Assert.Equal(["h3", "h1", "h4"], selections.Select(s => s.ServiceHost));
        Assert.Equal([NodeUuid("h3")], _placement.GetAllocations("inst-1").Allocations.Keys);
    }

    [Fact]
    public void SelectDestinations_EveryClaimConflicts_ThrowsNoValidHost()
    {
        _intercepting.AfterCandidates = () => _placement.PutAllocations("racer", new AllocationRequest
        {
            Allocations = s_hosts.ToDictionary(h => NodeUuid(h.Host), h => new Dictionary<string, long> { [ResourceClasses.MemoryMb] = h.MemoryMb }),
            ProjectId = "p",
            UserId = "u",
        });

        Assert.Throws<NoValidHostException>(() => Scheduler().SelectDestinations(Spec(), 0));
        Assert.Empty(_placement.GetAllocations("inst-1").Allocations);
    }

    [Fact]
    public void SelectDestinations_ConsumerAlreadyHoldsAllocation_ClaimsDoubledAllocation()
    {
        var source = new Dictionary<string, long> { ["VCPU"] = 2, ["MEMORY_MB"] = 2048, ["DISK_GB"] = 20 };
        _placement.PutAllocations("inst-1", new AllocationRequest
        {
            Allocations = new() { [NodeUuid("h1")] = source },
            ProjectId = "project-1",
            UserId = "user-1",
        });

        var selections = Scheduler().SelectDestinations(Spec(ignoreHosts: ["h1"]), 0);

        Assert.Equal("h2", selections[0].ServiceHost);
        var allocations = _placement.GetAllocations("inst-1").Allocations;
        Assert.Equal(source, allocations[NodeUuid("h1")]);
        Assert.Equal(source, allocations[NodeUuid("h2")]);
        Assert.Equal(2048, Used("h1"));
        Assert.Equal(2048, Used("h2"));
    }

    [Fact]
    public void SelectDestinations_Alternates_ReturnedInWeightOrderAndUnclaimed()
    {
        var selections = Scheduler().SelectDestinations(Spec(), 2);

        Assert.Equal(["h2", "h3", "h1"], selections.Select(s => s.ServiceHost));
        Assert.Equal(2048, Used("h2"));
        Assert.Equal(0, Used("h3"));
        Assert.Equal(0, Used("h1"));
    }

    [Fact]
    public void SelectDestinations_MoreAlternatesThanHosts_ReturnsEveryHostOnce()
    {
        var selections = Scheduler().SelectDestinations(Spec(), 10);

        Assert.Equal(["h2", "h3", "h1", "h4"], selections.Select(s => s.ServiceHost));
    }

    [Fact]
    public void SelectDestinations_DisabledAndDownServices_Filtered()
    {
        _source.Services["h2"] = Service("h2", disabled: true);
        _source.Services["h3"] = Service("h3", lastSeenUp: Now.AddMinutes(-5));
        _source.Services["h4"] = Service("h4", forcedDown: true);

        var selections = Scheduler().SelectDestinations(Spec(), 3);

        Assert.Equal("h1", Assert.Single(selections).ServiceHost);
    }

    [Fact]
    public void SelectDestinations_ComputeStatusDisabledTrait_NotACandidate()
    {
        _placement.SetTraits(NodeUuid("h2"), null, [SchedulerManager.ComputeStatusDisabledTrait]);

        var selections = Scheduler().SelectDestinations(Spec(), 0);

        Assert.Equal("h3", selections[0].ServiceHost);
    }

    [Fact]
    public void SelectDestinations_AffinityGroup_PlacedWithMembers()
    {
        var group = new ServerGroupPolicy { Uuid = "g", Policy = "affinity", MemberHosts = ["h4"] };

        var selections = Scheduler().SelectDestinations(Spec(group: group), 3);

        Assert.Equal("h4", Assert.Single(selections).ServiceHost);
    }

    [Fact]
    public void SelectDestinations_AntiAffinityGroup_AvoidsMembers()
    {
        var group = new ServerGroupPolicy { Uuid = "g", Policy = "anti-affinity", MemberHosts = ["h2", "h3"] };

        var selections = Scheduler().SelectDestinations(Spec(group: group), 3);

        Assert.Equal(["h1", "h4"], selections.Select(s => s.ServiceHost));
    }

    [Fact]
    public void SelectDestinations_AvailabilityZone_OnlyHostsInZone()
    {
        _source.Zones["h3"] = "az1";
        _source.Zones["h4"] = "az1";

        var selections = Scheduler().SelectDestinations(Spec(availabilityZone: "az1"), 3);

        Assert.Equal(["h3", "h4"], selections.Select(s => s.ServiceHost));
        Assert.All(selections, s => Assert.Equal("az1", s.AvailabilityZone));
    }

    [Fact]
    public void SelectDestinations_SameHostHint_PlacedNextToInstance()
    {
        var selections = Scheduler().SelectDestinations(Spec(hints: new() { ["same_host"] = ["other"] }, hintedHosts: new() { ["same_host"] = ["h1"] }), 0);

        Assert.Equal("h1", selections[0].ServiceHost);
    }

    [Fact]
    public async Task SelectDestinationsAsync_Request_LoadsHostFactsOnceBeforeFiltering()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var scheduler = Scheduler();

        await scheduler.SelectDestinationsAsync(Spec("inst-1"), 3, timeout.Token);
        await scheduler.SelectDestinationsAsync(Spec("inst-2", requestedHost: "h4"), 0, timeout.Token);

        Assert.Equal(2, _source.Refreshes);
    }

    [Fact]
    public void SelectDestinations_HostSubsetSize_PicksAmongTheBestN()
    {
        var scheduler = Scheduler(o => o.HostSubsetSize = 2);
        var chosen = new HashSet<string>();

        for (var i = 0; i < 20; i++)
        {
            chosen.Add(scheduler.SelectDestinations(Spec("inst-" + i, Flavor(vcpus: 0, memoryMb: 1, rootGb: 0)), 0)[0].ServiceHost);
        }

        Assert.Subset(new HashSet<string> { "h2", "h3" }, chosen);
    }

    [Fact]
    public async Task SelectDestinations_ConcurrentRequests_NeverOverclaim()
    {
        var scheduler = Scheduler();
        // 40960 MB in all: 10 instances of 4096 fit (h1 2, h2 4, h3 3, h4 1), the other 10 must fail.
        var results = await Task.WhenAll(Enumerable.Range(0, 20).Select(i => Task.Run(() =>
        {
            try
            {
                return scheduler.SelectDestinations(Spec("inst-" + i, Flavor(vcpus: 1, memoryMb: 4096, rootGb: 1)), 0)[0].ServiceHost;
            }
            catch (NoValidHostException)
            {
                return null;
            }
        })));

        Assert.Equal(10, results.Count(r => r is not null));
        foreach (var (host, memoryMb) in s_hosts)
        {
            Assert.Equal(memoryMb, Used(host));
        }
    }
}
