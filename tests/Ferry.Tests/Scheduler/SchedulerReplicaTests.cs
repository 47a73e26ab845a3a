using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Ferry.ControlPlane.Scheduler;
using Ferry.ControlPlane.Scheduler.Filters;
using Ferry.ControlPlane.Scheduler.Weighers;
using Ferry.Core.Domain;
using Ferry.Tests.Persistence;
using Ferry.Tests.Shared;
using Microsoft.Extensions.Logging.Abstractions;
using static Ferry.Tests.Scheduler.SchedulerTestData;

namespace Ferry.Tests.Scheduler;

/// <summary>
/// select_destinations through one placement replica over PostgreSQL while another replica writes: the scheduler's
/// cache is a moment old, and its claims must still never lose another's write.
/// </summary>
[Collection(PostgresServer.Collection)]
public sealed class SchedulerReplicaTests : IDisposable
{
    private readonly TestDatabase _files = new(DatabaseEngine.PostgreSql);
    private readonly PlacementService _other;
    private readonly PlacementService _schedulers;
    private readonly InterceptingPlacement _intercepting;
    private readonly TestHostStateSource _source = new();

    public SchedulerReplicaTests()
    {
        _other = new PlacementService(_files.Open());
        _schedulers = new PlacementService(_files.Open());
        _intercepting = new InterceptingPlacement(_schedulers);
        // h1 has the most free RAM, so it is tried first; h3 is a provider the scheduler never offers.
        foreach (var (host, memoryMb) in new[] { ("h1", 16384), ("h2", 8192), ("h3", 8192) })
        {
            var node = AddHost(_other, NodeUuid(host), host, memoryMb);
            if (host != "h3")
            {
                _source.Nodes.Add(node);
                _source.Services[host] = Service(host);
            }
        }
    }

    public void Dispose() => _files.Dispose();

    private static string NodeUuid(string host) => $"00000000-0000-0000-0000-0000000000{host[1..].PadLeft(2, '0')}";

    [Fact]
    public void SelectDestinations_ConsumerChangedByAnotherReplicaAfterTheCandidates_ClaimKeepsTheOtherWrite()
    {
        // The scheduler's replica has not seen the other replica's write when it offers the candidates; the claim reads the
        // consumer afresh and adds the best host to what it holds (a doubled allocation) rather than overwriting it.
        var racer = new Dictionary<string, long> { [ResourceClasses.MemoryMb] = 1024 };
        _intercepting.AfterCandidates = () => _other.PutAllocations("inst-1", new AllocationRequest
        {
            Allocations = new() { [NodeUuid("h3")] = racer },
            ProjectId = "project-1",
            UserId = "user-1",
        });

        var selections = Scheduler().SelectDestinations(Spec(), 0);

        Assert.Equal("h1", Assert.Single(selections).ServiceHost);
        var held = _other.GetAllocations("inst-1");
        Assert.Equal([NodeUuid("h1"), NodeUuid("h3")], held.Allocations.Keys.Order());
        Assert.Equal(racer, held.Allocations[NodeUuid("h3")]);
        Assert.Equal(2048, held.Allocations[NodeUuid("h1")][ResourceClasses.MemoryMb]);
        Assert.Equal(2, held.ConsumerGeneration);
    }

    [Fact]
    public void SelectDestinations_NothingInBetween_ClaimsTheBestHost()
    {
        var selections = Scheduler().SelectDestinations(Spec(), 1);

        Assert.Equal(["h1", "h2"], selections.Select(s => s.ServiceHost));
        Assert.Equal([NodeUuid("h1")], _other.GetAllocations("inst-1").Allocations.Keys);
    }

    private SchedulerManager Scheduler()
    {
        var options = Options(o => o.EnabledFilters = ["ComputeFilter"]);
        IHostFilter[] filters = [new ComputeFilter(new ManualTimeProvider(Now), options)];
        IHostWeigher[] weighers = [new RamWeigher(options)];
        return new SchedulerManager(_intercepting, new HostManager(_source), filters, weighers, options, NullLogger<SchedulerManager>.Instance);
    }
}
