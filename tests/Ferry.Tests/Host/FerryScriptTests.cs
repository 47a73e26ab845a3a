using System.Diagnostics;
using Ferry.Tests.Shared;

namespace Ferry.Tests.Host;

/// <summary>The `ferry` script's own behaviour (what CI and an operator read at the end of `./ferry test`).</summary>
public sealed class FerryScriptTests
{
    [Fact]
    public async Task Test_BuildFails_SaysSoAndCountsNoTest()
    {
        var project = TestTempNames.Directory("broken");
        try
        {
            await File.WriteAllTextAsync(Path.Combine(project, "Broken.csproj"),
                """<Project Sdk="Microsoft.NET.Sdk"><PropertyGroup><TargetFramework>net10.0</TargetFramework></PropertyGroup></Project>""");
            await File.WriteAllTextAsync(Path.Combine(project, "Broken.cs"), "class Broken {");

            var (exitCode, output) = await RunAsync(Path.Combine(project, "Broken.csproj"));

            Assert.NotEqual(0, exitCode);
            Assert.Contains("ferry test: the build failed (errors above); no test ran", output, StringComparison.Ordinal);
            Assert.DoesNotContain("passed,", output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(project, recursive: true);
        }
    }

    [Fact]
    public async Task Test_KilledRunsTempPaths_RemovedWithTheirProcessesLiveRunsKept()
    {
        // A test process that is gone (a killed run) left a SQLite file, and a data directory a process still names.
        using var gone = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        await gone.WaitForExitAsync();
        var staleFile = TestTempNames.Path("api", ".db", owner: gone.Id);
        var staleDirectory = TestTempNames.Path("test", owner: gone.Id);
        await File.WriteAllTextAsync(staleFile, "");
        Directory.CreateDirectory(staleDirectory);
        await File.WriteAllTextAsync(Path.Combine(staleDirectory, "log"), "");
        using var orphan = Process.Start(new ProcessStartInfo("tail", ["-f", Path.Combine(staleDirectory, "log")]) { UseShellExecute = false })!;
        var live = TestTempNames.Directory("test");
        var project = TestTempNames.Directory("broken");
        try
        {
            await File.WriteAllTextAsync(Path.Combine(project, "Broken.csproj"), "<Project />");

            await RunAsync(Path.Combine(project, "Broken.csproj"));

            Assert.False(File.Exists(staleFile));
            Assert.False(Directory.Exists(staleDirectory));
            Assert.True(orphan.WaitForExit(TimeSpan.FromSeconds(10)), "the process naming the killed run's directory still runs");
            Assert.True(Directory.Exists(live));
        }
        finally
        {
            orphan.Kill();
            File.Delete(staleFile);
            foreach (var directory in new[] { staleDirectory, live, project }.Where(Directory.Exists))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string solution)
    {
        var start = new ProcessStartInfo("bash")
        {
            WorkingDirectory = TestRepository.Root(),
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("ferry");
        start.ArgumentList.Add("test");
        start.Environment["FERRY_TEST_SOLUTION"] = solution;
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout + await stderr);
    }
}
