using System.Diagnostics;
using System.Globalization;

namespace Ferry.FunctionalTests.Distributed;

/// <summary>Ctrl-C (SIGTERM) of `ferry distributed` before its ready line: a clean stop of what it had started, not a crash.</summary>
[Collection(ProcessRestartCollection.Name)]
public sealed class DistributedStopTests
{
    [Fact]
    public async Task Launcher_SigtermWhileRolesStart_StopsWhatItStartedAndExitsZero()
    {
        var dataDirectory = Path.Combine("/tmp", $"ferry-dist-stop-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}");
        Directory.CreateDirectory(dataDirectory);
        var start = new ProcessStartInfo(FerryBinary.Executable) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in (string[])["distributed", "--data-dir", dataDirectory, "--hosts", "2", "--time-scale", "0",
            "--compute-port", "0", "--placement-port", "0", "--identity-port", "0", "--image-port", "0", "--network-port", "0", "--volume-port", "0"])
        {
            start.ArgumentList.Add(arg);
        }
        using var launcher = Process.Start(start)!;
        var output = Task.WhenAll(launcher.StandardOutput.ReadToEndAsync(), launcher.StandardError.ReadToEndAsync());
        var pidFile = Path.Combine(dataDirectory, "distributed.pids");
        try
        {
            // Stopped once its database, its broker and a first role run: in the middle of the start.
            var waited = Stopwatch.StartNew();
            while (!(File.Exists(pidFile) && File.ReadAllText(pidFile).Contains(" api-1", StringComparison.Ordinal)) && !launcher.HasExited)
            {
                Assert.True(waited.Elapsed < TimeSpan.FromMinutes(3), "the launcher started no role in 3 minutes");
                await Task.Delay(50);
            }
            var children = File.ReadAllLines(pidFile).Select(line => int.Parse(line.Split(' ')[0], CultureInfo.InvariantCulture)).ToList();
            using (var term = Process.Start("kill", ["-s", "TERM", launcher.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                await term.WaitForExitAsync();
            }
            await launcher.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
            var text = string.Join("\n", await output);

            Assert.True(launcher.ExitCode == 0, $"exit {launcher.ExitCode}:\n{text}");
            Assert.DoesNotContain("Unhandled exception", text, StringComparison.Ordinal);
            Assert.DoesNotContain(" is ready in ", text, StringComparison.Ordinal);
            Assert.Empty(children.Where(pid => Directory.Exists($"/proc/{pid}")));
            Assert.False(File.Exists(Path.Combine(dataDirectory, "postgres", "data", "postmaster.pid")), "PostgreSQL still runs");
            Assert.Empty(Process.GetProcesses().Where(p => CommandLine(p.Id).Contains(dataDirectory, StringComparison.Ordinal)));
        }
        finally
        {
            if (!launcher.HasExited)
            {
                launcher.Kill(entireProcessTree: true);
            }
            foreach (var process in Process.GetProcesses().Where(p => CommandLine(p.Id).Contains(dataDirectory, StringComparison.Ordinal)))
            {
                process.Kill(entireProcessTree: true);
            }
            Directory.Delete(dataDirectory, recursive: true);
        }
    }

    private static string CommandLine(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');
        }
        catch (IOException)
        {
            return "";
        }
        catch (UnauthorizedAccessException)
        {
            return "";
        }
    }
}
