using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Ferry.Host.Distributed;

/// <summary>
/// A RabbitMQ node (Debian's <c>rabbitmq-server</c>) that Ferry runs for itself in one directory: its own node name,
/// AMQP and distribution ports on 127.0.0.1, and its database, logs, config and Erlang cookie under the directory.
/// <see cref="RestartAsync"/> stops and starts it on the same directory and port (a broker restart as clients see
/// it). A node a killed earlier run left running in the directory is killed first. epmd is shared and stays.
/// </summary>
public sealed class LocalRabbitMq : IAsyncDisposable
{
    public const string ServerScript = "/usr/lib/rabbitmq/bin/rabbitmq-server";
    private const string SigKill = "KILL";
    private const string SigTerm = "TERM";

    private readonly StringBuilder _output = new();
    private Process? _process;

    private LocalRabbitMq(string directory, string nodeName, int port, int distributionPort, string address)
    {
        Address = address;
        Directory = directory;
        NodeName = nodeName;
        Port = port;
        DistributionPort = distributionPort;
    }

    public string Directory { get; }

    /// <summary>The address AMQP listens on: 127.0.0.1, or a lab's controller address that its hosts' agents reach.</summary>
    public string Address { get; }

    public string NodeName { get; }

    public int Port { get; }

    public int DistributionPort { get; }

    /// <summary>The transport URL of this node (RabbitMQ lets its default guest user in from loopback).</summary>
    public string Url => $"rabbitmq://guest:guest@{Address}:{Port}/";

    public static bool IsInstalled => File.Exists(ServerScript);

    /// <summary>How long a start waits for the node to accept AMQP (tests on a loaded machine allow more).</summary>
    public TimeSpan StartTimeout { get; set; } = TimeSpan.FromSeconds(90);

    /// <summary>Starts the node of <paramref name="directory"/> on <paramref name="port"/> (0: a free one) and waits until it accepts AMQP.</summary>
    /// <exception cref="FerryStartException">RabbitMQ is missing or would not start (its last output quoted).</exception>
    /// <param name="address">Where AMQP listens (default loopback); elsewhere the guest user is let in from other addresses too.</param>
    public static async Task<LocalRabbitMq> StartAsync(string directory, int port, string? nodeName = null, TimeSpan? startTimeout = null, string address = "127.0.0.1")
    {
        if (!IsInstalled)
        {
            throw new FerryStartException($"RabbitMQ is not installed ({ServerScript} is missing): install the Debian package rabbitmq-server");
        }
        directory = Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(Path.Combine(directory, "mnesia"));
        System.IO.Directory.CreateDirectory(Path.Combine(directory, "log"));
        KillLeftover(directory);
        await File.WriteAllTextAsync(Path.Combine(directory, "enabled_plugins"), "[].\n");
        // RabbitMQ closes a connection whose AMQP handshake is not over 10 s after its accept. A client process loaded
        // enough to take longer (a test run on a busy 2-core machine) had each reconnection closed that way and started
        // over, never getting through while the load lasted: a slow handshake gets a minute here to finish.
        var config = "handshake_timeout = 60000\n";
        // RabbitMQ lets its guest user in from loopback only; a lab's agents come from their namespaces' addresses.
        if (address != "127.0.0.1")
        {
            config += "loopback_users = none\n";
        }
        await File.WriteAllTextAsync(Path.Combine(directory, "rabbitmq.conf"), config);
        // The node name stays with the directory: RabbitMQ keeps its database per node name.
        var nameFile = Path.Combine(directory, "node-name");
        nodeName ??= File.Exists(nameFile) ? (await File.ReadAllTextAsync(nameFile)).Trim() : $"ferry-{Guid.NewGuid().ToString("N")[..8]}@localhost";
        await File.WriteAllTextAsync(nameFile, nodeName);
        var node = new LocalRabbitMq(directory, nodeName, port == 0 ? LocalPostgres.FreePort() : port, LocalPostgres.FreePort(), address);
        if (startTimeout is { } timeout)
        {
            node.StartTimeout = timeout;
        }
        await node.StartNodeAsync();
        return node;
    }

    private async Task StartNodeAsync()
    {
        var start = new ProcessStartInfo(ServerScript) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        var env = start.Environment;
        env["HOME"] = Directory;
        env["RABBITMQ_NODENAME"] = NodeName;
        env["RABBITMQ_NODE_IP_ADDRESS"] = Address;
        env["RABBITMQ_NODE_PORT"] = Port.ToString(CultureInfo.InvariantCulture);
        env["RABBITMQ_DIST_PORT"] = DistributionPort.ToString(CultureInfo.InvariantCulture);
        env["RABBITMQ_MNESIA_BASE"] = Path.Combine(Directory, "mnesia");
        env["RABBITMQ_LOG_BASE"] = Path.Combine(Directory, "log");
        env["RABBITMQ_ENABLED_PLUGINS_FILE"] = Path.Combine(Directory, "enabled_plugins");
        env["RABBITMQ_CONFIG_FILE"] = Path.Combine(Directory, "rabbitmq");
        env["RABBITMQ_PID_FILE"] = Path.Combine(Directory, "pid");
        File.Delete(Path.Combine(Directory, "pid"));
        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;

        var deadline = Stopwatch.StartNew();
        while (!await AcceptsAsync())
        {
            if (process.HasExited || deadline.Elapsed > StartTimeout)
            {
                Kill();
                var last = Output().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).TakeLast(3);
                throw new FerryStartException($"RabbitMQ node {NodeName} did not accept AMQP on {Address}:{Port}: {string.Join(" | ", last)}");
            }
            await Task.Delay(100);
        }
    }

    /// <summary>Stops the node (SIGTERM to the Erlang VM, as <c>rabbitmqctl stop</c> does) and waits until it is gone.</summary>
    public async Task StopAsync()
    {
        if (_process is not { } process)
        {
            return;
        }
        if (ReadPid(Path.Combine(Directory, "pid")) is { } beam)
        {
            _ = ProcessSignals.Send(beam, SigTerm);
        }
        else if (!process.HasExited)
        {
            _ = ProcessSignals.Send(process.Id, SigTerm);
        }
        try
        {
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (TimeoutException)
        {
            Kill();
            // The next start reuses the node name and ports: only once this node is gone.
            await WaitGoneAsync(ReadPid(Path.Combine(Directory, "pid")));
        }
        _process = null;
        process.Dispose();
    }

    private static async Task WaitGoneAsync(int? pid)
    {
        for (var i = 0; pid is { } beam && i < 200 && System.IO.Directory.Exists($"/proc/{beam}"); i++)
        {
            await Task.Delay(50);
        }
    }

    public async Task RestartAsync()
    {
        await StopAsync();
        await StartNodeAsync();
    }

    /// <summary>Starts the node again after <see cref="StopAsync"/>, on the same directory and ports.</summary>
    public Task StartAgainAsync() => _process is null ? StartNodeAsync() : Task.CompletedTask;

    public ValueTask DisposeAsync() => new(StopAsync());

    /// <summary>What the node printed (for a test's failure message).</summary>
    public string Output()
    {
        lock (_output)
        {
            return _output.ToString();
        }
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.AppendLine(line);
            }
        }
    }

    /// <summary>
    /// Whether the node speaks AMQP: it answers the protocol header with its <c>connection.start</c> (a method frame). An
    /// open port is not enough: in a full test run on 2 cores, a node found accepting that way ended every connection before
    /// its <c>connection.start</c> for the next 12 s ("connection.start was never received").
    /// </summary>
    private async Task<bool> AcceptsAsync()
    {
        const byte MethodFrame = 1;
        using var client = new TcpClient();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await client.ConnectAsync(IPAddress.Parse(Address), Port, timeout.Token);
            var stream = client.GetStream();
            await stream.WriteAsync("AMQP\0\0\x09\x01"u8.ToArray(), timeout.Token);
            var frameType = new byte[1];
            return await stream.ReadAsync(frameType, timeout.Token) == 1 && frameType[0] == MethodFrame;
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException)
        {
            return false;
        }
    }

    private void Kill()
    {
        if (ReadPid(Path.Combine(Directory, "pid")) is { } beam)
        {
            _ = ProcessSignals.Send(beam, SigKill);
        }
        if (_process is { HasExited: false } process)
        {
            _ = ProcessSignals.Send(process.Id, SigKill);
        }
    }

    /// <summary>Kills the node a killed run left in <paramref name="directory"/>: only a beam whose command line names the directory (pids are reused).</summary>
    public static void KillLeftover(string directory)
    {
        if (ReadPid(Path.Combine(directory, "pid")) is { } beam && System.IO.Directory.Exists($"/proc/{beam}") && CommandLine(beam).Contains(directory, StringComparison.Ordinal))
        {
            _ = ProcessSignals.Send(beam, SigKill);
            for (var i = 0; i < 100 && System.IO.Directory.Exists($"/proc/{beam}"); i++)
            {
                Thread.Sleep(50);
            }
        }
    }

    internal static int? ReadPid(string file)
    {
        try
        {
            return int.TryParse(File.ReadAllText(file).Trim(), CultureInfo.InvariantCulture, out var pid) ? pid : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    internal static string CommandLine(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return "";
        }
    }
}
