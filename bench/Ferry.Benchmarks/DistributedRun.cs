using System.Diagnostics;
using System.Globalization;
using System.Text;
using Ferry.Host.Distributed;

namespace Ferry.Benchmarks;

/// <summary>
/// One run of `ferry distributed` (what `./ferry up --distributed` runs) as a child process: its output kept, ready when it
/// prints its ready line; stopping sends SIGTERM (Ctrl-C) and kills whatever outlives it. What the data directory holds
/// (PostgreSQL, RabbitMQ, logs) is the caller's.
/// </summary>
internal sealed class DistributedRun : IAsyncDisposable
{
    private const string ReadyPrefix = "Ferry (distributed) is ready";

    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly string _dataDirectory;

    private DistributedRun(Process process, string dataDirectory)
    {
        _process = process;
        _dataDirectory = dataDirectory;
    }

    /// <summary>When the process was started (<see cref="Stopwatch.GetTimestamp"/>).</summary>
    public long Started { get; private init; }

    /// <summary>When its ready line came.</summary>
    public long ReadyAt { get; private set; }

    public string ReadyLine { get; private set; } = "";

    /// <param name="arguments">Everything after the program: <see cref="HostBuild.Command"/>'s prefix, <c>distributed</c>, the flags.</param>
    /// <param name="onLine">Sees every line of output as it comes (e.g. to echo one).</param>
    public static async Task<DistributedRun> StartAsync(string program, IEnumerable<string> arguments, string dataDirectory, TimeSpan readyLimit,
        Action<string>? onLine = null)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in arguments)
        {
            start.ArgumentList.Add(arg);
        }
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var run = new DistributedRun(process, dataDirectory) { Started = Stopwatch.GetTimestamp() };
        var ready = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnLine(string? line)
        {
            if (line is null)
            {
                return;
            }
            lock (run._output)
            {
                run._output.AppendLine(line);
            }
            onLine?.Invoke(line);
            if (line.StartsWith(ReadyPrefix, StringComparison.Ordinal))
            {
                run.ReadyAt = Stopwatch.GetTimestamp();
                ready.TrySetResult(line);
            }
        }
        process.OutputDataReceived += (_, e) => OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        process.Exited += (_, _) => ready.TrySetException(new InvalidOperationException($"ferry distributed exited before it was ready:\n{run.Output}"));
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            run.ReadyLine = await ready.Task.WaitAsync(readyLimit);
            return run;
        }
        catch
        {
            await run.DisposeAsync();
            throw;
        }
    }

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

    /// <summary>The role processes it started (api-1, conductor-2, compute1…) with their pids, from its pid file.</summary>
    public IReadOnlyList<(string Name, int Pid)> Children()
    {
        var pidFile = Path.Combine(_dataDirectory, "distributed.pids");
        return File.Exists(pidFile)
            ? [.. File.ReadAllLines(pidFile).Select(line => line.Split(' ')).Select(parts => (parts[1], int.Parse(parts[0], CultureInfo.InvariantCulture)))]
            : [];
    }

    /// <summary>SIGTERM, as Ctrl-C: the launcher stops every process it started; whatever outlives <paramref name="limit"/> is killed.</summary>
    public async Task StopAsync(TimeSpan limit)
    {
        var children = Children().Select(c => c.Pid).ToList();
        try
        {
            if (!_process.HasExited)
            {
                _ = ProcessSignals.Send(_process.Id, "TERM");
                await _process.WaitForExitAsync().WaitAsync(limit);
            }
        }
        catch (TimeoutException)
        {
            Console.Error.WriteLine($"[bench] warning: ferry distributed did not stop within {limit.TotalSeconds:0} s:\n{Output}");
        }
        finally
        {
            foreach (var pid in children.Where(pid => Directory.Exists($"/proc/{pid}")))
            {
                Process.GetProcessById(pid).Kill(entireProcessTree: true);
            }
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.FromSeconds(180));
        _process.Dispose();
    }
}
