using System.Data.Common;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Rpc.Conductor;
using Ferry.Tests.Api;
using Ferry.Tests.Shared;

namespace Ferry.Tests.Persistence;

public sealed class SqliteStoreTests() : StoreTests(DatabaseEngine.Sqlite);

[Collection(PostgresServer.Collection)]
public sealed class PostgresStoreTests() : StoreTests(DatabaseEngine.PostgreSql);

/// <summary>Every store's reads and writes, run once over each database engine.</summary>
public abstract class StoreTests : IDisposable
{
    private readonly TestDatabase _files;
    private readonly FerryDatabase _db;

    protected StoreTests(DatabaseEngine engine)
    {
        _files = new TestDatabase(engine);
        _db = _files.Open();
        DatabaseSchema.Sync(_db);
    }

    public void Dispose() => _files.Dispose();

    internal static Flavor SmallFlavor(int internalId = 1) => new() { InternalId = internalId, Id = "1", Name = "m1.small", Vcpus = 1, MemoryMb = 512, RootGb = 1 };

    internal static Instance NewInstance(int id, string? uuid = null) => new()
    {
        Id = id, Uuid = uuid ?? Guid.NewGuid().ToString(), DisplayName = "vm", ProjectId = "p1", UserId = "u1", Host = "host-a",
        Flavor = SmallFlavor(), ImageRef = "img", VmState = VmState.Active, CreatedAt = DateTimeOffset.UtcNow,
    };

    [Fact]
    public void WriteHistory_PostgreSql_CommitsWithoutWaitingForTheWalFlushWhileWriteWaits()
    {
        string Setting(DbConnection c, DbTransaction t)
        {
            using var show = FerryDatabase.Command(c, t, _files.Engine == DatabaseEngine.PostgreSql ? "SHOW synchronous_commit" : "PRAGMA synchronous");
            return Convert.ToString(show.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture)!;
        }
        var db = _db;
        if (_files.Engine == DatabaseEngine.PostgreSql)
        {
            // The test server runs with synchronous_commit off for speed: this database's sessions get it on, as a real server's do.
            _db.Write((c, t) =>
            {
                using var name = FerryDatabase.Command(c, t, "SELECT current_database()");
                using var alter = FerryDatabase.Command(c, t, $"ALTER DATABASE \"{name.ExecuteScalar()}\" SET synchronous_commit = on");
                alter.ExecuteNonQuery();
            });
            db = _files.Open(); // a pool of its own: its sessions start with the database's setting
        }
        string? inHistory = null;
        db.WriteHistory((c, t) => inHistory = Setting(c, t));
        var inWrite = db.Write((c, t) => Setting(c, t));

        if (_files.Engine == DatabaseEngine.PostgreSql)
        {
            Assert.Equal("off", inHistory);
            Assert.Equal("on", inWrite); // SET LOCAL ends with its transaction: the pooled connection is durable again
        }
        else
        {
            Assert.Equal("1", inHistory); // SQLite commits the same way either way (synchronous=NORMAL under WAL)
            Assert.Equal("1", inWrite);
        }
    }

    [Fact]
    public void InstanceStore_CreateFindListUpdate_RoundTrips()
    {
        var store = new InstanceStore(_db, TimeProvider.System);
        var first = store.Create(id => NewInstance(id));
        var second = store.Create(id => NewInstance(id));

        Assert.True(first.Id > 0);
        Assert.NotEqual(first.Id, second.Id);
        Assert.Equal(first.Id, store.Get(first.Uuid).Id);
        Assert.Equal(2, store.List(projectId: "p1", host: "host-a").Count);

        var moved = store.Update(new InstanceUpdateRequest { Uuid = first.Uuid, Host = "host-b", SetTaskState = true, TaskState = TaskState.Migrating });
        Assert.Equal("host-b", store.Get(first.Uuid).Host);
        Assert.Equal(TaskState.Migrating, moved.TaskState);
        Assert.Single(store.List(host: "host-b"));

        store.Update(new InstanceUpdateRequest { Uuid = second.Uuid, Deleted = true });
        Assert.Null(store.Find(second.Uuid));
        Assert.NotNull(store.Find(second.Uuid, includeDeleted: true));
    }

    [Fact]
    public void InstanceStore_UsageOfProject_CountsLiveInstancesOfTheProjectOrUser()
    {
        var store = new InstanceStore(_db, TimeProvider.System);
        var small = SmallFlavor() with { Vcpus = 1, MemoryMb = 512 };
        var large = SmallFlavor() with { Vcpus = 4, MemoryMb = 2048 };
        store.Create(id => NewInstance(id) with { Flavor = small });
        store.Create(id => NewInstance(id) with { Flavor = large, UserId = "u2" });
        store.Create(id => NewInstance(id) with { Flavor = large, ProjectId = "p2" });
        var gone = store.Create(id => NewInstance(id) with { Flavor = large });
        store.Update(new InstanceUpdateRequest { Uuid = gone.Uuid, Deleted = true });

        Assert.Equal(new ProjectUsage(2, 5, 2560), store.UsageOfProject("p1"));
        Assert.Equal(new ProjectUsage(1, 4, 2048), store.UsageOfProject("p1", "u2"));
        Assert.Equal(new ProjectUsage(0, 0, 0), store.UsageOfProject("p3"));
    }

    [Fact]
    public async Task InstanceStore_HostsOfHintedInstances_ResolvesEachHintToDistinctHostsOfLiveInstances()
    {
        var store = new InstanceStore(_db, TimeProvider.System);
        var a = store.Create(id => NewInstance(id) with { Host = "h1" });
        var b = store.Create(id => NewInstance(id) with { Host = "h2" });
        var c = store.Create(id => NewInstance(id) with { Host = "h1" });
        var unplaced = store.Create(id => NewInstance(id) with { Host = null });
        var gone = store.Create(id => NewInstance(id) with { Host = "h3" });
        store.Update(new InstanceUpdateRequest { Uuid = gone.Uuid, Deleted = true });
        var hints = new Dictionary<string, List<string>>
        {
            ["same_host"] = [a.Uuid, c.Uuid, unplaced.Uuid, "unknown"],
            ["different_host"] = [b.Uuid, gone.Uuid],
            ["query"] = ["not an instance"],
        };

        var hosts = await store.HostsOfHintedInstancesAsync(hints, CancellationToken.None);

        Assert.Equal(["different_host", "same_host"], hosts.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(["h1"], hosts["same_host"]);
        Assert.Equal(["h2"], hosts["different_host"]);
        Assert.Empty(await store.HostsOfHintedInstancesAsync(new Dictionary<string, List<string>> { ["same_host"] = [] }, CancellationToken.None));
    }

    [Fact]
    public void InstanceStore_UpdateWithUnexpectedTaskState_ThrowsNovaMessageAndChangesNothing()
    {
        var store = new InstanceStore(_db, TimeProvider.System);
        var instance = store.Create(id => NewInstance(id));
        store.Update(new InstanceUpdateRequest { Uuid = instance.Uuid, SetTaskState = true, TaskState = TaskState.Migrating, ExpectedTaskStates = [null] });

        var ex = Assert.Throws<UnexpectedTaskStateException>(() => store.Update(new InstanceUpdateRequest
        {
            Uuid = instance.Uuid, SetTaskState = true, TaskState = TaskState.ResizePrep, Host = "elsewhere", ExpectedTaskStates = [null],
        }));

        Assert.Equal($"Conflict updating instance {instance.Uuid}. Expected: {{'task_state': [None]}}. Actual: {{'task_state': migrating}}", ex.Message);
        var stored = store.Get(instance.Uuid);
        Assert.Equal(TaskState.Migrating, stored.TaskState);
        Assert.Equal("host-a", stored.Host);
    }

    [Fact]
    public void MigrationStore_CreateListUpdate_GuardsExpectedStatus()
    {
        var store = new MigrationStore(_db, TimeProvider.System);
        var instanceUuid = Guid.NewGuid().ToString();
        Migration Build(int id) => new()
        {
            Id = id, Uuid = Guid.NewGuid().ToString(), InstanceUuid = instanceUuid, MigrationType = "live-migration", Status = "accepted",
            SourceCompute = "host-a", UserId = "u1", ProjectId = "p1",
        };
        var first = store.Create(Build);
        var second = store.Create(Build);

        Assert.NotEqual(first.Id, second.Id);
        Assert.Equal(first.Uuid, store.FindById(first.Id)!.Uuid);
        Assert.Equal(2, store.List(new MigrationFilter(InstanceUuid: instanceUuid, Host: "host-a")).Count);
        var running = store.Update(new MigrationUpdateRequest { Uuid = first.Uuid, Status = "running", DestCompute = "host-b", MemoryTotal = 1L << 33 });
        Assert.Equal("host-b", store.Get(first.Uuid).DestCompute);
        Assert.Equal(1L << 33, running.MemoryTotal);
        Assert.Throws<InvalidMigrationStateException>(() => store.Update(new MigrationUpdateRequest { Uuid = first.Uuid, Status = "cancelled", ExpectedStatuses = ["accepted"] }));
        Assert.Equal("running", store.Get(first.Uuid).Status);
        store.Update(new MigrationUpdateRequest { Uuid = first.Uuid, Status = "completed" });
        Assert.Equal([second.Uuid], store.ListUnfinished().Where(m => m.InstanceUuid == instanceUuid).Select(m => m.Uuid));
    }

    [Fact]
    public void ActionStore_ActionEventsAndFaults_AreRecordedInOrder()
    {
        var store = new ActionStore(_db, TimeProvider.System);
        var instance = Guid.NewGuid().ToString();
        store.StartAction(instance, "req-1", "live-migration", "u1", "p1");
        store.StartAction(instance, "req-1", "live-migration", "u1", "p1");
        store.RecordEvent(instance, "req-1", "compute_live_migration", "host-a", finished: false, failed: false, details: null);
        store.RecordEvent(instance, "req-1", "compute_live_migration", "host-a", finished: true, failed: true, details: "boom");
        store.AddFault(instance, 500, "first", "host-a", null);
        store.AddFault(instance, 409, "second", "host-a", "details");

        var action = Assert.Single(store.ListActions(instance));
        Assert.Equal("Error", action.Message);
        var ev = Assert.Single(store.ListEvents(action.Id));
        Assert.Equal(("Error", "boom"), (ev.Result, ev.Details));
        Assert.Equal((409, "second"), (store.LatestFault(instance)!.Code, store.LatestFault(instance)!.Message));
    }

    [Fact]
    public void Read_PostgreSql_ConnectionGoesBackToThePoolWithoutDiscardAll()
    {
        if (_files.Engine != DatabaseEngine.PostgreSql)
        {
            return; // one connection, never pooled
        }
        var db = _files.Open(); // a pool of its own: one idle connection, taken again by the next use
        // A session setting survives the return to the pool only when Npgsql sends no DISCARD ALL (nothing of Ferry's sets one).
        var first = db.Read(c =>
        {
            using var set = FerryDatabase.Command(c, null, "SET application_name = 'ferry-reset-probe'; SELECT pg_backend_pid()");
            return Convert.ToInt32(set.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        });
        var (second, name) = db.Read(c =>
        {
            using var show = FerryDatabase.Command(c, null, "SELECT pg_backend_pid(), current_setting('application_name')");
            using var r = show.ExecuteReader();
            r.Read();
            return (Convert.ToInt32(r.GetValue(0), System.Globalization.CultureInfo.InvariantCulture), r.GetString(1));
        });
        Assert.Equal(first, second);
        Assert.Equal("ferry-reset-probe", name);
    }

    [Fact]
    public void ActionStore_KeyedStartAfterItsFinish_ChangesNothing()
    {
        var time = new ManualTimeProvider(new DateTimeOffset(2026, 12, 5, 6, 0, 0, TimeSpan.Zero));
        var store = new ActionStore(_db, time);
        var instance = Guid.NewGuid().ToString();
        store.StartAction(instance, "req-1", "live-migration", "u1", "p1");
        var started = time.GetUtcNow();
        time.Advance(TimeSpan.FromSeconds(2));
        store.RecordEvent(instance, "req-1", "compute_live_migration", "host-a", finished: true, failed: true, details: "boom", eventKey: "k1", startTime: started);
        var before = Assert.Single(store.ListActions(instance));
        time.Advance(TimeSpan.FromSeconds(3));

        // The start's cast lands last (another conductor replica, a slow queue).
        store.RecordEvent(instance, "req-1", "compute_live_migration", "host-a", finished: false, failed: false, details: null, eventKey: "k1", startTime: started);

        Assert.Equal(before, Assert.Single(store.ListActions(instance)));
        var ev = Assert.Single(store.ListEvents(before.Id));
        Assert.Equal(("compute_live_migration", "Error", "boom", "host-a"), (ev.Event, ev.Result, ev.Details, ev.Host));
        Assert.Equal((Rows.Time(started), Rows.Time(started.AddSeconds(2))), (ev.StartTime, ev.FinishTime));
    }

    [Fact]
    public void ActionStore_KeyedStartTwiceThenFinishTwice_RecordsOneEventFinishedOnce()
    {
        var time = new ManualTimeProvider(new DateTimeOffset(2026, 12, 5, 6, 0, 0, TimeSpan.Zero));
        var store = new ActionStore(_db, time);
        var instance = Guid.NewGuid().ToString();
        store.StartAction(instance, "req-1", "live-migration", "u1", "p1");
        var started = time.GetUtcNow();
        store.RecordEvent(instance, "req-1", "compute_pre_live_migration", "host-b", finished: false, failed: false, details: null, eventKey: "k1", startTime: started);
        store.RecordEvent(instance, "req-1", "compute_pre_live_migration", "host-b", finished: false, failed: false, details: null, eventKey: "k1", startTime: started);
        var action = Assert.Single(store.ListActions(instance));
        Assert.Null(Assert.Single(store.ListEvents(action.Id)).FinishTime);

        time.Advance(TimeSpan.FromSeconds(1));
        store.RecordEvent(instance, "req-1", "compute_pre_live_migration", "host-b", finished: true, failed: false, details: null, eventKey: "k1", startTime: started);
        time.Advance(TimeSpan.FromSeconds(1));
        store.RecordEvent(instance, "req-1", "compute_pre_live_migration", "host-b", finished: true, failed: true, details: "late", eventKey: "k1", startTime: started);

        var ev = Assert.Single(store.ListEvents(action.Id));
        Assert.Equal(("Success", (string?)null, Rows.Time(started), Rows.Time(started.AddSeconds(1))), (ev.Result, ev.Details, ev.StartTime, ev.FinishTime));
        Assert.Null(Assert.Single(store.ListActions(instance)).Message);
    }

    [Fact]
    public void ActionStore_KeyedStartOnTwoReplicasAtOnce_RecordsOneEvent()
    {
        var replicas = new[] { new ActionStore(_db, TimeProvider.System), new ActionStore(_files.Open(), TimeProvider.System) };
        var instance = Guid.NewGuid().ToString();
        replicas[0].StartAction(instance, "req-1", "live-migration", "u1", "p1");
        var keys = Enumerable.Range(0, 20).Select(i => $"key-{i}").ToArray();
        var started = DateTimeOffset.UtcNow;

        // Each start delivered to both replicas at the same moment, and a third time to the first.
        Parallel.ForEach(keys.SelectMany(k => new[] { (k, 0), (k, 1), (k, 0) }), new ParallelOptions { MaxDegreeOfParallelism = 4 }, item =>
            replicas[item.Item2].RecordEvent(instance, "req-1", "compute_live_migration", "host-a", finished: false, failed: false, details: null,
                eventKey: item.k, startTime: started));
        foreach (var k in keys)
        {
            replicas[1].RecordEvent(instance, "req-1", "compute_live_migration", "host-a", finished: true, failed: false, details: null, eventKey: k, startTime: started);
        }

        var events = replicas[0].ListEvents(Assert.Single(replicas[0].ListActions(instance)).Id);
        Assert.Equal(keys.Length, events.Count);
        Assert.All(events, e => Assert.Equal("Success", e.Result));
    }

    [Fact]
    public void ServiceStore_ReportTwice_KeepsOneRowAndMovesTheHeartbeat()
    {
        var time = new ManualTimeProvider(new DateTimeOffset(2026, 12, 4, 10, 0, 0, TimeSpan.Zero));
        var store = new ServiceStore(_db, time);
        var first = store.Report("host-a", "nova-compute", "compute", 66);
        time.Advance(TimeSpan.FromSeconds(10));
        var second = store.Report("host-a", "nova-compute", "compute", 67);
        store.Report("host-b", "nova-compute", "compute", 66);

        Assert.Equal(first.Id, second.Id);
        Assert.Equal(first.Uuid, second.Uuid);
        Assert.Equal(time.GetUtcNow(), store.Find("host-a", "nova-compute")!.LastSeenUp);
        Assert.Equal(67, store.FindById(first.Id)!.Version);
        Assert.Equal(2, store.List(binary: "nova-compute").Count);
        Assert.Equal(["host-b"], store.MarkComputesDownExcept(["host-a"]));
        var disabled = store.Update(first.Id, s => s with { Disabled = true });
        Assert.True(store.FindByUuid(first.Uuid)!.Disabled);
        Assert.True(disabled.Disabled);
    }

    [Fact]
    public async Task ServiceStore_HeartbeatAfterAdminChange_KeepsItMovesTheTimesAndTakesTheNextChangeNumber()
    {
        var time = new ManualTimeProvider(new DateTimeOffset(2026, 12, 5, 10, 0, 0, TimeSpan.Zero));
        var agent = new ServiceStore(_db, time);
        var admin = new ServiceStore(_db, time);
        var created = agent.Report("host-a", "nova-compute", "compute", 66);
        agent.Report("host-b", "nova-compute", "compute", 66);
        time.Advance(TimeSpan.FromSeconds(3));
        var changed = admin.Update(created.Id, s => s with { Disabled = true, DisabledReason = "maintenance", ForcedDown = true });
        var seqBefore = (await agent.ListChangedSinceAsync("nova-compute", -1, CancellationToken.None)).Max(r => r.Seq);
        time.Advance(TimeSpan.FromSeconds(7));

        var beat = agent.Report("host-a", "nova-compute", "compute", 67);

        // The reply the compute gets carries the admin's flags; the row keeps them, with the heartbeat's times and version.
        Assert.Equal((created.Id, created.Uuid, true, true), (beat.Id, beat.Uuid, beat.Disabled, beat.ForcedDown));
        var stored = admin.FindById(created.Id)!;
        Assert.Equal(changed with { LastSeenUp = time.GetUtcNow(), UpdatedAt = time.GetUtcNow(), Version = 67 }, stored);
        Assert.Equal(created.CreatedAt, stored.CreatedAt);
        var changedSince = await agent.ListChangedSinceAsync("nova-compute", seqBefore, CancellationToken.None);
        Assert.Equal(["host-a"], changedSince.Select(r => r.Service.Host));
        Assert.Equal(seqBefore + 1, Assert.Single(changedSince).Seq);
    }

    [Fact]
    public async Task ServiceStore_HeartbeatSameVersion_MovesOnlyTheHeartbeatAndTakesNoChangeNumber()
    {
        var time = new ManualTimeProvider(new DateTimeOffset(2026, 12, 6, 10, 0, 0, TimeSpan.Zero));
        var agent = new ServiceStore(_db, time);
        var created = agent.Report("host-a", "nova-compute", "compute", 66);
        agent.Report("host-b", "nova-compute", "compute", 66);
        var seqBefore = (await agent.ListChangedSinceAsync("nova-compute", -1, CancellationToken.None)).Max(r => r.Seq);
        var stampBefore = agent.ChangeStamp;
        time.Advance(TimeSpan.FromSeconds(10));

        var beat = agent.Report("host-a", "nova-compute", "compute", 66);

        Assert.Equal(created with { LastSeenUp = time.GetUtcNow(), UpdatedAt = time.GetUtcNow() }, beat);
        Assert.Equal(beat, agent.FindById(created.Id));
        Assert.Empty(await agent.ListChangedSinceAsync("nova-compute", seqBefore, CancellationToken.None));
        Assert.Equal(stampBefore, agent.ChangeStamp); // the scheduler's view in this process is not made to read again
        var since = await agent.ListHeartbeatsSinceAsync("nova-compute", created.LastSeenUp, CancellationToken.None);
        Assert.Equal(("host-a", time.GetUtcNow()), Assert.Single(since));
        Assert.Equal(2, (await agent.ListHeartbeatsSinceAsync("nova-compute", null, CancellationToken.None)).Count);

        // Forgetting a host's heartbeat (a restart without it) reaches the column the heartbeats write.
        Assert.Equal(["host-a"], agent.MarkComputesDownExcept(["host-b"]));
        Assert.Equal(DateTimeOffset.UnixEpoch, agent.FindById(created.Id)!.LastSeenUp);
        Assert.Equal(beat.UpdatedAt, agent.FindById(created.Id)!.UpdatedAt);
    }

    [Fact]
    public async Task ServiceStore_HeartbeatsOfManyHostsAtOnce_EachWrittenAndAnsweredWithItsOwnRow()
    {
        var time = new ManualTimeProvider(new DateTimeOffset(2026, 12, 6, 10, 0, 0, TimeSpan.Zero));
        var agent = new ServiceStore(_db, time);
        var hosts = Enumerable.Range(0, 150).Select(i => $"host-{i}").ToList();
        foreach (var host in hosts)
        {
            agent.Report(host, "nova-compute", "compute", 66);
        }
        var before = time.GetUtcNow();
        time.Advance(TimeSpan.FromSeconds(10));
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        // Every host at once, one of them twice, and a host with no row yet (its report makes the row).
        List<string> reporting = [.. hosts, "host-7", "host-new"];
        var beats = reporting.Select(host => Task.Run(async () =>
        {
            await gate.Task;
            return await agent.ReportAsync(host, "nova-compute", "compute", 66, CancellationToken.None);
        })).ToList();
        gate.SetResult();
        var replies = await Task.WhenAll(beats).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(reporting, replies.Select(r => r.Host));
        Assert.All(replies, r => Assert.Equal(time.GetUtcNow(), r.LastSeenUp));
        var since = await agent.ListHeartbeatsSinceAsync("nova-compute", before, CancellationToken.None);
        Assert.Equal([.. hosts.Append("host-new").Order(StringComparer.Ordinal)], since.Select(b => b.Host).Order(StringComparer.Ordinal), StringComparer.Ordinal);
        Assert.All(since, b => Assert.Equal(time.GetUtcNow(), b.At));
        Assert.Equal(151, (await agent.ListAsync(CancellationToken.None, binary: "nova-compute")).Count);
    }

    [Fact]
    public void ComputeNodeStore_UpsertAgain_KeepsIdAndUuid()
    {
        var store = new ComputeNodeStore(_db);
        ComputeNode Node(string uuid, int vcpus) => new()
        {
            Uuid = uuid, Host = "host-a", HypervisorHostname = "host-a", HypervisorType = "fake", HypervisorVersion = 1, Vcpus = vcpus, MemoryMb = 1024, LocalGb = 10,
        };
        var first = store.Upsert(Node(Guid.NewGuid().ToString(), 4));
        var again = store.Upsert(Node(Guid.NewGuid().ToString(), 8));

        Assert.Equal((first.Id, first.Uuid), (again.Id, again.Uuid));
        Assert.Equal(8, store.FindByUuid(first.Uuid)!.Vcpus);
        Assert.Single(store.List());
        store.Delete("host-a");
        Assert.Null(store.FindByHost("host-a"));
    }

    [Fact]
    public void ComputeNodeStore_UpsertSameNodeNewBootTime_WritesTheBootTimeAndNextChange()
    {
        var store = new ComputeNodeStore(_db);
        var booted = new DateTimeOffset(2026, 12, 5, 8, 0, 0, TimeSpan.Zero);
        ComputeNode Node(DateTimeOffset bootedAt, int vcpus) => new()
        {
            Uuid = Guid.NewGuid().ToString(), Host = "host-b", HypervisorHostname = "host-b", HypervisorType = "fake", HypervisorVersion = 1,
            Vcpus = vcpus, MemoryMb = 1024, LocalGb = 10, BootedAt = bootedAt,
        };
        var first = store.Upsert(Node(booted, 4));
        var seq = store.ListChangedSince(0).Single(n => n.Node.Id == first.Id).Seq;

        // A restart: only the boot time differs (written without waiting for a flush on PostgreSQL), then a real change.
        var restarted = store.Upsert(Node(booted.AddMinutes(5), 4));
        var restartedSeq = store.ListChangedSince(seq).Single(n => n.Node.Id == first.Id).Seq;
        store.Upsert(Node(booted.AddMinutes(9), 6));

        Assert.Equal((first.Id, first.Uuid), (restarted.Id, restarted.Uuid));
        Assert.True(restartedSeq > seq);
        Assert.Equal(booted.AddMinutes(9), store.FindByHost("host-b")!.BootedAt);
        Assert.Equal(6, store.FindByHost("host-b")!.Vcpus);
    }

    [Fact]
    public void CatalogStore_FlavorsAndImages_RoundTripAndRejectDuplicates()
    {
        var store = new CatalogStore(_db);
        var small = store.CreateFlavor(id => SmallFlavor(id));
        var large = store.CreateFlavor(id => SmallFlavor(id) with { Id = "2", Name = "m1.large" });
        Assert.NotEqual(small.InternalId, large.InternalId);
        Assert.Equal(large.InternalId, store.FindFlavor("m1.large")!.InternalId);
        var ex = Assert.Throws<ConflictException>(() => store.CreateFlavor(id => SmallFlavor(id) with { Id = "3" }));
        Assert.Equal("Flavor with name m1.small or ID 3 already exists.", ex.Message);
        Assert.Equal(["1", "2"], store.ListFlavors().Select(f => f.Id));
        store.DeleteFlavor("1");
        Assert.Throws<FlavorNotFoundException>(() => store.DeleteFlavor("1"));

        var id = Guid.NewGuid().ToString();
        store.SaveImage(new Image { Id = id, Name = "cirros", CreatedAt = DateTimeOffset.UtcNow });
        store.SaveImage(new Image { Id = id, Name = "cirros-2", CreatedAt = DateTimeOffset.UtcNow });
        Assert.Equal("cirros-2", store.GetImage(id.ToUpperInvariant())!.Name);
        Assert.Equal(id, store.FindImage("cirros-2")!.Id);
        Assert.True(store.DeleteImage(id));
        Assert.Empty(store.ListImages());
    }

    [Fact]
    public void KeyPairStore_CreateListDelete_PagesAndRejectsDuplicates()
    {
        var store = new KeyPairStore(_db, TimeProvider.System);
        foreach (var name in new[] { "c", "a", "b" })
        {
            store.Create("u1", name, "ssh", "fp", "ssh-ed25519 AAAA");
        }
        Assert.Equal("Key pair 'a' already exists.", Assert.Throws<ConflictException>(() => store.Create("u1", "a", "ssh", "fp", "k")).Message);
        Assert.Equal(["a", "b", "c"], store.List("u1").Select(k => k.Name));
        Assert.Equal(["b"], store.List("u1", limit: 1, marker: "a").Select(k => k.Name));
        Assert.Equal(3, store.Count("u1"));
        store.Delete("u1", "b");
        Assert.Throws<NotFoundException>(() => store.Delete("u1", "b"));
        Assert.True(store.Find("u1", "a")!.Id > 0);
    }

    [Fact]
    public void ServerGroupStore_Members_AreAddedAndRemoved()
    {
        var store = new ServerGroupStore(_db);
        var group = store.Create("g", "anti-affinity", 2, "p1", "u1");
        store.AddMember(group.Uuid, "i1");
        store.AddMember(group.Uuid, "i2");
        store.RemoveMember(group.Uuid, "i1");

        var stored = store.Find(group.Uuid)!;
        Assert.Equal(["i2"], stored.Members);
        Assert.Equal(2, stored.MaxServerPerHost);
        store.Delete(group.Uuid);
        Assert.Throws<NotFoundException>(() => store.AddMember(group.Uuid, "i3"));
    }

    [Fact]
    public void QuotaStore_SetLimitsTwice_Replaces()
    {
        var store = new QuotaStore(_db);
        store.SetLimits("p1", null, new Dictionary<string, long> { ["cores"] = 10, ["ram"] = 1L << 40 });
        store.SetLimits("p1", null, new Dictionary<string, long> { ["cores"] = 20 });
        store.SetLimits("p1", "u1", new Dictionary<string, long> { ["cores"] = 5 });
        store.SetClassLimits("default", new Dictionary<string, long> { ["instances"] = 7 });

        Assert.Equal(new Dictionary<string, long> { ["cores"] = 20, ["ram"] = 1L << 40 }, store.Limits("p1"));
        Assert.Equal([5L], store.UserLimits("p1")["cores"]);
        Assert.Equal(7, store.ClassLimits("default")["instances"]);
        store.DeleteLimits("p1", "u1");
        Assert.Empty(store.Limits("p1", "u1"));
    }

    [Fact]
    public void DatabaseSchema_SyncAgain_ChangesNothing()
    {
        var again = DatabaseSchema.Sync(_db);

        Assert.All(again, r => Assert.Equal(r.Before, r.After));
        Assert.True(DatabaseSchema.IsCurrent(_db));
        Assert.Equal(ComputeSchema.Scripts.Count, _db.SchemaVersion(ComputeSchema.Component));
    }

    [Fact]
    public void DatabaseSchema_OlderComputeVersion_IsUpgradedKeepingRows()
    {
        using var older = new TestDatabase(_files.Engine);
        var db = older.Open();
        db.Migrate(ComputeSchema.Component, ComputeSchema.Scripts.Take(1).ToList());
        // A row as the first version wrote it: its usage only in the JSON, which the upgrade copies into columns.
        var instance = NewInstance(1) with { Flavor = SmallFlavor() with { Vcpus = 2, MemoryMb = 768, RootGb = 3, EphemeralGb = 4 } };
        db.Write((c, t) =>
        {
            using var insert = FerryDatabase.Command(c, t,
                "INSERT INTO instances(uuid, project_id, host, vm_state, deleted, created_at, data) VALUES (@u, 'p1', 'host-a', 'active', 0, @c, @d)",
                ("@u", instance.Uuid), ("@c", instance.CreatedAt.UtcDateTime.ToString("o")),
                ("@d", System.Text.Json.JsonSerializer.Serialize(instance, PersistenceJsonContext.Default.Instance)));
            insert.ExecuteNonQuery();
        });
        Assert.False(DatabaseSchema.IsCurrent(db));

        var results = DatabaseSchema.Sync(db);

        Assert.Contains(new SchemaSyncResult(ComputeSchema.Component, 1, ComputeSchema.Scripts.Count), results);
        Assert.Contains(new SchemaSyncResult(PlacementSchema.Component, 0, PlacementSchema.Scripts.Count), results);
        Assert.True(DatabaseSchema.IsCurrent(db));
        Assert.NotNull(new InstanceStore(db, TimeProvider.System).Find(instance.Uuid));
        Assert.Equal(new HostUsage(2, 768, 7, 0, 1), new InstanceStore(db, TimeProvider.System).UsageByHost()["host-a"]);
        Assert.Equal(new ProjectUsage(1, 2, 768), new InstanceStore(db, TimeProvider.System).UsageOfProject("p1", instance.UserId));
        new KeyPairStore(db, TimeProvider.System).Create("u1", "k", "ssh", "fp", "key");
    }
}
