using Ferry.ControlPlane.Persistence;
using Npgsql;

namespace Ferry.Tests.Persistence;

public sealed class DatabaseConnectionTests
{
    [Theory]
    [InlineData("var/ferry.db", "var/ferry.db")]
    [InlineData("sqlite:/tmp/x/ferry.db", "/tmp/x/ferry.db")]
    [InlineData(":memory:", ":memory:")]
    public void Parse_PathOrSqliteUri_IsSqlite(string setting, string path)
    {
        var parsed = DatabaseConnection.Parse(setting);

        Assert.Equal(DatabaseEngine.Sqlite, parsed.Engine);
        Assert.Equal(path, parsed.ConnectionString);
    }

    [Fact]
    public void Parse_PostgresUri_IsPostgresWithEveryPartAndNoPasswordInDescription()
    {
        var parsed = DatabaseConnection.Parse("postgresql://ferry:s%40cret@db.example:6543/nova?Timeout=7");

        Assert.Equal(DatabaseEngine.PostgreSql, parsed.Engine);
        var builder = new NpgsqlConnectionStringBuilder(parsed.ConnectionString);
        Assert.Equal(("ferry", "s@cret", "db.example", 6543, "nova", 7), (builder.Username, builder.Password, builder.Host, builder.Port, builder.Database, builder.Timeout));
        Assert.Equal("postgresql://ferry@db.example:6543/nova", parsed.Description);
    }

    [Fact]
    public void Parse_NpgsqlKeywords_IsPostgres()
    {
        var parsed = DatabaseConnection.Parse("Host=127.0.0.1;Port=5433;Username=postgres;Database=ferry");

        Assert.Equal(DatabaseEngine.PostgreSql, parsed.Engine);
        Assert.Equal("postgresql://postgres@127.0.0.1:5433/ferry", parsed.Description);
    }

    [Theory]
    [InlineData("postgresql://u@h/db?NoSuchOption=1")]
    [InlineData("Host=h;NoSuchOption=1")]
    public void Parse_UnknownOption_ThrowsArgumentExceptionNamingIt(string setting)
    {
        var ex = Assert.Throws<ArgumentException>(() => DatabaseConnection.Parse(setting));

        Assert.Contains("NoSuchOption", ex.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void CheckReachable_NothingListening_ThrowsOneLineNamingTheDatabase()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        using var db = new FerryDatabase($"postgresql://ferry@127.0.0.1:{port}/nova?Timeout=5");

        var ex = Assert.Throws<DatabaseUnavailableException>(db.CheckReachable);

        Assert.StartsWith($"Cannot reach the database postgresql://ferry@127.0.0.1:{port}/nova: ", ex.Message);
    }

    [Fact]
    public void WithFerryDefaults_PlainConnection_NoResetAndStatementsAutoPrepared()
    {
        var tuned = new NpgsqlConnectionStringBuilder(FerryDatabase.WithFerryDefaults("Host=db;Database=ferry"));

        Assert.True(tuned.NoResetOnClose);
        Assert.True(tuned.MaxAutoPrepare > 100);
        Assert.Equal(2, tuned.AutoPrepareMinUsages);
    }

    [Fact]
    public void WithFerryDefaults_OperatorsOwnSettings_Win()
    {
        var given = new NpgsqlConnectionStringBuilder(FerryDatabase.WithFerryDefaults("Host=db;Database=ferry;Max Auto Prepare=0;No Reset On Close=false"));

        Assert.Equal(0, given.MaxAutoPrepare);
        Assert.False(given.NoResetOnClose);
    }

    [Fact]
    public void WithoutFlushWait_Connection_SessionsCommitWithoutFlushOnAFewConnections()
    {
        var history = new NpgsqlConnectionStringBuilder(FerryDatabase.WithoutFlushWait("Host=db;Database=ferry;Options=-c statement_timeout=5000"));

        Assert.Equal("-c statement_timeout=5000 -c synchronous_commit=off", history.Options);
        Assert.True(history.MaxPoolSize <= 16);
    }
}
