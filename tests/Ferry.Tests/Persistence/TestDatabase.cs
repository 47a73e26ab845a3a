using Ferry.ControlPlane.Persistence;
using Ferry.Tests.Shared;

namespace Ferry.Tests.Persistence;

/// <summary>
/// One empty database on the given engine: a SQLite file in a fresh temp folder, or a fresh database on the
/// test process's PostgreSQL server. <see cref="Open"/> may be called more than once: on SQLite to simulate a
/// restart, on PostgreSQL to get a second process's view (its own pool). Everything opened is disposed with it.
/// </summary>
internal sealed class TestDatabase : IDisposable
{
    private readonly string _folder = TestTempNames.Path("db");
    private readonly List<FerryDatabase> _opened = [];

    public TestDatabase(DatabaseEngine engine = DatabaseEngine.Sqlite)
    {
        Engine = engine;
        Connection = engine == DatabaseEngine.PostgreSql ? PostgresServer.Shared.CreateDatabase() : Path.Combine(_folder, "ferry.db");
    }

    public DatabaseEngine Engine { get; }

    /// <summary>The connection setting, as <c>--database</c> would take it.</summary>
    public string Connection { get; }

    public FerryDatabase Open()
    {
        var database = new FerryDatabase(Connection);
        _opened.Add(database);
        return database;
    }

    public void Dispose()
    {
        foreach (var database in _opened)
        {
            database.Dispose();
        }
        try
        {
            if (Directory.Exists(_folder))
            {
                Directory.Delete(_folder, recursive: true);
            }
        }
        catch (IOException)
        {
            // Best effort: a temp folder left behind is harmless.
        }
    }
}
