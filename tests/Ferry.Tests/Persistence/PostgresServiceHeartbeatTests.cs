using Ferry.ControlPlane.Persistence;
using Ferry.Tests.Shared;

namespace Ferry.Tests.Persistence;

/// <summary>A heartbeat on PostgreSQL: what it sends to the server, and how it meets an admin's write of the same row.</summary>
[Collection(PostgresServer.Collection)]
public sealed class PostgresServiceHeartbeatTests : IDisposable
{
    private readonly TestDatabase _files = new(DatabaseEngine.PostgreSql);
    private readonly FerryDatabase _agentProcess;
    private readonly FerryDatabase _apiProcess;

    public PostgresServiceHeartbeatTests()
    {
        _agentProcess = _files.Open();
        _apiProcess = _files.Open();
        DatabaseSchema.Sync(_agentProcess);
    }

    public void Dispose() => _files.Dispose();

    [Fact]
    public async Task ReportAsync_ExistingService_OneUpdateOfTheHeartbeatColumnAndNothingElse()
    {
        var store = new ServiceStore(_agentProcess, TimeProvider.System);
        var created = store.Report("host-a", "nova-compute", "compute", 66);

        var statements = await NpgsqlCommands.RecordAsync(() => store.ReportAsync("host-a", "nova-compute", "compute", 66, CancellationToken.None));

        var statement = Assert.Single(statements);
        Assert.StartsWith("UPDATE services SET heartbeat_at = ", statement, StringComparison.Ordinal);
        Assert.True(store.Find("host-a", "nova-compute")!.LastSeenUp > created.LastSeenUp);
    }

    [Fact]
    public async Task ReportAsync_NewService_TheHeartbeatThenOneInsertOutsideAnyTransaction()
    {
        var store = new ServiceStore(_agentProcess, TimeProvider.System);

        var statements = await NpgsqlCommands.RecordAsync(() => store.ReportAsync("host-new", "nova-compute", "compute", 66, CancellationToken.None));

        // The heartbeat finds no row; the insert is its own transaction on a no-flush session (no SET LOCAL before it).
        Assert.Collection(statements, s => Assert.StartsWith("UPDATE services SET heartbeat_at = ", s, StringComparison.Ordinal),
            s => Assert.StartsWith("INSERT INTO services", s, StringComparison.Ordinal));
        var made = store.Find("host-new", "nova-compute")!;
        Assert.Equal((66, "compute"), (made.Version, made.Topic));
        Assert.True(made.Id > 0);
        Assert.Equal(made.Id, store.Report("host-new", "nova-compute", "compute", 66).Id); // the next report is a heartbeat on it
    }

    [Fact]
    public async Task ReportAsync_NewVersion_TheHeartbeatThenTheVersionWithAChangeNumber()
    {
        var store = new ServiceStore(_agentProcess, TimeProvider.System);
        store.Report("host-a", "nova-compute", "compute", 66);
        var seqBefore = (await store.ListChangedSinceAsync("nova-compute", -1, CancellationToken.None)).Max(r => r.Seq);

        var statements = await NpgsqlCommands.RecordAsync(() => store.ReportAsync("host-a", "nova-compute", "compute", 67, CancellationToken.None));

        Assert.Equal(2, statements.Count);
        Assert.StartsWith("UPDATE services SET data = ", statements[1], StringComparison.Ordinal);
        Assert.Equal(67, store.Find("host-a", "nova-compute")!.Version);
        Assert.Equal(67, Assert.Single(await store.ListChangedSinceAsync("nova-compute", seqBefore, CancellationToken.None)).Service.Version);
    }

    [Fact]
    public async Task ReportAsync_HeartbeatsOfOneRow_AreHotUpdatesTouchingNoIndex()
    {
        var store = new ServiceStore(_agentProcess, TimeProvider.System);
        store.Report("host-a", "nova-compute", "compute", 66);
        var (updatesBefore, hotBefore) = await UpdateCountsAsync(0);

        for (var i = 0; i < 20; i++)
        {
            await store.ReportAsync("host-a", "nova-compute", "compute", 66, CancellationToken.None);
        }

        // PostgreSQL's statistics reach pg_stat_user_tables from each backend within a second or so.
        var (updates, hot) = await UpdateCountsAsync(updatesBefore + 20);
        Assert.Equal(updatesBefore + 20, updates);
        Assert.Equal(20, hot - hotBefore);
    }

    [Fact]
    public async Task ReportAsync_ManyHostsAtOnce_WrittenInGroupsEachRowOnce()
    {
        var store = new ServiceStore(_agentProcess, TimeProvider.System);
        var hosts = Enumerable.Range(0, 100).Select(i => $"host-{i}").ToList();
        foreach (var host in hosts)
        {
            store.Report(host, "nova-compute", "compute", 66);
        }
        var (updatesBefore, _) = await UpdateCountsAsync(0);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var statements = await NpgsqlCommands.RecordAsync(async () =>
        {
            var beats = hosts.Select(host => Task.Run(async () =>
            {
                await gate.Task;
                return await store.ReportAsync(host, "nova-compute", "compute", 66, CancellationToken.None);
            })).ToList();
            gate.SetResult();
            Assert.Equal(hosts, (await Task.WhenAll(beats)).Select(s => s.Host));
        });

        // Heartbeats that come together go in groups of one statement each.
        Assert.InRange(statements.Count, 1, hosts.Count / 4);
        Assert.Contains(statements, s => s.StartsWith("WITH beats(host, bin, at) AS (VALUES ", StringComparison.Ordinal));
        // Each row updated once, whatever the padding of a group repeated. (Whether an update is HOT depends on the room left
        // on the row's page, and these rows were just made, packed; the statement changes no indexed column either way.)
        await UpdateCountsAsync(updatesBefore + hosts.Count);
        await Task.Delay(1500);
        Assert.Equal(updatesBefore + hosts.Count, (await UpdateCountsAsync(0)).Updates);
    }

    /// <summary>The (updates, HOT updates) of the services table PostgreSQL counted, once it counts at least <paramref name="atLeast"/> updates (bounded).</summary>
    private async Task<(long Updates, long Hot)> UpdateCountsAsync(long atLeast)
    {
        using var give = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (true)
        {
            var counts = await _apiProcess.ReadAsync(async (c, ct) =>
            {
                await using var query = FerryDatabase.Command(c, null,
                    "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'services' AND schemaname = current_schema()");
                await using var reader = await query.ExecuteReaderAsync(ct);
                Assert.True(await reader.ReadAsync(ct));
                return (reader.GetInt64(0), reader.GetInt64(1));
            }, give.Token);
            if (counts.Item1 >= atLeast)
            {
                return counts;
            }
            await Task.Delay(100, give.Token);
        }
    }

    [Fact]
    public async Task ReportAsync_WhileAnotherProcessDisablesTheServiceInItsTransaction_WaitsForItAndKeepsTheDisable()
    {
        var agent = new ServiceStore(_agentProcess, TimeProvider.System);
        var admin = new ServiceStore(_apiProcess, TimeProvider.System);
        var created = agent.Report("host-a", "nova-compute", "compute", 66);
        using var rowLocked = new ManualResetEventSlim();
        using var write = new ManualResetEventSlim();
        // The admin's read-modify-write of the whole row, held between its locking read and its write.
        var disabling = Task.Run(() => admin.Update(created.Id, s =>
        {
            rowLocked.Set();
            Assert.True(write.Wait(TimeSpan.FromSeconds(60)), "the test never let the admin's write go on");
            return s with { Disabled = true, DisabledReason = "maintenance" };
        }));
        Assert.True(rowLocked.Wait(TimeSpan.FromSeconds(30)), "the admin's transaction never read the row");

        var beat = agent.ReportAsync("host-a", "nova-compute", "compute", 67, CancellationToken.None);
        await WaitForLockWaitersAsync(1);
        write.Set();
        await disabling.WaitAsync(TimeSpan.FromSeconds(30));
        var reported = await beat.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.True(reported.Disabled);
        var stored = admin.FindById(created.Id)!;
        Assert.Equal((true, "maintenance", 67), (stored.Disabled, stored.DisabledReason, stored.Version));
        Assert.True(stored.LastSeenUp > created.LastSeenUp, $"last_seen_up {stored.LastSeenUp:O} did not move from {created.LastSeenUp:O}");
    }

    /// <summary>Waits until <paramref name="count"/> sessions of this database wait for a row lock (bounded).</summary>
    private async Task WaitForLockWaitersAsync(int count)
    {
        using var give = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (true)
        {
            var waiting = await _apiProcess.ReadAsync(async (c, ct) =>
            {
                await using var query = FerryDatabase.Command(c, null,
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'");
                return Convert.ToInt32(await query.ExecuteScalarAsync(ct), System.Globalization.CultureInfo.InvariantCulture);
            }, give.Token);
            if (waiting >= count)
            {
                return;
            }
            await Task.Delay(20, give.Token);
        }
    }
}
