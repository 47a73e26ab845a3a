using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Ferry.Core.Errors;
using Ferry.Tests.Persistence;
using Ferry.Tests.Shared;

namespace Ferry.Tests.Placement;

public sealed class SqlitePlacementServiceTests() : PlacementServiceTests(DatabaseEngine.Sqlite);

[Collection(PostgresServer.Collection)]
public sealed class PostgresPlacementServiceTests() : PlacementServiceTests(DatabaseEngine.PostgreSql);

/// <summary>Placement's rules, run once over each database engine.</summary>
public abstract class PlacementServiceTests : IDisposable
{
    private const string Project = "project-1";
    private const string User = "user-1";

    private readonly TestDatabase _files;
    private readonly PlacementService _placement;

    protected PlacementServiceTests(DatabaseEngine engine)
    {
        _files = new TestDatabase(engine);
        _placement = new PlacementService(_files.Open());
    }

    public void Dispose() => _files.Dispose();

    [Fact]
    public void PutAllocations_UpToReservedAndRatioCapacity_SucceedsThenRejectsMore()
    {
        // (8 - 2) * 2.0 = 12 VCPU allocatable.
        var rp = AddProvider("host-a", vcpu: new Inventory { Total = 8, Reserved = 2, AllocationRatio = 2.0 });

        _placement.PutAllocations("c1", Request(rp, vcpu: 10));
        _placement.PutAllocations("c2", Request(rp, vcpu: 2));
        var ex = Assert.Throws<PlacementConflictException>(() => _placement.PutAllocations("c3", Request(rp, vcpu: 1)));

        Assert.Contains("Unable to allocate inventory", ex.Message);
        Assert.Equal(12, _placement.GetProviderUsages(rp)["VCPU"]);
        Assert.Null(_placement.GetAllocations("c3").ConsumerGeneration);
    }

    [Fact]
    public void PutAllocations_ReplacingOwnAllocationOnFullProvider_DoesNotCountOldAmounts()
    {
        var rp = AddProvider("host-a", vcpu: new Inventory { Total = 4 });
        _placement.PutAllocations("c1", Request(rp, vcpu: 4));

        var updated = _placement.PutAllocations("c1", Request(rp, vcpu: 3, generation: 1));
        updated = _placement.PutAllocations("c1", Request(rp, vcpu: 4, generation: updated.ConsumerGeneration));

        Assert.Equal(3, updated.ConsumerGeneration);
        Assert.Equal(4, _placement.GetProviderUsages(rp)["VCPU"]);
    }

    [Fact]
    public void PutAllocations_AmountOutsideUnitsOrStep_ThrowsConflict()
    {
        var rp = AddProvider("host-a", vcpu: new Inventory { Total = 64, MinUnit = 2, MaxUnit = 16, StepSize = 2 });

        Assert.Throws<PlacementConflictException>(() => _placement.PutAllocations("c1", Request(rp, vcpu: 1)));
        Assert.Throws<PlacementConflictException>(() => _placement.PutAllocations("c1", Request(rp, vcpu: 18)));
        Assert.Throws<PlacementConflictException>(() => _placement.PutAllocations("c1", Request(rp, vcpu: 5)));
        _placement.PutAllocations("c1", Request(rp, vcpu: 6));
        Assert.Equal(6, _placement.GetProviderUsages(rp)["VCPU"]);
    }

    [Fact]
    public void PutAllocations_ClassWithoutInventory_ThrowsConflict()
    {
        var rp = AddProvider("host-a", vcpu: new Inventory { Total = 4 });
        var request = Request(rp, vcpu: 1);
        request.Allocations[rp]["DISK_GB"] = 1;

        Assert.Throws<PlacementConflictException>(() => _placement.PutAllocations("c1", request));
    }

    [Fact]
    public void PutAllocations_WrongConsumerGeneration_ThrowsConflict()
    {
        var rp = AddProvider("host-a", vcpu: new Inventory { Total = 8 });

        var newWithGeneration = Assert.Throws<PlacementConflictException>(() => _placement.PutAllocations("c1", Request(rp, vcpu: 1, generation: 0)));
        var first = _placement.PutAllocations("c1", Request(rp, vcpu: 1));
        var existingAsNew = Assert.Throws<PlacementConflictException>(() => _placement.PutAllocations("c1", Request(rp, vcpu: 2)));
        var stale = Assert.Throws<PlacementConflictException>(() => _placement.PutAllocations("c1", Request(rp, vcpu: 2, generation: 7)));

        Assert.Equal(1, first.ConsumerGeneration);
        Assert.All([newWithGeneration, existingAsNew, stale], ex => Assert.Contains("consumer generation conflict", ex.Message));
        Assert.Equal(1, _placement.GetProviderUsages(rp)["VCPU"]);
    }

    [Fact]
    public void SetInventories_WrongProviderGeneration_ThrowsConflict()
    {
        var rp = _placement.EnsureProvider("rp-1", "host-a");
        var set = _placement.SetInventories(rp.Uuid, 0, Inventories(new Inventory { Total = 8 }));

        var ex = Assert.Throws<PlacementConflictException>(() => _placement.SetInventories(rp.Uuid, 0, Inventories(new Inventory { Total = 16 })));
        Assert.Throws<PlacementConflictException>(() => _placement.SetTraits(rp.Uuid, 0, ["HW_CPU_X86_AVX2"]));

        Assert.Contains("generation conflict", ex.Message);
        Assert.Equal(1, set.Generation);
        Assert.Equal(8, _placement.GetInventories(rp.Uuid)["VCPU"].Total);
    }

    [Fact]
    public void ProviderGeneration_InventoryTraitAndAllocationChanges_EachIncrement()
    {
        var rp = _placement.EnsureProvider("rp-1", "host-a");
        _placement.SetInventories(rp.Uuid, rp.Generation, Inventories(new Inventory { Total = 8 }));
        _placement.SetTraits(rp.Uuid, 1, ["CUSTOM_FAST"]);
        _placement.PutAllocations("c1", Request(rp.Uuid, vcpu: 1));
        _placement.DeleteAllocations("c1");
        _placement.EnsureProvider("rp-1", "host-a-renamed");

        Assert.Equal(4, _placement.GetProvider(rp.Uuid)!.Generation);
        Assert.Equal("host-a-renamed", _placement.GetProvider(rp.Uuid)!.Name);
    }

    [Fact]
    public void EnsureProvider_NameTakenByAnotherProvider_ThrowsConflict()
    {
        _placement.EnsureProvider("rp-1", "host-a");

        Assert.Throws<PlacementConflictException>(() => _placement.EnsureProvider("rp-2", "host-a"));
    }

    [Fact]
    public void SetInventories_RemovingClassInUse_ThrowsConflictButShrinkingBelowUsageIsAllowed()
    {
        var rp = AddProvider("host-a", vcpu: new Inventory { Total = 8 });
        _placement.PutAllocations("c1", Request(rp, vcpu: 6));
        var generation = _placement.GetProvider(rp)!.Generation;

        var removed = Assert.Throws<PlacementConflictException>(() => _placement.SetInventories(rp, generation, new Dictionary<string, Inventory>()));
        // As in Placement: a host may report less than it has allocated; it just takes nothing new.
        _placement.SetInventories(rp, generation, Inventories(new Inventory { Total = 4 }));

        Assert.Contains("in use", removed.Message);
        Assert.Equal(4, _placement.GetInventories(rp)["VCPU"].Total);
        Assert.Throws<PlacementConflictException>(() => _placement.PutAllocations("c2", Request(rp, vcpu: 1)));
    }

    [Fact]
    public void MoveAllocations_InstanceToMigrationAndBack_KeepsUsagesRight()
    {
        var source = AddProvider("host-src", vcpu: new Inventory { Total = 8 });
        var dest = AddProvider("host-dst", vcpu: new Inventory { Total = 8 });
        _placement.PutAllocations("instance", Request(source, vcpu: 2));

        // Conductor: replace_allocation_with_migration, then the scheduler claims dest for the instance.
        Assert.True(_placement.MoveAllocations("instance", "migration"));
        Assert.Null(_placement.GetAllocations("instance").ConsumerGeneration);
        _placement.PutAllocations("instance", Request(dest, vcpu: 4));

        Assert.Equal(2, _placement.GetProviderUsages(source)["VCPU"]);
        Assert.Equal(4, _placement.GetProviderUsages(dest)["VCPU"]);
        Assert.Equal(2, _placement.GetAllocations("migration").Allocations[source]["VCPU"]);

        // Revert: the migration's source allocation goes back to the instance, overwriting its dest claim.
        Assert.True(_placement.MoveAllocations("migration", "instance"));

        Assert.Equal(2, _placement.GetProviderUsages(source)["VCPU"]);
        Assert.Equal(0, _placement.GetProviderUsages(dest)["VCPU"]);
        var instance = _placement.GetAllocations("instance");
        Assert.Equal([source], instance.Allocations.Keys);
        Assert.Equal(2, instance.ConsumerGeneration);
        Assert.Null(_placement.GetAllocations("migration").ConsumerGeneration);
        Assert.False(_placement.MoveAllocations("migration", "instance"));
    }

    [Fact]
    public void MoveAllocations_SameHost_HandsOverWithoutCapacityCheck()
    {
        var rp = AddProvider("host-a", vcpu: new Inventory { Total = 4 });
        _placement.PutAllocations("instance", Request(rp, vcpu: 4));

        Assert.True(_placement.MoveAllocations("instance", "migration"));

        Assert.Equal(4, _placement.GetProviderUsages(rp)["VCPU"]);
        Assert.Equal(["migration"], _placement.GetProviderAllocations(rp).Keys);
    }

    [Fact]
    public void PostAllocations_OneConsumerOverCapacity_ChangesNothing()
    {
        var a = AddProvider("host-a", vcpu: new Inventory { Total = 4 });
        var b = AddProvider("host-b", vcpu: new Inventory { Total = 4 });
        _placement.PutAllocations("c1", Request(a, vcpu: 2));
        var generationA = _placement.GetProvider(a)!.Generation;

        Assert.Throws<PlacementConflictException>(() => _placement.PostAllocations(new Dictionary<string, AllocationRequest>
        {
            ["c1"] = Request(b, vcpu: 1, generation: 1),
            ["c2"] = Request(b, vcpu: 4),
        }));

        Assert.Equal(2, _placement.GetProviderUsages(a)["VCPU"]);
        Assert.Equal(0, _placement.GetProviderUsages(b)["VCPU"]);
        Assert.Equal([a], _placement.GetAllocations("c1").Allocations.Keys);
        Assert.Equal(1, _placement.GetAllocations("c1").ConsumerGeneration);
        Assert.Null(_placement.GetAllocations("c2").ConsumerGeneration);
        Assert.Equal(generationA, _placement.GetProvider(a)!.Generation);
    }

    [Fact]
    public void PostAllocations_SwapBetweenConsumersOnFullProvider_Succeeds()
    {
        var rp = AddProvider("host-a", vcpu: new Inventory { Total = 4 });
        _placement.PutAllocations("c1", Request(rp, vcpu: 4));

        _placement.PostAllocations(new Dictionary<string, AllocationRequest>
        {
            ["c1"] = Request(rp, vcpu: 1, generation: 1),
            ["c2"] = Request(rp, vcpu: 3),
        });

        Assert.Equal(4, _placement.GetProviderUsages(rp)["VCPU"]);
        Assert.Equal(3, _placement.GetAllocations("c2").Allocations[rp]["VCPU"]);
    }

    [Fact]
    public void RemoveProviderFromAllocation_OneOfTwoProviders_KeepsTheOther()
    {
        var a = AddProvider("host-a", vcpu: new Inventory { Total = 4 });
        var b = AddProvider("host-b", vcpu: new Inventory { Total = 4 });
        var request = Request(a, vcpu: 1);
        request.Allocations[b] = new Dictionary<string, long> { ["VCPU"] = 2 };
        _placement.PutAllocations("instance", request);

        _placement.RemoveProviderFromAllocation("instance", b);
        Assert.Equal([a], _placement.GetAllocations("instance").Allocations.Keys);
        Assert.Equal(0, _placement.GetProviderUsages(b)["VCPU"]);

        _placement.RemoveProviderFromAllocation("instance", a);
        Assert.Null(_placement.GetAllocations("instance").ConsumerGeneration);
        Assert.Equal(0, _placement.GetProviderUsages(a)["VCPU"]);
    }

    [Fact]
    public void DeleteProvider_WithAllocations_DropsThemFromConsumers()
    {
        var a = AddProvider("host-a", vcpu: new Inventory { Total = 4 });
        var b = AddProvider("host-b", vcpu: new Inventory { Total = 4 });
        var request = Request(a, vcpu: 1);
        request.Allocations[b] = new Dictionary<string, long> { ["VCPU"] = 2 };
        _placement.PutAllocations("c1", request);
        _placement.PutAllocations("c2", Request(a, vcpu: 1));

        _placement.DeleteProvider(a);

        Assert.Null(_placement.GetProvider(a));
        Assert.Equal([b], _placement.GetAllocations("c1").Allocations.Keys);
        Assert.Null(_placement.GetAllocations("c2").ConsumerGeneration);
        Assert.Equal(new Dictionary<string, long> { ["VCPU"] = 2 }, _placement.GetUsages(Project, null));
    }

    [Fact]
    public void GetAllocationCandidates_TraitsInTreeAndLimit_FilterProviders()
    {
        var small = AddProvider("small", vcpu: new Inventory { Total = 2 });
        var avx = AddProvider("avx", vcpu: new Inventory { Total = 16 });
        var disabled = AddProvider("disabled", vcpu: new Inventory { Total = 16 });
        var plain = AddProvider("plain", vcpu: new Inventory { Total = 16 });
        _placement.SetTraits(avx, 1, ["HW_CPU_X86_AVX2"]);
        _placement.SetTraits(disabled, 1, ["HW_CPU_X86_AVX2", "COMPUTE_STATUS_DISABLED"]);
        _placement.PutAllocations("c1", Request(plain, vcpu: 12));
        var wanted = new Dictionary<string, long> { ["VCPU"] = 4 };

        var all = _placement.GetAllocationCandidates(wanted);
        var withAvx = _placement.GetAllocationCandidates(wanted, ["HW_CPU_X86_AVX2"], ["COMPUTE_STATUS_DISABLED"]);
        var inTree = _placement.GetAllocationCandidates(wanted, inTree: disabled);
        var limited = _placement.GetAllocationCandidates(wanted, limit: 1);
        var full = _placement.GetAllocationCandidates(new Dictionary<string, long> { ["VCPU"] = 5 }, inTree: plain);

        Assert.Equal([avx, disabled, plain], all.ProviderUuids);
        Assert.Equal([avx], withAvx.ProviderUuids);
        Assert.Equal([disabled], inTree.ProviderUuids);
        Assert.Single(limited.ProviderUuids);
        Assert.Empty(full.ProviderUuids);
        Assert.DoesNotContain(small, all.Summaries.Keys);
        Assert.Equal((16L, 12L), all.Summaries[plain].Resources["VCPU"]);
        Assert.Contains("COMPUTE_STATUS_DISABLED", all.Summaries[disabled].Traits);
    }

    [Fact]
    public void GetAllocationCandidates_AfterAllocation_SummaryShowsNewUsage()
    {
        var rp = AddProvider("host-a", vcpu: new Inventory { Total = 8 });
        var wanted = new Dictionary<string, long> { ["VCPU"] = 1 };
        Assert.Equal((8L, 0L), _placement.GetAllocationCandidates(wanted).Summaries[rp].Resources["VCPU"]);

        _placement.PutAllocations("c1", Request(rp, vcpu: 3));

        Assert.Equal((8L, 3L), _placement.GetAllocationCandidates(wanted).Summaries[rp].Resources["VCPU"]);
    }

    [Fact]
    public void Constructor_ReopenedDatabase_RestoresState()
    {
        var a = AddProvider("host-a", vcpu: new Inventory { Total = 8, Reserved = 1, AllocationRatio = 4.0, MaxUnit = 8 });
        var b = AddProvider("host-b", vcpu: new Inventory { Total = 8 });
        _placement.SetTraits(a, 1, ["CUSTOM_GOLD"]);
        _placement.PutAllocations("instance", Request(a, vcpu: 3));
        _placement.MoveAllocations("instance", "migration");
        _placement.PutAllocations("instance", Request(b, vcpu: 2));
        _placement.PutAllocations("other", Request(b, vcpu: 1));
        _placement.DeleteAllocations("other");

        var reopened = new PlacementService(_files.Open());

        Assert.Equal(_placement.ListProviders().OrderBy(p => p.Uuid), reopened.ListProviders().OrderBy(p => p.Uuid));
        Assert.Equal(_placement.GetInventories(a)["VCPU"], reopened.GetInventories(a)["VCPU"]);
        Assert.Equal(["CUSTOM_GOLD"], reopened.GetTraits(a));
        Assert.Equal(3, reopened.GetProviderUsages(a)["VCPU"]);
        Assert.Equal(2, reopened.GetProviderUsages(b)["VCPU"]);
        Assert.Equal(_placement.GetAllocations("migration"), reopened.GetAllocations("migration"), AllocationsComparer.Instance);
        Assert.Equal(_placement.GetAllocations("instance"), reopened.GetAllocations("instance"), AllocationsComparer.Instance);
        Assert.Null(reopened.GetAllocations("other").ConsumerGeneration);
        Assert.Equal([a], reopened.GetAllocationCandidates(new Dictionary<string, long> { ["VCPU"] = 8 }, ["CUSTOM_GOLD"]).ProviderUuids);
    }

    [Fact]
    public async Task PutAllocations_ManyThreadsRacingForCapacity_NeverOvercommit()
    {
        var rp = AddProvider("host-a", vcpu: new Inventory { Total = 50 });
        var succeeded = 0;

        await Task.WhenAll(Enumerable.Range(0, 8).Select(worker => Task.Run(() =>
        {
            for (var i = 0; i < 20; i++)
            {
                try
                {
                    _placement.PutAllocations($"c-{worker}-{i}", Request(rp, vcpu: 1));
                    Interlocked.Increment(ref succeeded);
                }
                catch (PlacementConflictException)
                {
                }
            }
        })));

        Assert.Equal(50, succeeded);
        Assert.Equal(50, _placement.GetProviderUsages(rp)["VCPU"]);
        Assert.Equal(50, _placement.GetProviderAllocations(rp).Count);
    }

    [Fact]
    public async Task PutAllocations_TwoAtOnceOnProviderWithRoomForOne_ExactlyOneWins()
    {
        // Two placement replicas on PostgreSQL (own pool, own cache); the one service of the embedded shape on SQLite.
        var other = _files.Engine == DatabaseEngine.PostgreSql ? new PlacementService(_files.Open()) : _placement;
        var replicas = new[] { _placement, other };
        for (var round = 0; round < 20; round++)
        {
            var rp = AddProvider($"host-{round}", new Inventory { Total = 1 });
            Assert.Equal(1, other.GetProvider(rp)!.Generation); // both caches hold the provider empty before the race
            using var start = new Barrier(2);
            var outcomes = await Task.WhenAll(replicas.Select((replica, i) => Task.Run(() =>
            {
                start.SignalAndWait(TimeSpan.FromSeconds(30));
                try
                {
                    replica.PutAllocations($"c{round}-{i}", Request(rp, vcpu: 1));
                    return true;
                }
                catch (PlacementConflictException)
                {
                    return false;
                }
            }))).WaitAsync(TimeSpan.FromSeconds(60));

            Assert.Equal(1, outcomes.Count(won => won));
            var winner = $"c{round}-{Array.IndexOf(outcomes, true)}";
            foreach (var replica in replicas)
            {
                Assert.Equal(1, replica.GetProviderUsages(rp)["VCPU"]);
                Assert.Equal([winner], replica.GetProviderAllocations(rp).Keys);
            }
        }
    }

    [Fact]
    public async Task CatalogQueries_InventoryAndTraitsOverAllProviders_OneAnswerFromEveryProvider()
    {
        var a = AddProvider("host-a", new Inventory { Total = 8 });
        var b = AddProvider("host-b", new Inventory { Total = 8 });
        _placement.SetTraits(a, 1, ["CUSTOM_A", "HW_CPU_X86_AVX2"]);
        _placement.SetTraits(b, 1, ["CUSTOM_B"]);
        _placement.SetInventories(b, 2, new Dictionary<string, Inventory> { ["VCPU"] = new() { Total = 8 }, ["CUSTOM_GPU"] = new() { Total = 1 } });

        Assert.True(await _placement.IsResourceClassInventoriedAsync("CUSTOM_GPU", CancellationToken.None));
        Assert.True(await _placement.IsResourceClassInventoriedAsync("VCPU", CancellationToken.None));
        Assert.False(await _placement.IsResourceClassInventoriedAsync("MEMORY_MB", CancellationToken.None));
        Assert.Equal(["CUSTOM_A", "CUSTOM_B", "HW_CPU_X86_AVX2"], (await _placement.GetAssociatedTraitsAsync(CancellationToken.None)).Order(StringComparer.Ordinal));
    }

    private string AddProvider(string name, Inventory vcpu)
    {
        var uuid = Guid.NewGuid().ToString();
        _placement.EnsureProvider(uuid, name);
        _placement.SetInventories(uuid, 0, Inventories(vcpu));
        return uuid;
    }

    private static Dictionary<string, Inventory> Inventories(Inventory vcpu) => new() { ["VCPU"] = vcpu };

    private static AllocationRequest Request(string rp, long vcpu, long? generation = null) => new()
    {
        Allocations = new() { [rp] = new Dictionary<string, long> { ["VCPU"] = vcpu } },
        ProjectId = Project,
        UserId = User,
        ConsumerGeneration = generation,
    };

    private sealed class AllocationsComparer : IEqualityComparer<ConsumerAllocations>
    {
        public static readonly AllocationsComparer Instance = new();

        public bool Equals(ConsumerAllocations? x, ConsumerAllocations? y) =>
            x is not null && y is not null
            && x.ConsumerGeneration == y.ConsumerGeneration && x.ProjectId == y.ProjectId && x.UserId == y.UserId
            && x.Allocations.Count == y.Allocations.Count
            && x.Allocations.All(p => y.Allocations.TryGetValue(p.Key, out var other)
                && p.Value.Count == other.Count && p.Value.All(r => other.GetValueOrDefault(r.Key) == r.Value));

        public int GetHashCode(ConsumerAllocations obj) => 0;
    }
}
