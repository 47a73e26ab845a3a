using System.Diagnostics;

namespace Ferry.Benchmarks;

/// <summary>
/// Finds the Release build of the host. Building this project builds Ferry.Host (a project reference) into
/// src/Ferry.Host/bin/Release; when that dll is missing anyway, the host is built here once.
/// </summary>
internal static class HostBuild
{
    public static string EnsureBuilt(Action<string> log)
    {
        var root = RepositoryRoot();
        var dll = Path.Combine(root, "src", "Ferry.Host", "bin", "Release", "net10.0", "ferry.dll");
        if (File.Exists(dll))
        {
            return dll;
        }
        log($"{dll} is missing: building src/Ferry.Host (Release)");
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = root, UseShellExecute = false };
        foreach (var arg in new[] { "build", "src/Ferry.Host/Ferry.Host.csproj", "-c", "Release", "-nologo", "-v", "quiet" })
        {
            start.ArgumentList.Add(arg);
        }
        using var build = Process.Start(start) ?? throw new InvalidOperationException("could not run dotnet build");
        if (!build.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            build.Kill(entireProcessTree: true);
            throw new TimeoutException("building the host took over 5 minutes");
        }
        if (build.ExitCode != 0 || !File.Exists(dll))
        {
            throw new InvalidOperationException($"building the host failed ({build.ExitCode})");
        }
        return dll;
    }

    /// <summary>
    /// How to run ferry: the executable <c>FERRY_BINARY</c> names (the native ferry, which <c>./ferry bench --distributed</c>
    /// publishes and sets), else <c>dotnet</c> with the built <paramref name="hostDll"/>.
    /// </summary>
    public static (string FileName, string[] Prefix) Command(string hostDll) =>
        Environment.GetEnvironmentVariable("FERRY_BINARY") is { Length: > 0 } binary
            ? (File.Exists(binary) ? Path.GetFullPath(binary) : throw new InvalidOperationException($"FERRY_BINARY={binary}: no such file"), [])
            : ("dotnet", [hostDll]);

    /// <summary>What <see cref="Command"/> runs, for the report: "native (path)" or "JIT (dotnet path)".</summary>
    public static string Describe(string hostDll) =>
        Command(hostDll) is ("dotnet", _) ? $"JIT (dotnet {hostDll})" : $"native ({Command(hostDll).FileName})";

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Ferry.slnx")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException($"no Ferry.slnx above {AppContext.BaseDirectory}");
    }
}
