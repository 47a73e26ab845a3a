using System.Data.Common;
using System.Globalization;
using Ferry.ControlPlane.Persistence;
using Ferry.Tests.Shared;

namespace Ferry.Tests.Persistence;

public sealed class SqliteFerryDatabaseAsyncTests() : FerryDatabaseAsyncTests(DatabaseEngine.Sqlite);

[Collection(PostgresServer.Collection)]
public sealed class PostgresFerryDatabaseAsyncTests() : FerryDatabaseAsyncTests(DatabaseEngine.PostgreSql);

/// <summary>The asynchronous operations of <see cref="FerryDatabase"/>, once over each engine.</summary>
public abstract class FerryDatabaseAsyncTests : IDisposable
{
    private readonly TestDatabase _files;
    private readonly FerryDatabase _db;

    protected FerryDatabaseAsyncTests(DatabaseEngine engine)
    {
        _files = new TestDatabase(engine);
        _db = _files.Open();
        _db.Write((c, t) =>
        {
            using var create = FerryDatabase.Command(c, t, "CREATE TABLE numbers (n INTEGER NOT NULL)");
            create.ExecuteNonQuery();
        });
    }

    public void Dispose() => _files.Dispose();

    private static Task<int> InsertAsync(DbConnection c, DbTransaction t, int n, CancellationToken ct) =>
        FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "INSERT INTO numbers(n) VALUES (@n)", ("@n", n)), ct);

    private Task<List<int>> NumbersAsync(CancellationToken ct) =>
        _db.ReadAsync((c, token) => Rows.ReadAllAsync(FerryDatabase.Command(c, null, "SELECT n FROM numbers ORDER BY n"), r => Rows.Int(r, 0), token), ct);

    [Fact]
    public async Task WriteAsync_TokenCancelledWhileWriting_CommitsTheWholeTransaction()
    {
        using var request = new CancellationTokenSource();
        var seen = new List<bool>();

        await _db.WriteAsync(async (c, t, ct) =>
        {
            await InsertAsync(c, t, 1, ct);
            await request.CancelAsync(); // the client goes away half way through the state change
            seen.Add(ct.CanBeCanceled);
            await InsertAsync(c, t, 2, ct);
        }, request.Token);

        Assert.Equal([false], seen);
        Assert.Equal([1, 2], await NumbersAsync(CancellationToken.None));
    }

    [Fact]
    public async Task ExecuteHistoryAsync_OneStatement_CommittedAndSeenByOthers()
    {
        var changed = await _db.ExecuteHistoryAsync("INSERT INTO numbers(n) VALUES (@n), (@m)", CancellationToken.None, ("@n", 7), ("@m", 8));

        Assert.Equal(2, changed);
        Assert.Equal([7, 8], await NumbersAsync(CancellationToken.None));
        Assert.Equal(1, await _db.ExecuteHistoryAsync("DELETE FROM numbers WHERE n = @n", CancellationToken.None, ("@n", 7)));
        Assert.Equal([8], await NumbersAsync(CancellationToken.None));
    }

    [Fact]
    public async Task WriteAsync_TokenCancelledBeforeStart_ThrowsAndWritesNothing()
    {
        using var request = new CancellationTokenSource();
        await request.CancelAsync();
        var ran = false;

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => _db.WriteAsync(async (c, t, ct) =>
        {
            ran = true;
            await InsertAsync(c, t, 1, ct);
        }, request.Token));

        Assert.False(ran);
        Assert.Empty(await NumbersAsync(CancellationToken.None));
    }

    [Fact]
    public async Task WriteAsync_DelegateThrows_RollsBackEverything()
    {
        await Assert.ThrowsAsync<InvalidOperationException>(() => _db.WriteAsync(async (c, t, ct) =>
        {
            await InsertAsync(c, t, 1, ct);
            throw new InvalidOperationException("half way");
        }, CancellationToken.None));

        Assert.Empty(await NumbersAsync(CancellationToken.None));
        await _db.WriteAsync((c, t, ct) => InsertAsync(c, t, 3, ct), CancellationToken.None); // the gate was released
        Assert.Equal([3], await NumbersAsync(CancellationToken.None));
    }

    [Fact]
    public async Task ReadAsync_GivesTheCallersTokenAndCancelledThrows()
    {
        using var request = new CancellationTokenSource();
        var given = await _db.ReadAsync((c, ct) => Task.FromResult(ct), request.Token);
        Assert.Equal(request.Token, given);

        await request.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => NumbersAsync(request.Token));
        Assert.Empty(await NumbersAsync(CancellationToken.None)); // and the gate is free again
    }

    [Fact]
    public async Task SnapshotAsync_SeesCommittedRowsInOneTransaction()
    {
        await _db.WriteAsync((c, t, ct) => InsertAsync(c, t, 7, ct), CancellationToken.None);

        var counted = await _db.SnapshotAsync(async (c, t, ct) =>
        {
            var a = await FerryDatabase.ScalarAsync(FerryDatabase.Command(c, t, "SELECT COUNT(*) FROM numbers"), ct);
            var b = await FerryDatabase.ScalarAsync(FerryDatabase.Command(c, t, "SELECT SUM(n) FROM numbers"), ct);
            return new[] { Convert.ToInt32(a, CultureInfo.InvariantCulture), Convert.ToInt32(b, CultureInfo.InvariantCulture) };
        }, CancellationToken.None);

        Assert.Equal([1, 7], counted);
    }

    [Fact]
    public async Task ConcurrentWriteAsync_AllCommitOneAtATimeOnSqliteAndPooledOnPostgres()
    {
        await Task.WhenAll(Enumerable.Range(1, 20).Select(n =>
            _db.WriteAsync((c, t, ct) => InsertAsync(c, t, n, ct), CancellationToken.None)));

        Assert.Equal(Enumerable.Range(1, 20), await NumbersAsync(CancellationToken.None));
    }

    [Fact]
    public async Task WriteHistoryAsync_PostgreSql_CommitsWithoutWaitingForTheWalFlushWhileWriteAsyncWaits()
    {
        var ct = CancellationToken.None;
        var query = _files.Engine == DatabaseEngine.PostgreSql ? "SHOW synchronous_commit" : "PRAGMA synchronous";
        async Task<string> SettingAsync(DbConnection c, DbTransaction t, CancellationToken token) =>
            Convert.ToString(await FerryDatabase.ScalarAsync(FerryDatabase.Command(c, t, query), token), CultureInfo.InvariantCulture)!;
        var db = _db;
        if (_files.Engine == DatabaseEngine.PostgreSql)
        {
            // The test server runs with synchronous_commit off for speed: this database's sessions get it on, as a real server's do.
            await _db.WriteAsync(async (c, t, token) =>
            {
                var name = await FerryDatabase.ScalarAsync(FerryDatabase.Command(c, t, "SELECT current_database()"), token);
                await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, $"ALTER DATABASE \"{name}\" SET synchronous_commit = on"), token);
            }, ct);
            db = _files.Open();
        }

        var inHistory = await db.WriteHistoryAsync(SettingAsync, ct);
        var inWrite = await db.WriteAsync(SettingAsync, ct);

        Assert.Equal(_files.Engine == DatabaseEngine.PostgreSql ? ["off", "on"] : ["1", "1"], new[] { inHistory, inWrite });
    }
}
