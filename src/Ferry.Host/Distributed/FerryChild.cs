using System.Diagnostics;

namespace Ferry.Host.Distributed;

/// <summary>
/// One `ferry &lt;role&gt;` process of the distributed shape: this same program started again with a role's words, its
/// settings in <c>FERRY_*</c> environment variables, its output read line by line (the last lines kept for errors)
/// until it says it is ready.
/// </summary>
public sealed class FerryChild : IDisposable
{
    private const int KeptLines = 20;

    private readonly Process _process;
    private readonly Queue<string> _lastLines = new();
    private readonly TaskCompletionSource<string> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private FerryChild(string name, Process process)
    {
        Name = name;
        _process = process;
    }

    public string Name { get; }

    public int ProcessId => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>The line the role printed when it was ready (its URLs and log file).</summary>
    public string ReadyLine => _ready.Task.IsCompletedSuccessfully ? _ready.Task.Result : "";

    /// <param name="program">
    /// The <c>ferry</c> executable to run (a native one, say); null: this program again.
    /// </param>
    /// <param name="wrapper">A command that runs the program (<c>ip netns exec NS</c>: it execs, so the pid stays the program's); null: none.</param>
    public static FerryChild Start(string name, IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string> environment, string? program = null,
        IReadOnlyList<string>? wrapper = null)
    {
        var info = new ProcessStartInfo { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        // Under `dotnet ferry.dll` the process is dotnet and the program its first argument (ferry.dll beside this code:
        // Assembly.Location is empty in a native ferry); the apphost or a native ferry runs itself.
        var self = program ?? Environment.ProcessPath ?? throw new InvalidOperationException("no process path");
        if (wrapper is { Count: > 0 })
        {
            info.FileName = wrapper[0];
            foreach (var word in wrapper.Skip(1).Append(self))
            {
                info.ArgumentList.Add(word);
            }
        }
        else
        {
            info.FileName = self;
        }
        if (program is null && Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "ferry.dll"));
        }
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }
        foreach (var (key, value) in environment)
        {
            info.Environment[key] = value;
        }
        if (Environment.GetEnvironmentVariable("FERRY_JIT_METHOD_LIST_DIR") is { Length: > 0 } listDir)
        {
            // tools/method-order: under the JIT, every method a role runs is compiled once at least; listed per role, they
            // order the native ferry's code so that each role's methods lie together (src/Ferry.Host/method-order.txt).
            info.Environment["DOTNET_JitStdOutFile"] = Path.Combine(listDir, $"{name}.{Guid.NewGuid():N}.txt");
            info.Environment["DOTNET_JitDisasmSummary"] = "1";
            info.Environment["DOTNET_ReadyToRun"] = "0";
        }
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var child = new FerryChild(name, process);
        process.OutputDataReceived += (_, e) => child.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => child.OnLine(e.Data);
        process.Exited += (_, _) => child._ready.TrySetException(new FerryStartException($"ferry {name} exited before it was ready: {child.LastLine()}"));
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (_lastLines)
        {
            _lastLines.Enqueue(line);
            if (_lastLines.Count > KeptLines)
            {
                _lastLines.Dequeue();
            }
        }
        if (line.Contains(" is ready in ", StringComparison.Ordinal))
        {
            _ready.TrySetResult(line);
        }
    }

    /// <summary>The last line the process printed that says something (for an error message).</summary>
    public string LastLine()
    {
        lock (_lastLines)
        {
            return _lastLines.LastOrDefault(l => l.StartsWith("ferry", StringComparison.Ordinal)) ?? _lastLines.LastOrDefault() ?? "(no output)";
        }
    }

    public async Task WaitReadyAsync(TimeSpan timeout, CancellationToken ct)
    {
        try
        {
            await _ready.Task.WaitAsync(timeout, ct);
        }
        catch (TimeoutException)
        {
            throw new FerryStartException($"ferry {Name} was not ready within {timeout.TotalSeconds:0} s: {LastLine()}");
        }
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout, CancellationToken ct)
    {
        await _process.WaitForExitAsync(ct).WaitAsync(timeout, ct);
        return _process.ExitCode;
    }

    /// <summary>SIGTERM (the role stops cleanly), then SIGKILL after <paramref name="grace"/>.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (_process.HasExited)
        {
            return;
        }
        _ = ProcessSignals.Send(_process.Id, "TERM");
        try
        {
            await _process.WaitForExitAsync().WaitAsync(grace);
        }
        catch (TimeoutException)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
    }

    /// <summary>kill -9, as a crash would (tests).</summary>
    public void Kill() => _process.Kill(entireProcessTree: false);

    public void Dispose() => _process.Dispose();
}
