using Ferry.ControlPlane.Persistence;

namespace Ferry.Tests.Placement;

/// <summary>A SQLite file in a fresh temp folder, removed on dispose; <see cref="Open"/> may be called again to simulate a restart.</summary>
internal sealed class PlacementTestDatabase : IDisposable
{
    private readonly string _folder = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "ferry-placement-" + Guid.NewGuid().ToString("N"));
    private readonly List<FerryDatabase> _opened = [];

    public string FilePath => System.IO.Path.Combine(_folder, "ferry.db");

    public FerryDatabase Open()
    {
        var database = new FerryDatabase(FilePath);
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
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a temp folder left behind is harmless.
        }
    }
}
