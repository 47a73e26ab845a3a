using System.Diagnostics;
using System.Globalization;
using System.Text;
using Ferry.Core.Errors;
using Ferry.Virt.Qemu.Qmp;

namespace Ferry.Virt.Qemu;

/// <summary>
/// One QEMU process and its monitor connection. Either started here (a child process in a session of its own,
/// never <c>-daemonize</c>d, output appended to <c>qemu.log</c>) or attached to a process a previous agent left running (by pid
/// file and QMP socket). Disposal kills the process if it still runs.
/// </summary>
public sealed class QemuProcess : IAsyncDisposable
{
    /// <summary>How much of QEMU's log a failure quotes: its last lines, within a bound.</summary>
    public const int QuotedLogLines = 10;
    private const int MaxQuotedLogChars = 2048;
    private static readonly TimeSpan s_pollInterval = TimeSpan.FromMilliseconds(20);

    private readonly Process? _child;
    private readonly string? _logPath;
    private readonly long _logStart;
    private int _disposed;

    private QemuProcess(int pid, Process? child, string uuid, string? logPath, long logStart)
    {
        Pid = pid;
        _child = child;
        Uuid = uuid;
        _logPath = logPath;
        _logStart = logStart;
    }

    public int Pid { get; }

    public string Uuid { get; }

    /// <summary>The monitor; set once the process is up.</summary>
    public QmpClient Qmp { get; private set; } = null!;

    /// <summary>True when this process was found running rather than started here.</summary>
    public bool Attached => _child is null;

    /// <summary>The last lines QEMU wrote to stdout and stderr since this process started (its log file's tail).</summary>
    public IReadOnlyList<string> LastOutput => ReadLogTail(_logPath, _logStart);

    public bool HasExited => _child is not null ? _child.HasExited : !IsAlive(Pid, Uuid);

    /// <summary>
    /// Starts QEMU in a session of its own and waits until its QMP socket answers. Its own session keeps it out of
    /// the agent's process group, so a terminal's Ctrl-C or a SIGTERM to the group stops the agent and not its
    /// guests (as libvirt's guests outlive nova-compute). QEMU's stdout and stderr are appended to
    /// <see cref="QemuLaunchSpec.LogPath"/> rather than piped to the agent: a pipe would break when the agent stops.
    /// </summary>
    public static async Task<QemuProcess> StartAsync(string binary, QemuLaunchSpec spec, TimeSpan startTimeout, CancellationToken cancellationToken)
    {
        var args = QemuCommandLine.Build(spec);
        if (File.Exists(spec.QmpSocketPath))
        {
            File.Delete(spec.QmpSocketPath);
        }
        long logStart = 0;
        if (spec.LogPath is { } log)
        {
            await File.AppendAllTextAsync(log, string.Create(CultureInfo.InvariantCulture,
                $"--- {DateTime.UtcNow:yyyy-MM-dd HH:mm:ss.fff}Z starting QEMU{(spec.IncomingUri is null ? "" : " for an incoming migration")}{Environment.NewLine}"), cancellationToken);
            logStart = new FileInfo(log).Length;
        }
        // sh is never a process group leader, so setsid(1) calls setsid() and execs QEMU in place: the pid stays the child's.
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        // ip netns exec also execs (after setns): still the same pid.
        psi.ArgumentList.Add(spec.NetworkNamespace is null
            ? "exec setsid \"$0\" \"$@\" </dev/null >>\"$FERRY_QEMU_LOG\" 2>&1"
            : "exec setsid ip netns exec \"$FERRY_QEMU_NETNS\" \"$0\" \"$@\" </dev/null >>\"$FERRY_QEMU_LOG\" 2>&1");
        if (spec.NetworkNamespace is { } netns)
        {
            psi.Environment["FERRY_QEMU_NETNS"] = netns;
        }
        psi.ArgumentList.Add(binary);
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }
        psi.Environment["FERRY_QEMU_LOG"] = spec.LogPath ?? "/dev/null";
        Process child;
        try
        {
            child = Process.Start(psi) ?? throw new QemuStartException($"Could not start {binary}.");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new QemuStartException($"Could not start {binary}: {ex.Message}");
        }
        var process = new QemuProcess(child.Id, child, spec.Uuid, spec.LogPath, logStart);
        try
        {
            process.Qmp = await ConnectWhenReadyAsync(spec.QmpSocketPath, startTimeout, () => child.HasExited, cancellationToken)
                ?? throw await process.DescribeFailureAsync($"QEMU for {spec.Uuid} exited during start-up", cancellationToken);
            return process;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            await process.DisposeAsync();
            throw process.Failure($"QEMU for {spec.Uuid} did not open its monitor within {startTimeout.TotalSeconds:F0} s");
        }
        catch
        {
            await process.DisposeAsync();
            throw;
        }
    }

    /// <summary>Attaches to a QEMU process left running by a previous agent; null if it is not running.</summary>
    public static async Task<QemuProcess?> AttachAsync(string uuid, string pidFilePath, string qmpSocketPath, CancellationToken cancellationToken, string? logPath = null)
    {
        if (!File.Exists(pidFilePath) || !File.Exists(qmpSocketPath)
            || !int.TryParse((await File.ReadAllTextAsync(pidFilePath, cancellationToken)).Trim(), out var pid)
            || !IsAlive(pid, uuid))
        {
            return null;
        }
        var process = new QemuProcess(pid, null, uuid, logPath, logPath is not null && File.Exists(logPath) ? new FileInfo(logPath).Length : 0);
        try
        {
            process.Qmp = await QmpClient.ConnectAsync(qmpSocketPath, cancellationToken);
            return process;
        }
        catch (Exception ex) when (ex is QmpException or System.Net.Sockets.SocketException or IOException)
        {
            return null; // the socket is stale, or another client holds the monitor
        }
    }

    /// <summary>Asks QEMU to quit, then kills it if it has not exited within <paramref name="grace"/>.</summary>
    public async Task StopAsync(TimeSpan grace, CancellationToken cancellationToken)
    {
        if (!HasExited)
        {
            try
            {
                using var quitTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                quitTimeout.CancelAfter(grace);
                await Qmp.ExecuteAsync("quit", null, quitTimeout.Token);
            }
            catch (Exception ex) when (ex is QmpException or OperationCanceledException or ObjectDisposedException)
            {
                cancellationToken.ThrowIfCancellationRequested();
            }
            if (!await WaitForExitAsync(grace, cancellationToken))
            {
                Kill();
                await WaitForExitAsync(TimeSpan.FromSeconds(5), cancellationToken);
            }
        }
        await Qmp.DisposeAsync();
    }

    /// <summary>Waits for the process to end; false on timeout.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (_child is not null)
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            cts.CancelAfter(timeout);
            try
            {
                await _child.WaitForExitAsync(cts.Token);
                return true;
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                return false;
            }
        }
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (IsAlive(Pid, Uuid))
        {
            if (Stopwatch.GetTimestamp() > deadline)
            {
                return false;
            }
            await Task.Delay(s_pollInterval, cancellationToken);
        }
        return true;
    }

    private void Kill()
    {
        try
        {
            if (_child is not null)
            {
                _child.Kill(entireProcessTree: true);
            }
            else if (IsAlive(Pid, Uuid))
            {
                using var p = Process.GetProcessById(Pid);
                p.Kill();
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or System.ComponentModel.Win32Exception)
        {
            // already gone
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        if (!HasExited)
        {
            Kill();
            await WaitForExitAsync(TimeSpan.FromSeconds(5), CancellationToken.None);
        }
        if (Qmp is not null)
        {
            await Qmp.DisposeAsync();
        }
        _child?.Dispose();
    }

    /// <summary>True when <paramref name="pid"/> is a live (non-zombie) process whose command line names the guest.</summary>
    public static bool IsAlive(int pid, string uuid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var afterName = stat.LastIndexOf(')');
            if (afterName < 0 || afterName + 2 >= stat.Length || stat[afterName + 2] is 'Z' or 'X')
            {
                return false;
            }
            var cmdline = File.ReadAllText($"/proc/{pid}/cmdline");
            return cmdline.Contains(uuid, StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static async Task<QmpClient?> ConnectWhenReadyAsync(string socketPath, TimeSpan timeout, Func<bool> exited, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        while (true)
        {
            if (exited())
            {
                return null;
            }
            if (File.Exists(socketPath))
            {
                try
                {
                    return await QmpClient.ConnectAsync(socketPath, cts.Token);
                }
                catch (System.Net.Sockets.SocketException)
                {
                    // not listening yet
                }
                catch (Exception ex) when (ex is IOException or QmpException && !cancellationToken.IsCancellationRequested)
                {
                    // QEMU listens before it checks the rest of its command line, then exits: the loop reports that.
                }
            }
            await Task.Delay(s_pollInterval, cts.Token);
        }
    }

    private async Task<QemuStartException> DescribeFailureAsync(string what, CancellationToken cancellationToken)
    {
        if (_child is not null)
        {
            await _child.WaitForExitAsync(cancellationToken);
            return Failure(string.Create(CultureInfo.InvariantCulture, $"{what} (exit code {_child.ExitCode})"));
        }
        return Failure(what);
    }

    /// <summary>
    /// A start failure an operator can act on: the message ends with QEMU's last line (usually its error), the
    /// details quote its last lines and name the log file.
    /// </summary>
    public QemuStartException Failure(string what)
    {
        var tail = ReadLogTail(_logPath, _logStart);
        return new QemuStartException(tail.Count == 0 ? what + "." : $"{what}: {tail[^1]}")
        {
            Details = tail.Count == 0 ? null : $"Last lines of {_logPath}:\n{string.Join('\n', tail)}",
        };
    }

    /// <summary>
    /// QEMU ended on its own (killed, crashed, or gave up on an incoming migration): the message ends with its last line
    /// and its exit code, the details quote its last lines and name the log file.
    /// </summary>
    public FerryException Died(string what)
    {
        var tail = ReadLogTail(_logPath, _logStart);
        var code = _child is { HasExited: true } child ? string.Create(CultureInfo.InvariantCulture, $" (exit code {child.ExitCode})") : "";
        return new FerryException(tail.Count == 0 ? $"{what}{code}." : $"{what}{code}: {tail[^1]}")
        {
            Details = tail.Count == 0 ? $"{_logPath} holds nothing from this QEMU." : $"Last lines of {_logPath}:\n{string.Join('\n', tail)}",
        };
    }

    /// <summary>The last <see cref="QuotedLogLines"/> non-empty lines of the log from <paramref name="start"/> on, bounded in size.</summary>
    public static IReadOnlyList<string> ReadLogTail(string? logPath, long start)
    {
        if (logPath is null)
        {
            return [];
        }
        try
        {
            using var stream = new FileStream(logPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var from = Math.Max(start, stream.Length - MaxQuotedLogChars);
            if (from >= stream.Length)
            {
                return [];
            }
            stream.Seek(from, SeekOrigin.Begin);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            return [.. reader.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Where(l => !l.StartsWith("--- ", StringComparison.Ordinal)).TakeLast(QuotedLogLines)];
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}
