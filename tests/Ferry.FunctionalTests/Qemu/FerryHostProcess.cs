using System.Diagnostics;
using System.Globalization;
using System.Text;
using Ferry.Tests.Shared;
using Ferry.Virt.Qemu;

namespace Ferry.FunctionalTests.Qemu;

/// <summary>
/// A whole `ferry all-in-one` (the built src/Ferry.Host dll) as a child process in a process group of its own, as a
/// terminal runs `./ferry up`: a signal sent to the group is what Ctrl-C (SIGINT) or a service manager (SIGTERM) sends.
/// </summary>
public sealed class FerryHostProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private FerryHostProcess(Process process)
    {
        _process = process;
    }

    /// <summary>The compute API at the port the child bound, read from its ready line.</summary>
    public string ComputeUrl { get; private set; } = "";

    public int Pid => _process.Id;

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Starts ferry all-in-one with <paramref name="arguments"/> on ports it binds itself (0) and waits until it says it is ready, with which.</summary>
    public static async Task<FerryHostProcess> StartAsync(string dataDirectory, IEnumerable<string> arguments, CancellationToken ct)
    {
        // The child leads a new session and process group (pgid = its pid), like a shell's foreground job, with
        // SIGINT at its default even when this test run inherited it ignored (a background job of a script).
        var psi = new ProcessStartInfo("perl")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (var argument in (string[])["-MPOSIX", "-e", "$SIG{INT} = 'DEFAULT'; POSIX::setsid() or die \"setsid: $!\"; exec { $ARGV[0] } @ARGV or die \"exec: $!\"",
            "dotnet", HostDll(), "all-in-one", "--data-dir", dataDirectory, "--auth", "noauth2",
            "--compute-port", "0", "--placement-port", "0", "--identity-port", "0", "--image-port", "0", "--network-port", "0", "--volume-port", "0"])
        {
            psi.ArgumentList.Add(argument);
        }
        foreach (var argument in arguments)
        {
            psi.ArgumentList.Add(argument);
        }
        var process = Process.Start(psi) ?? throw new InvalidOperationException("cannot start ferry");
        var host = new FerryHostProcess(process);
        process.OutputDataReceived += (_, e) => host.Append(e.Data);
        process.ErrorDataReceived += (_, e) => host.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var started = Stopwatch.StartNew();
        (string ComputeUrl, string, string)? urls;
        while ((urls = FerryReadyLine.Find(host.Output)) is null)
        {
            if (process.HasExited || started.Elapsed > TimeSpan.FromSeconds(60))
            {
                await host.DisposeAsync();
                throw new InvalidOperationException($"ferry did not become ready ({started.Elapsed.TotalSeconds:F0} s, exited: {process.HasExited}): {host.Output}");
            }
            await Task.Delay(100, ct);
        }
        host.ComputeUrl = urls.Value.ComputeUrl;
        return host;
    }

    /// <summary>Sends <paramref name="signal"/> (INT, TERM, KILL) to the child's whole process group and waits for it to exit.</summary>
    public async Task<int> SignalGroupAndWaitAsync(string signal, CancellationToken ct)
    {
        using (var kill = Process.Start(new ProcessStartInfo("kill") { ArgumentList = { "-s", signal, "--", "-" + Pid.ToString(CultureInfo.InvariantCulture) } })!)
        {
            await kill.WaitForExitAsync(ct);
        }
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        await _process.WaitForExitAsync(timeout.Token);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            await SignalGroupAndWaitAsync("KILL", CancellationToken.None);
        }
        _process.Dispose();
    }

    /// <summary>Pids of the live QEMU processes whose command line contains <paramref name="marker"/> (a data directory, a uuid).</summary>
    public static IReadOnlyList<int> QemuProcesses(string marker)
    {
        var pids = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
            {
                continue;
            }
            try
            {
                var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline"));
                if (cmdline.StartsWith("qemu-system", StringComparison.Ordinal) || cmdline.Contains("/qemu-system", StringComparison.Ordinal))
                {
                    if (cmdline.Contains(marker, StringComparison.Ordinal) && QemuProcess.IsAlive(pid, marker))
                    {
                        pids.Add(pid);
                    }
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
        return pids;
    }

    /// <summary>Kills every QEMU whose command line names <paramref name="marker"/>: a failed test must leave none behind.</summary>
    public static void KillQemuProcesses(string marker)
    {
        foreach (var pid in QemuProcesses(marker))
        {
            try
            {
                using var process = Process.GetProcessById(pid);
                process.Kill();
                process.WaitForExit(5000);
            }
            catch (ArgumentException)
            {
            }
            catch (InvalidOperationException)
            {
            }
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (_output)
        {
            _output.AppendLine(line);
        }
    }

    /// <summary>src/Ferry.Host/bin/&lt;configuration&gt;/net10.0/ferry.dll, built with the tests (they reference Ferry.Host).</summary>
    private static string HostDll()
    {
#if DEBUG
        const string configuration = "Debug";
#else
        const string configuration = "Release";
#endif
        var dll = Path.Combine(TestRepository.Root(), "src", "Ferry.Host", "bin", configuration, "net10.0", "ferry.dll");
        return File.Exists(dll) ? dll : throw new InvalidOperationException($"{dll} is missing: build src/Ferry.Host first");
    }
}
