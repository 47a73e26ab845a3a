using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Core.Rpc.Conductor;
using Ferry.Tests.Api;
using Ferry.Tests.Shared;

namespace Ferry.Tests.Persistence;

/// <summary>The store queries that run per host or per period: only the rows asked for, through an index.</summary>
public sealed class InstanceStoreTests : IDisposable
{
    private static readonly DateTimeOffset s_start = new(2026, 12, 4, 12, 0, 0, TimeSpan.Zero);
    private readonly string _directory = TestTempNames.Directory("instances");
    private readonly FerryDatabase _db;
    private readonly ManualTimeProvider _time = new(s_start);
    private readonly InstanceStore _instances;

    public InstanceStoreTests()
    {
        _db = new FerryDatabase(Path.Combine(_directory, "ferry.db"));
        _db.Migrate(ComputeSchema.Component, ComputeSchema.Scripts);
        _instances = new InstanceStore(_db, _time);
    }

    public void Dispose()
    {
        _db.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private Instance Add(VmState state, TimeSpan age) =>
        _instances.Create(id => new Instance
        {
            Id = id, Uuid = Guid.NewGuid().ToString(), DisplayName = $"vm-{id}", ProjectId = "p", UserId = "u",
            Flavor = new Flavor { InternalId = 1, Id = "1", Name = "m1.tiny", MemoryMb = 512, Vcpus = 1, RootGb = 1 }, ImageRef = "img",
            VmState = state, TaskState = state == VmState.Building ? TaskState.Scheduling : null,
            CreatedAt = s_start - age, UpdatedAt = s_start - age,
        });

    [Fact]
    public void ListBuildingCreatedBefore_MixOfStatesAndAges_OnlyLiveBuildsOlderThanTheCutoffOldestFirst()
    {
        var oldest = Add(VmState.Building, TimeSpan.FromMinutes(30));
        var old = Add(VmState.Building, TimeSpan.FromMinutes(10));
        Add(VmState.Building, TimeSpan.FromMinutes(1));
        Add(VmState.Active, TimeSpan.FromMinutes(40));
        Add(VmState.Error, TimeSpan.FromMinutes(40));
        var deleted = Add(VmState.Building, TimeSpan.FromMinutes(50));
        _instances.Update(new InstanceUpdateRequest { Uuid = deleted.Uuid, Deleted = true });

        var found = _instances.ListBuildingCreatedBefore(s_start - TimeSpan.FromMinutes(5));

        Assert.Equal([oldest.Uuid, old.Uuid], found.Select(i => i.Uuid));
    }

    [Fact]
    public void BuildingCreatedBeforeQuery_PlanSearchesItsIndex_NeverScansInstances()
    {
        var plan = _db.Read(c =>
        {
            using var command = FerryDatabase.Command(c, null, "EXPLAIN QUERY PLAN " + InstanceStore.BuildingCreatedBeforeSql, ("@before", "2026-12-04T12:00:00.0000000Z"));
            using var reader = command.ExecuteReader();
            var lines = new List<string>();
            while (reader.Read())
            {
                lines.Add(reader.GetString(3));
            }
            return string.Join(" / ", lines);
        });

        Assert.Contains("USING INDEX ix_instances_building", plan, StringComparison.Ordinal);
        Assert.DoesNotContain("SCAN instances", plan, StringComparison.Ordinal);
    }

    [Fact]
    public void ListByHost_InstancesOnSeveralHostsAndADeletedOne_OnlyTheHostsLiveInstancesNewestFirst()
    {
        var older = AddOn("compute1", TimeSpan.FromMinutes(10));
        var newer = AddOn("compute1", TimeSpan.FromMinutes(1));
        AddOn("compute2", TimeSpan.FromMinutes(5));
        AddOn(null, TimeSpan.FromMinutes(5));
        var deleted = AddOn("compute1", TimeSpan.FromMinutes(3));
        _instances.Update(new InstanceUpdateRequest { Uuid = deleted.Uuid, Deleted = true });

        var found = _instances.ListByHost("compute1");

        Assert.Equal([newer.Uuid, older.Uuid], found.Select(i => i.Uuid));
    }

    [Fact]
    public void ByHostQuery_PlanSearchesTheHostIndex_NeverScansInstances()
    {
        var plan = _db.Read(c =>
        {
            using var command = FerryDatabase.Command(c, null, "EXPLAIN QUERY PLAN " + InstanceStore.ByHostSql, ("@h", "compute1"));
            using var reader = command.ExecuteReader();
            var lines = new List<string>();
            while (reader.Read())
            {
                lines.Add(reader.GetString(3));
            }
            return string.Join(" / ", lines);
        });

        // Either host index serves it (ix_instances_live_host, host then creation order, also spares the sort).
        Assert.Matches(@"SEARCH instances USING (COVERING )?INDEX ix_instances_(live_)?host \(host=\?", plan);
        Assert.DoesNotContain("SCAN instances", plan, StringComparison.Ordinal);
    }

    [Fact]
    public void CreateMany_ThreeOnOneHost_EachGetsItsOwnIdAndAllAreListed()
    {
        var created = _instances.CreateMany(3, (n, id) => new Instance
        {
            Id = id, Uuid = $"00000000-0000-0000-0000-00000000000{n}", DisplayName = $"vm-{n}", ProjectId = "p", UserId = "u", Host = "compute1",
            Flavor = new Flavor { InternalId = 1, Id = "1", Name = "m1.tiny", MemoryMb = 512, Vcpus = 1, RootGb = 1 }, ImageRef = "img",
            VmState = VmState.Active, CreatedAt = s_start, UpdatedAt = s_start,
        });

        Assert.Equal(3, created.Select(i => i.Id).Distinct().Count());
        Assert.Equal(created.Select(i => i.Uuid).Order(), _instances.ListByHost("compute1").Select(i => i.Uuid).Order());
        Assert.All(created, i => Assert.Equal(i.Id, _instances.Get(i.Uuid).Id));
    }

    private Instance AddOn(string? host, TimeSpan age) =>
        _instances.Create(id => new Instance
        {
            Id = id, Uuid = Guid.NewGuid().ToString(), DisplayName = $"vm-{id}", ProjectId = "p", UserId = "u", Host = host, Node = host,
            Flavor = new Flavor { InternalId = 1, Id = "1", Name = "m1.tiny", MemoryMb = 512, Vcpus = 1, RootGb = 1 }, ImageRef = "img",
            VmState = VmState.Active, CreatedAt = s_start - age, UpdatedAt = s_start - age,
        });
}
