using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace Ferry.Tests.Shared;

/// <summary>
/// A private RabbitMQ node for one test run: its own node name, ports on 127.0.0.1, and every file (database, logs,
/// config, Erlang cookie) under a temp dir <c>/tmp/ferry-rabbit-&lt;pid&gt;-&lt;n&gt;</c>. <see cref="RestartAsync"/>
/// stops and starts it on the same dir and port (a broker restart as clients see it). Dirs a killed earlier run left
/// behind (their owner pid is dead) are cleaned, their node killed, when a new one starts. epmd is shared and stays.
/// </summary>
public sealed class RabbitMqServer : IAsyncLifetime
{
    private const string ServerScript = "/usr/lib/rabbitmq/bin/rabbitmq-server";
    private const string DirPrefix = "ferry-rabbit-";
    private static int s_instances;

    private readonly StringBuilder _output = new();
    private Process? _process;

    public RabbitMqServer()
    {
        var n = Interlocked.Increment(ref s_instances);
        Directory = Path.Combine(Path.GetTempPath(), $"{DirPrefix}{Environment.ProcessId}-{n}");
        NodeName = $"ferry-test-{Environment.ProcessId}-{n}@localhost";
    }

    public string Directory { get; }
    public string NodeName { get; }
    public int Port { get; private set; }
    public int DistPort { get; private set; }

    /// <summary>The URL a transport connects with (the default guest user, which RabbitMQ lets in from loopback).</summary>
    public string Url => $"amqp://guest:guest@127.0.0.1:{Port}/";

    public static bool IsInstalled => File.Exists(ServerScript);

    public async Task InitializeAsync()
    {
        CleanStaleNodes();
        System.IO.Directory.CreateDirectory(Path.Combine(Directory, "mnesia"));
        System.IO.Directory.CreateDirectory(Path.Combine(Directory, "log"));
        await File.WriteAllTextAsync(Path.Combine(Directory, "owner.pid"), Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await File.WriteAllTextAsync(Path.Combine(Directory, "enabled_plugins"), "[].\n");
        await File.WriteAllTextAsync(Path.Combine(Directory, "rabbitmq.conf"), "");
        Port = FreePort();
        DistPort = FreePort();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Kill();
        await StartAsync();
    }

    public async Task StartAsync()
    {
        var start = new ProcessStartInfo(ServerScript)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var env = start.Environment;
        env["HOME"] = Directory;
        env["RABBITMQ_NODENAME"] = NodeName;
        env["RABBITMQ_NODE_IP_ADDRESS"] = "127.0.0.1";
        env["RABBITMQ_NODE_PORT"] = Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        env["RABBITMQ_DIST_PORT"] = DistPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
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

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        while (!await AcceptsAsync())
        {
            if (process.HasExited || timeout.IsCancellationRequested)
            {
                Kill();
                throw new InvalidOperationException($"RabbitMQ node {NodeName} did not accept AMQP on 127.0.0.1:{Port} (exited: {process.HasExited}):\n{Output()}");
            }
            await Task.Delay(100);
        }
    }

    /// <summary>Stops the node gracefully (SIGTERM to the Erlang VM, as <c>rabbitmqctl stop</c> does) and waits until it is gone.</summary>
    public async Task StopAsync()
    {
        if (_process is not { } process)
        {
            return;
        }
        if (BeamPid() is { } beam)
        {
            _ = kill(beam, SigTerm);
        }
        else if (!process.HasExited)
        {
            _ = kill(process.Id, SigTerm);
        }
        try
        {
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (TimeoutException)
        {
            Kill();
        }
        _process = null;
        process.Dispose();
    }

    public async Task RestartAsync()
    {
        await StopAsync();
        await StartAsync();
    }

    public async Task DisposeAsync()
    {
        await StopAsync();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    public string Output()
    {
        lock (_output)
        {
            return _output.ToString();
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

    private async Task<bool> AcceptsAsync()
    {
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync(IPAddress.Loopback, Port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private int? BeamPid() => ReadPid(Path.Combine(Directory, "pid"));

    private void Kill()
    {
        if (BeamPid() is { } beam)
        {
            _ = kill(beam, SigKill);
        }
        if (_process is { HasExited: false } process)
        {
            _ = kill(process.Id, SigKill);
        }
    }

    /// <summary>Kills the nodes and deletes the dirs of earlier runs whose test process is dead.</summary>
    internal static void CleanStaleNodes()
    {
        foreach (var dir in System.IO.Directory.GetDirectories(Path.GetTempPath(), DirPrefix + "*"))
        {
            if (ReadPid(Path.Combine(dir, "owner.pid")) is { } owner && IsAlive(owner))
            {
                continue;
            }
            // Only a beam whose command line names this dir is ours to kill: a pid may have been reused.
            if (ReadPid(Path.Combine(dir, "pid")) is { } beam && IsAlive(beam) && CommandLine(beam).Contains(dir, StringComparison.Ordinal))
            {
                _ = kill(beam, SigKill);
            }
            try
            {
                System.IO.Directory.Delete(dir, recursive: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
            }
        }
    }

    private static int? ReadPid(string file)
    {
        try
        {
            return int.TryParse(File.ReadAllText(file).Trim(), out var pid) ? pid : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static bool IsAlive(int pid) => System.IO.Directory.Exists($"/proc/{pid}");

    private static string CommandLine(int pid)
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

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private const int SigKill = 9;
    private const int SigTerm = 15;

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);
}

/// <summary>Tests that share the run's one RabbitMQ node (started once; tests in the collection run one at a time).</summary>
[CollectionDefinition(Name)]
public sealed class RabbitMqCollection : ICollectionFixture<RabbitMqServer>
{
    public const string Name = "RabbitMQ";
}
