using System.Runtime.CompilerServices;

namespace Ferry.Tests.Shared;

/// <summary>The repository the tests run from: where the <c>ferry</c> script, its sources and tools are.</summary>
public static class TestRepository
{
    /// <summary>
    /// The directory holding <c>Ferry.slnx</c> and the <c>ferry</c> script, found above the test binaries, the working
    /// directory or this source file (build output may live outside the repository: --artifacts-path).
    /// </summary>
    public static string Root([CallerFilePath] string sourceFile = "")
    {
        string?[] starts = [AppContext.BaseDirectory, Environment.CurrentDirectory, Path.GetDirectoryName(sourceFile)];
        foreach (var start in starts.OfType<string>())
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Ferry.slnx")) && File.Exists(Path.Combine(dir.FullName, "ferry")))
                {
                    return dir.FullName;
                }
            }
        }
        throw new InvalidOperationException("Ferry.slnx not found above " + AppContext.BaseDirectory);
    }
}
