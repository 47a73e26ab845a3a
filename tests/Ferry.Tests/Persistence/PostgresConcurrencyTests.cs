using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Rpc.Conductor;
using Ferry.Tests.Shared;

namespace Ferry.Tests.Persistence;

/// <summary>
/// Two <see cref="FerryDatabase"/>s on one PostgreSQL database stand for two Ferry processes: each has its own
/// connection pool and no lock in common, so only the database can make one of them lose.
/// </summary>
[Collection(PostgresServer.Collection)]
public sealed class PostgresConcurrencyTests : IDisposable
{
    private readonly TestDatabase _files = new(DatabaseEngine.PostgreSql);
    private readonly FerryDatabase _first;
    private readonly FerryDatabase _second;

    public PostgresConcurrencyTests()
    {
        _first = _files.Open();
        _second = _files.Open();
        DatabaseSchema.Sync(_first);
    }

    public void Dispose() => _files.Dispose();

    [Fact]
    public async Task InstanceStore_ConcurrentCasFromTwoProcesses_ExactlyOneWinsEveryRound()
    {
        var stores = new[] { new InstanceStore(_first, TimeProvider.System), new InstanceStore(_second, TimeProvider.System) };
        var instance = stores[0].Create(id => StoreTests.NewInstance(id));
        var states = new[] { TaskState.Migrating, TaskState.ResizePrep };

        for (var round = 0; round < 50; round++)
        {
            using var start = new Barrier(2);
            var attempts = Enumerable.Range(0, 2).Select(i => Task.Run(() =>
            {
                start.SignalAndWait(TimeSpan.FromSeconds(30));
                try
                {
                    stores[i].Update(new InstanceUpdateRequest { Uuid = instance.Uuid, SetTaskState = true, TaskState = states[i], ExpectedTaskStates = [null] });
                    return (Won: true, Message: "");
                }
                catch (UnexpectedTaskStateException e)
                {
                    return (Won: false, e.Message);
                }
            })).ToArray();
            var results = await Task.WhenAll(attempts).WaitAsync(TimeSpan.FromSeconds(60));

            var winner = Assert.Single(results.Select((r, i) => (r, i)), x => x.r.Won).i;
            Assert.Equal(states[winner], stores[0].Get(instance.Uuid).TaskState);
            Assert.Equal(
                $"Conflict updating instance {instance.Uuid}. Expected: {{'task_state': [None]}}. Actual: {{'task_state': {states[winner].ToNova()}}}",
                results[1 - winner].Message);
            stores[winner].Update(new InstanceUpdateRequest { Uuid = instance.Uuid, SetTaskState = true, TaskState = null });
        }
    }

    [Fact]
    public async Task Stores_ConcurrentInsertsFromTwoProcesses_GetUniqueDatabaseIds()
    {
        const int PerProcess = 40;
        var created = await Task.WhenAll(new[] { _first, _second }.Select((db, p) => Task.Run(() =>
        {
            var instances = new InstanceStore(db, TimeProvider.System);
            var migrations = new MigrationStore(db, TimeProvider.System);
            var keys = new KeyPairStore(db, TimeProvider.System);
            var flavors = new CatalogStore(db);
            var ids = new List<(string Kind, int Id)>();
            for (var i = 0; i < PerProcess; i++)
            {
                var instance = instances.Create(id => StoreTests.NewInstance(id));
                ids.Add(("instance", instance.Id));
                ids.Add(("migration", migrations.Create(id => new Migration
                {
                    Id = id, Uuid = Guid.NewGuid().ToString(), InstanceUuid = instance.Uuid, MigrationType = "migration", Status = "accepted", UserId = "u", ProjectId = "p",
                }).Id));
                ids.Add(("keypair", keys.Create("u", $"k-{p}-{i}", "ssh", "fp", "key").Id));
                ids.Add(("flavor", flavors.CreateFlavor(id => StoreTests.SmallFlavor(id) with { Id = $"f-{p}-{i}", Name = $"f-{p}-{i}" }).InternalId));
            }
            return ids;
        }))).WaitAsync(TimeSpan.FromSeconds(120));

        foreach (var kind in new[] { "instance", "migration", "keypair", "flavor" })
        {
            var ids = created.SelectMany(c => c).Where(c => c.Kind == kind).Select(c => c.Id).ToList();
            Assert.Equal(2 * PerProcess, ids.Count);
            Assert.Equal(ids.Count, ids.Distinct().Count());
        }
        var stored = new InstanceStore(_first, TimeProvider.System).List();
        Assert.Equal(2 * PerProcess, stored.Count);
        Assert.Equal(stored.Count, stored.Select(i => i.Id).Distinct().Count());
    }

    [Fact]
    public async Task ServiceStore_FirstHeartbeatsFromTwoProcessesAtOnce_MakeOneRow()
    {
        for (var round = 0; round < 20; round++)
        {
            var host = $"host-{round}";
            using var start = new Barrier(2);
            var reports = await Task.WhenAll(new[] { _first, _second }.Select(db => Task.Run(() =>
            {
                start.SignalAndWait(TimeSpan.FromSeconds(30));
                return new ServiceStore(db, TimeProvider.System).Report(host, "nova-compute", "compute", 66);
            }))).WaitAsync(TimeSpan.FromSeconds(60));

            Assert.Equal(reports[0].Id, reports[1].Id);
            Assert.Single(new ServiceStore(_first, TimeProvider.System).List(host: host));
        }
    }

    [Fact]
    public async Task ComputeNodeStore_FirstReportsFromTwoProcessesAtOnce_OneNodeWithOneUuidAndTheLaterFields()
    {
        for (var round = 0; round < 20; round++)
        {
            var host = $"host-{round}";
            using var start = new Barrier(2);
            var saved = await Task.WhenAll(new[] { (_first, 4), (_second, 8) }.Select(p => Task.Run(() =>
            {
                start.SignalAndWait(TimeSpan.FromSeconds(30));
                return new ComputeNodeStore(p.Item1).Upsert(new ComputeNode
                {
                    Uuid = Guid.NewGuid().ToString(), Host = host, HypervisorHostname = host, HypervisorType = "fake",
                    HypervisorVersion = 1, Vcpus = p.Item2, MemoryMb = 1024, LocalGb = 10,
                });
            }))).WaitAsync(TimeSpan.FromSeconds(60));

            // Whichever made the row, the other updated it: one id and uuid, the fields of the one that wrote last.
            Assert.Equal((saved[0].Id, saved[0].Uuid), (saved[1].Id, saved[1].Uuid));
            var stored = new ComputeNodeStore(_first).FindByHost(host)!;
            Assert.Equal(saved[0].Uuid, stored.Uuid);
            Assert.Contains(stored.Vcpus, new[] { 4, 8 });
        }
    }

    [Fact]
    public async Task ComputeNodeStore_NewHost_OneInsertOnly()
    {
        var store = new ComputeNodeStore(_first);
        var node = new ComputeNode
        {
            Uuid = Guid.NewGuid().ToString(), Host = "host-a", HypervisorHostname = "host-a", HypervisorType = "fake",
            HypervisorVersion = 1, Vcpus = 4, MemoryMb = 1024, LocalGb = 10,
        };

        var fresh = await NpgsqlCommands.RecordAsync(() => store.UpsertAsync(node, CancellationToken.None));
        var again = await NpgsqlCommands.RecordAsync(() => store.UpsertAsync(node with { Uuid = Guid.NewGuid().ToString(), Vcpus = 8 }, CancellationToken.None));

        Assert.Collection(fresh, c => Assert.StartsWith("INSERT INTO compute_nodes", c, StringComparison.Ordinal)); // row, change number and id at once
        Assert.Contains(again, c => c.Contains("FOR UPDATE", StringComparison.Ordinal)); // a known host locks its row first
        var stored = store.FindByHost("host-a")!;
        Assert.Equal((node.Uuid, 8), (stored.Uuid, stored.Vcpus));
        Assert.Equal(stored.Id, store.List().Single(n => n.Host == "host-a").Id); // the id read from its column
    }

    [Fact]
    public async Task KeyPairStore_SameNameFromTwoProcessesAtOnce_OneCreatedOneConflict()
    {
        for (var round = 0; round < 20; round++)
        {
            using var start = new Barrier(2);
            var outcomes = await Task.WhenAll(new[] { _first, _second }.Select(db => Task.Run(() =>
            {
                start.SignalAndWait(TimeSpan.FromSeconds(30));
                try
                {
                    new KeyPairStore(db, TimeProvider.System).Create("u", $"same-{round}", "ssh", "fp", "key");
                    return "created";
                }
                catch (ConflictException e)
                {
                    return e.Message;
                }
            }))).WaitAsync(TimeSpan.FromSeconds(60));

            Assert.Equal(["Key pair 'same-" + round + "' already exists.", "created"], outcomes.Order());
        }
    }

    [Fact]
    public async Task DatabaseSchema_SyncFromTwoProcessesAtOnce_BothSucceedOnce()
    {
        using var fresh = new TestDatabase(DatabaseEngine.PostgreSql);
        var databases = new[] { fresh.Open(), fresh.Open() };
        using var start = new Barrier(2);

        await Task.WhenAll(databases.Select(db => Task.Run(() =>
        {
            start.SignalAndWait(TimeSpan.FromSeconds(30));
            DatabaseSchema.Sync(db);
        }))).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.True(DatabaseSchema.IsCurrent(databases[0]));
    }
}
