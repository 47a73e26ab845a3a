using System.Runtime.Versioning;
using Ferry.Tests.Shared;
using Ferry.Virt;

namespace Ferry.Tests.Virt;

[SupportedOSPlatform("linux")]
public sealed class ExecutablePathTests : IDisposable
{
    private const UnixFileMode Executable = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private readonly string _root = TestTempNames.Directory("exepath");

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void Find_NameInSecondPathDirectory_ReturnsItsFullPath()
    {
        var (first, second) = (Dir("a"), Dir("b"));
        var tool = Tool(second, "tool", Executable);

        Assert.Equal(tool, ExecutablePath.Find("tool", $"{first}::{second}"));
        Assert.True(ExecutablePath.Exists("tool", $"{first}:{second}"));
    }

    [Fact]
    public void Find_SameNameInTwoDirectories_ReturnsTheFirst()
    {
        var (first, second) = (Dir("a"), Dir("b"));
        var winner = Tool(first, "tool", Executable);
        Tool(second, "tool", Executable);

        Assert.Equal(winner, ExecutablePath.Find("tool", $"{first}:{second}"));
    }

    [Fact]
    public void Find_FileWithoutExecuteBitFirst_SkipsItForTheExecutableOne()
    {
        var (first, second) = (Dir("a"), Dir("b"));
        Tool(first, "tool", UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var runnable = Tool(second, "tool", Executable);

        Assert.Equal(runnable, ExecutablePath.Find("tool", $"{first}:{second}"));
        Assert.Null(ExecutablePath.Find("tool", first));
    }

    [Fact]
    public void Find_DirectoryOrMissingName_ReturnsNull()
    {
        var dir = Dir("a");
        Directory.CreateDirectory(Path.Combine(dir, "tool"));

        Assert.Null(ExecutablePath.Find("tool", dir));
        Assert.Null(ExecutablePath.Find("missing", dir));
        Assert.False(ExecutablePath.Exists("missing", ""));
    }

    [Fact]
    public void Find_NameWithSlash_IsAPathNotSearched()
    {
        var dir = Dir("a");
        var tool = Tool(dir, "tool", Executable);
        var link = Path.Combine(dir, "link");
        File.CreateSymbolicLink(link, tool);

        Assert.Equal(tool, ExecutablePath.Find(tool, searchPath: "/nonexistent"));
        Assert.Equal(link, ExecutablePath.Find(link, searchPath: ""));
        Assert.Null(ExecutablePath.Find("/nonexistent/tool", dir));
        Assert.Null(ExecutablePath.Find("a/tool", dir)); // relative to the working directory, not to PATH
    }

    [Fact]
    public void Find_NoSearchPath_UsesThisProcessPath()
    {
        var sh = ExecutablePath.Find("sh");

        Assert.NotNull(sh);
        Assert.Contains(Path.GetDirectoryName(sh)!, Environment.GetEnvironmentVariable("PATH")!.Split(':'));
    }

    private string Dir(string name) => Directory.CreateDirectory(Path.Combine(_root, name)).FullName;

    private static string Tool(string directory, string name, UnixFileMode mode)
    {
        var path = Path.Combine(directory, name);
        File.WriteAllText(path, "#!/bin/sh\n");
        File.SetUnixFileMode(path, mode);
        return path;
    }
}
