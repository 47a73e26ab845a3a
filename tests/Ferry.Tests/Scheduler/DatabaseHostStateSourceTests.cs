using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Scheduler;
using Ferry.Core.Domain;
using Ferry.Tests.Persistence;
using Ferry.Tests.Shared;

namespace Ferry.Tests.Scheduler;

public sealed class SqliteDatabaseHostStateSourceTests() : DatabaseHostStateSourceTests(DatabaseEngine.Sqlite);

[Collection(PostgresServer.Collection)]
public sealed class PostgresDatabaseHostStateSourceTests() : DatabaseHostStateSourceTests(DatabaseEngine.PostgreSql)
{
    [Fact]
    public void GetComputeServices_WriteCommittedAfterALaterOne_IsStillRead()
    {
        var (_, services, source) = Open();
        Report("h1", "h2");
        source.Refresh();
        Assert.Equal(2, source.GetComputeServices().Count);
        var other = OtherProcess();

        // h1's write takes its change number first and commits last, after h2's and after the source has read h2's.
        other.Write((c, t) =>
        {
            using var write = FerryDatabase.Command(c, t,
                "UPDATE services SET data = REPLACE(data, '\"disabled\":false', '\"disabled\":true'), "
                + "change_seq = (SELECT COALESCE(MAX(change_seq), 0) + 1 FROM services) WHERE host = 'h1'");
            Assert.Equal(1, write.ExecuteNonQuery());
            var h2 = services.Find("h2", "nova-compute")!;
            services.Update(h2.Id, s => s with { DisabledReason = "later" });
            source.Refresh();
            Assert.Equal("later", source.GetComputeServices()["h2"].DisabledReason);
        });
        Time.Advance(TimeSpan.FromSeconds(1)); // another process's write: seen once the snapshot is a second old
        RefreshInTheBackground(source);

        Assert.True(source.GetComputeServices()["h1"].Disabled);
        Assert.Equal(1, source.Reads.Full);
    }
}

/// <summary>
/// The scheduler's cached host states over each engine: a write is seen by the next request, through a read of the
/// changed rows only; another process's write within a second; a delete through a full read.
/// </summary>
public abstract class DatabaseHostStateSourceTests : IDisposable
{
    private readonly TestDatabase _files;
    private readonly FerryDatabase _db;
    private readonly ServiceStore _services;
    private readonly ComputeNodeStore _nodes;

    protected DatabaseHostStateSourceTests(DatabaseEngine engine)
    {
        _files = new TestDatabase(engine);
        _db = _files.Open();
        DatabaseSchema.Sync(_db);
        _services = new ServiceStore(_db, Time);
        _nodes = new ComputeNodeStore(_db);
    }

    internal SteppedClock Time { get; } = new(new DateTimeOffset(2026, 12, 5, 0, 0, 0, TimeSpan.Zero));

    public void Dispose() => _files.Dispose();

    protected (ComputeNodeStore Nodes, ServiceStore Services, DatabaseHostStateSource Source) Open() =>
        (_nodes, _services, new DatabaseHostStateSource(_nodes, _services, _db, Time));

    /// <summary>The same database as another process sees it: its own connection (pool), stores and stamps.</summary>
    protected FerryDatabase OtherProcess() => _files.Open();

    /// <summary>
    /// A request on a view a second old or more (other processes' writes only): it answers at once from the view and starts a
    /// read in the background; this waits for that read, as the next requests would see its result.
    /// </summary>
    protected static void RefreshInTheBackground(DatabaseHostStateSource source)
    {
        var (_, incremental) = source.Reads;
        source.Refresh();
        Assert.True(source.BackgroundRefresh.Wait(TimeSpan.FromSeconds(30)));
        Assert.Equal(incremental + 1, source.Reads.Incremental);
    }

    protected void Report(params string[] hosts)
    {
        foreach (var host in hosts)
        {
            AddHost(_db, host);
        }
    }

    // On the test's clock: the view reads heartbeats from shortly before the newest it has seen.
    private void AddHost(FerryDatabase db, string host)
    {
        new ServiceStore(db, Time).Report(host, "nova-compute", "compute", 1);
        new ComputeNodeStore(db).Upsert(new ComputeNode
        {
            Uuid = Guid.NewGuid().ToString(), Host = host, HypervisorHostname = host, HypervisorType = "fake",
            HypervisorVersion = 1, Vcpus = 8, MemoryMb = 8192, LocalGb = 100,
        });
    }

    [Fact]
    public void GetComputeServices_LocalDisableAndHeartbeat_SeenAtOnceReadingOnlyChangedRows()
    {
        var (nodes, services, source) = Open();
        Report("h1", "h2", "h3");
        source.Refresh();
        var before = source.GetComputeNodes();
        var h2 = services.Find("h2", "nova-compute")!;

        services.Update(h2.Id, s => s with { Disabled = true, DisabledReason = "maintenance" });
        Time.Advance(TimeSpan.FromSeconds(5));
        services.Report("h3", "nova-compute", "compute", 1);
        source.Refresh();

        var after = source.GetComputeServices();
        Assert.True(after["h2"].Disabled);
        Assert.Equal(Time.GetUtcNow(), after["h3"].LastSeenUp);
        Assert.False(after["h1"].Disabled);
        Assert.Same(before, source.GetComputeNodes()); // no node changed: the same list, so the same host states
        Assert.Equal((1, 1), source.Reads);
        Assert.Equal(3, nodes.List().Count);
    }

    [Fact]
    public void GetComputeServices_HeartbeatsOfAnotherProcess_SeenOnceASecondOldWithoutTheirRowsOrARefresh()
    {
        var (_, services, source) = Open();
        Report("h1", "h2");
        source.Refresh();
        var before = source.GetComputeServices();
        var other = new ServiceStore(OtherProcess(), Time);

        Time.Advance(TimeSpan.FromSeconds(0.5));
        other.Report("h1", "nova-compute", "compute", 1);
        services.Report("h2", "nova-compute", "compute", 1); // this process's heartbeat is no write the view must read at once
        source.Refresh();
        Assert.Same(before, source.GetComputeServices());

        Time.Advance(TimeSpan.FromSeconds(0.5));
        RefreshInTheBackground(source);
        var after = source.GetComputeServices();
        Assert.Equal(Time.GetUtcNow() - TimeSpan.FromSeconds(0.5), after["h1"].LastSeenUp);
        Assert.Equal(after["h1"].LastSeenUp, after["h2"].LastSeenUp);
        Assert.Equal(before["h1"] with { LastSeenUp = after["h1"].LastSeenUp, UpdatedAt = after["h1"].UpdatedAt }, after["h1"]);
        Assert.Equal((1, 1), source.Reads); // the heartbeats came with the read of changes, which found no changed row
    }

    [Fact]
    public void GetComputeNodes_NodeAddedAndUpdatedByAnotherProcess_SeenWhenASecondOld()
    {
        var (_, _, source) = Open();
        Report("h1", "h2");
        source.Refresh();
        var first = source.GetComputeNodes();
        var other = OtherProcess();
        AddHost(other, "h3");
        var otherNodes = new ComputeNodeStore(other);
        otherNodes.Upsert(otherNodes.FindByHost("h1")! with { Vcpus = 64 });

        source.Refresh();
        Assert.Same(first, source.GetComputeNodes()); // no write in this process, and not yet a second old
        Time.Advance(TimeSpan.FromSeconds(1));
        RefreshInTheBackground(source);
        var nodes = source.GetComputeNodes();

        Assert.Equal(["h1", "h2", "h3"], nodes.Select(n => n.Host));
        Assert.Equal(64, nodes[0].Vcpus);
        Assert.Same(first[1], nodes[1]); // an unchanged node keeps its object
        Assert.True(source.GetComputeServices().ContainsKey("h3"));
        Assert.Equal(1, source.Reads.Full);
    }

    [Fact]
    public void GetComputeNodes_ViewOlderThanItsBackgroundWindow_RequestWaitsForTheRead()
    {
        var (_, _, source) = Open();
        Report("h1");
        source.Refresh();
        AddHost(OtherProcess(), "h2");

        Time.Advance(TimeSpan.FromSeconds(10));
        source.Refresh(); // no request for 10 s: this one reads before it answers

        Assert.Equal(["h1", "h2"], source.GetComputeNodes().Select(n => n.Host));
        Assert.True(source.BackgroundRefresh.IsCompleted);
        Assert.Equal((1, 1), source.Reads);
    }

    [Fact]
    public void GetComputeNodes_LocalDelete_ReadsEverythingAgain()
    {
        var (nodes, services, source) = Open();
        Report("h1", "h2");
        source.Refresh();
        Assert.Equal(2, source.GetComputeNodes().Count);

        nodes.Delete("h1");
        services.Delete(services.Find("h1", "nova-compute")!.Id);
        source.Refresh();

        Assert.Equal(["h2"], source.GetComputeNodes().Select(n => n.Host));
        Assert.False(source.GetComputeServices().ContainsKey("h1"));
        Assert.Equal(2, source.Reads.Full);
    }

    [Fact]
    public async Task GetComputeNodes_WriteAfterRefresh_AnswersFromMemoryUntilTheNextRefresh()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var (nodes, services, source) = Open();
        Assert.Throws<InvalidOperationException>(() => source.GetComputeNodes()); // nothing loaded: never a read of its own
        Report("h1", "h2");
        await source.RefreshAsync(timeout.Token);
        var loaded = source.GetComputeNodes();

        // The getters are what the synchronous filters call: they must not go to the database, even when it changed.
        Report("h3");
        services.Update(services.Find("h1", "nova-compute")!.Id, s => s with { Disabled = true });

        Assert.Same(loaded, source.GetComputeNodes());
        Assert.False(source.GetComputeServices()["h1"].Disabled);
        Assert.Equal((1, 0), source.Reads);
        await source.RefreshAsync(timeout.Token);
        Assert.Equal(["h1", "h2", "h3"], source.GetComputeNodes().Select(n => n.Host));
        Assert.True(source.GetComputeServices()["h1"].Disabled);
        Assert.Equal(3, nodes.List().Count);
    }
}

/// <summary>A clock the test moves by hand, timestamps included (the source measures its snapshot's age with them).</summary>
internal sealed class SteppedClock(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset _now = start;

    public override DateTimeOffset GetUtcNow() => _now;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => _now.UtcTicks;

    public void Advance(TimeSpan by) => _now += by;
}
