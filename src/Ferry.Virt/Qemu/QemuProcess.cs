using System.Diagnostics;
using System.Text;
using Ferry.Virt.Qemu.Qmp;

namespace Ferry.Virt.Qemu;

/// <summary>
/// One QEMU process and its monitor connection. Either started here (a child process, never
/// <c>-daemonize</c>d, stderr captured) or attached to a process a previous agent left running (by pid
/// file and QMP socket). Disposal kills the process if it still runs.
/// </summary>
public sealed class QemuProcess : IAsyncDisposable
{
    private const int MaxStderrChars = 16 * 1024;
    private static readonly TimeSpan s_pollInterval = TimeSpan.FromMilliseconds(20);

    private readonly Process? _child;
    private readonly StringBuilder _stderr = new();
    private int _disposed;

    private QemuProcess(int pid, Process? child, string uuid)
    {
        Pid = pid;
        _child = child;
        Uuid = uuid;
    }

    public int Pid { get; }

    public string Uuid { get; }

    /// <summary>The monitor; set once the process is up.</summary>
    public QmpClient Qmp { get; private set; } = null!;

    /// <summary>True when this process was found running rather than started here.</summary>
    public bool Attached => _child is null;

    /// <summary>What QEMU wrote to stderr so far (only for processes started here).</summary>
    public string StandardError
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    public bool HasExited => _child is not null ? _child.HasExited : !IsAlive(Pid, Uuid);

    /// <summary>Starts QEMU and waits until its QMP socket answers.</summary>
    public static async Task<QemuProcess> StartAsync(string binary, QemuLaunchSpec spec, TimeSpan startTimeout, CancellationToken cancellationToken)
    {
        var args = QemuCommandLine.Build(spec);
        if (File.Exists(spec.QmpSocketPath))
        {
            File.Delete(spec.QmpSocketPath);
        }
        var psi = new ProcessStartInfo(binary)
        {
            UseShellExecute = false,
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            RedirectStandardInput = true,
        };
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }
        var child = Process.Start(psi) ?? throw new QemuStartException($"Could not start {binary}.");
        var process = new QemuProcess(child.Id, child, spec.Uuid);
        child.ErrorDataReceived += (_, e) => process.AppendStderr(e.Data);
        child.OutputDataReceived += (_, e) => process.AppendStderr(e.Data);
        child.BeginErrorReadLine();
        child.BeginOutputReadLine();
        try
        {
            process.Qmp = await ConnectWhenReadyAsync(spec.QmpSocketPath, startTimeout, () => child.HasExited, cancellationToken)
                ?? throw new QemuStartException(await process.DescribeFailureAsync($"QEMU for {spec.Uuid} exited during start-up", cancellationToken));
            return process;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            await process.DisposeAsync();
            throw new QemuStartException($"QEMU for {spec.Uuid} did not open its monitor within {startTimeout.TotalSeconds:F0} s. {process.StandardError}");
        }
        catch
        {
            await process.DisposeAsync();
            throw;
        }
    }

    /// <summary>Attaches to a QEMU process left running by a previous agent; null if it is not running.</summary>
    public static async Task<QemuProcess?> AttachAsync(string uuid, string pidFilePath, string qmpSocketPath, CancellationToken cancellationToken)
    {
        if (!File.Exists(pidFilePath) || !File.Exists(qmpSocketPath)
            || !int.TryParse((await File.ReadAllTextAsync(pidFilePath, cancellationToken)).Trim(), out var pid)
            || !IsAlive(pid, uuid))
        {
            return null;
        }
        var process = new QemuProcess(pid, null, uuid);
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
            }
            await Task.Delay(s_pollInterval, cts.Token);
        }
    }

    private async Task<string> DescribeFailureAsync(string what, CancellationToken cancellationToken)
    {
        if (_child is not null)
        {
            await _child.WaitForExitAsync(cancellationToken);
            return $"{what} (exit code {_child.ExitCode}): {StandardError.Trim()}";
        }
        return what;
    }

    private void AppendStderr(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (_stderr)
        {
            if (_stderr.Length < MaxStderrChars)
            {
                _stderr.AppendLine(line);
            }
        }
    }
}
