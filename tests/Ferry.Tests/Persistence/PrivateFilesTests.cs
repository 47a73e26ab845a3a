using Ferry.ControlPlane.Identity;
using Ferry.ControlPlane.Persistence;
using Ferry.Tests.Shared;

namespace Ferry.Tests.Persistence;

/// <summary>The data directory's files are owner-only (0600), new ones from the start and old ones from the next start.</summary>
public sealed class PrivateFilesTests : IDisposable
{
    private const UnixFileMode WorldReadable = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
    private readonly string _directory = TestTempNames.Directory("private");

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void FerryDatabase_NewFile_IsCreatedOwnerOnlyWithItsWal()
    {
        var path = Path.Combine(_directory, "ferry.db");
        using (var db = new FerryDatabase(path))
        {
            db.Migrate("t", ["CREATE TABLE t (x INTEGER)", "INSERT INTO t VALUES (1)"]);
            Assert.All(Directory.EnumerateFiles(_directory, "ferry.db*"), f => Assert.Equal(PrivateFiles.OwnerOnly, File.GetUnixFileMode(f)));
            Assert.Contains(Directory.EnumerateFiles(_directory), f => f.EndsWith("-wal", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void FerryDatabase_WorldReadableFileOfAnEarlierStart_IsNarrowed()
    {
        var path = Path.Combine(_directory, "ferry.db");
        new FerryDatabase(path).Dispose();
        File.SetUnixFileMode(path, WorldReadable);

        using var db = new FerryDatabase(path);

        Assert.Equal(PrivateFiles.OwnerOnly, File.GetUnixFileMode(path));
    }

    [Fact]
    public void OpenRcWrite_OverAWorldReadableFile_LeavesItOwnerOnly()
    {
        var path = Path.Combine(_directory, "demo-openrc.sh");
        File.WriteAllText(path, "old");
        File.SetUnixFileMode(path, WorldReadable);

        OpenRc.Write(path, OpenRc.Variables("http://127.0.0.1:5000/v3", "demo", "secret", "demo", "RegionOne"));

        Assert.Equal(PrivateFiles.OwnerOnly, File.GetUnixFileMode(path));
        Assert.Contains("OS_PASSWORD='secret'", File.ReadAllText(path), StringComparison.Ordinal);
    }
}
