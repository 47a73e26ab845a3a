using Ferry.Host.Distributed;

namespace Ferry.Tests.Shared;

/// <summary>
/// A private RabbitMQ node for one test run (<see cref="LocalRabbitMq"/>, the one `ferry distributed` runs): its own
/// node name and ports on 127.0.0.1, every file under a temp dir <c>/tmp/ferry-rabbit-&lt;pid&gt;-&lt;n&gt;</c>.
/// <see cref="StopAsync"/> and <see cref="StartAsync"/> restart it on the same dir and port (a broker restart as
/// clients see it). Dirs a killed earlier run left behind (their owner pid is dead) are cleaned, their node killed,
/// when a new one starts; a watcher process kills the node and removes the dir once the test process is gone, however
/// it ended. epmd is shared and stays.
/// </summary>
public sealed class RabbitMqServer : IAsyncLifetime
{
    private const string DirPrefix = "ferry-rabbit-";
    private static int s_instances;
    private LocalRabbitMq? _node;

    public RabbitMqServer()
    {
        var n = Interlocked.Increment(ref s_instances);
        Directory = Path.Combine(Path.GetTempPath(), $"{DirPrefix}{Environment.ProcessId}-{n}");
        NodeName = $"ferry-test-{Environment.ProcessId}-{n}@localhost";
    }

    public string Directory { get; }
    public string NodeName { get; }
    public int Port => Node.Port;

    /// <summary>The URL a transport connects with (the default guest user, which RabbitMQ lets in from loopback).</summary>
    public string Url => $"amqp://guest:guest@127.0.0.1:{Port}/";

    public static bool IsInstalled => LocalRabbitMq.IsInstalled;

    private LocalRabbitMq Node => _node ?? throw new InvalidOperationException("the broker has not started");

    public async Task InitializeAsync()
    {
        CleanStaleNodes();
        CreateWhole(Directory, new Dictionary<string, string> { ["owner.pid"] = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        // A start or restart on a loaded 2-core machine (a full test run) can take a minute or more; the default bound is 90 s.
        _node = await LocalRabbitMq.StartAsync(Directory, port: 0, NodeName, startTimeout: TimeSpan.FromMinutes(5));
        AppDomain.CurrentDomain.ProcessExit += (_, _) => LocalRabbitMq.KillLeftover(Directory);
        WatchOwner(Directory, Environment.ProcessId);
    }

    /// <summary>
    /// Starts a process, in a session of its own, that waits for <paramref name="owner"/> to end and then kills the node
    /// of <paramref name="directory"/> (only a beam whose command line names the dir) and removes the dir: the run's shared
    /// broker is never disposed, and the exit handler (which only kills the node) does not run in a killed test host.
    /// </summary>
    internal static void WatchOwner(string directory, int owner)
    {
        const string Script = """
            exec </dev/null >/dev/null 2>&1
            tail --pid="$1" -f /dev/null
            beam=$(cat "$2/pid" 2>/dev/null)
            if [ -n "$beam" ] && tr '\0' ' ' < "/proc/$beam/cmdline" | grep -qF -- "$2"; then kill -9 "$beam"; fi
            rm -rf "$2"
            """;
        var start = new System.Diagnostics.ProcessStartInfo("setsid")
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in new[] { "sh", "-c", Script, "ferry-rabbit-watch", owner.ToString(System.Globalization.CultureInfo.InvariantCulture), directory })
        {
            start.ArgumentList.Add(argument);
        }
        using var watcher = System.Diagnostics.Process.Start(start) ?? throw new InvalidOperationException("could not start the RabbitMQ watcher (setsid sh)");
    }

    /// <summary>Starts the node again after <see cref="StopAsync"/> (same dir and port).</summary>
    public Task StartAsync() => Node.StartAgainAsync();

    /// <summary>Stops the node gracefully and waits until it is gone.</summary>
    public Task StopAsync() => Node.StopAsync();

    public Task RestartAsync() => Node.RestartAsync();

    public async Task DisposeAsync()
    {
        if (_node is not null)
        {
            await _node.StopAsync();
        }
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    public string Output() => _node?.Output() ?? "";

    /// <summary>
    /// Creates <paramref name="directory"/> with its <paramref name="files"/> already in it (written aside, then renamed):
    /// a <see cref="CleanStaleNodes"/> running meanwhile, in this test process or another one, never finds it without its
    /// owner.pid, which it takes for a dead run's (it removed a directory between its creation and that file's write).
    /// </summary>
    internal static void CreateWhole(string directory, IReadOnlyDictionary<string, string> files)
    {
        var aside = Path.Combine(Path.GetTempPath(), $"ferry-staging-{Guid.NewGuid():N}");
        System.IO.Directory.CreateDirectory(aside);
        foreach (var (name, text) in files)
        {
            File.WriteAllText(Path.Combine(aside, name), text);
        }
        System.IO.Directory.Move(aside, directory);
    }

    /// <summary>Kills the nodes and deletes the dirs of earlier runs whose test process is dead.</summary>
    internal static void CleanStaleNodes()
    {
        foreach (var dir in System.IO.Directory.GetDirectories(Path.GetTempPath(), DirPrefix + "*"))
        {
            if (LocalRabbitMq.ReadPid(Path.Combine(dir, "owner.pid")) is { } owner && System.IO.Directory.Exists($"/proc/{owner}"))
            {
                continue;
            }
            LocalRabbitMq.KillLeftover(dir);
            try
            {
                System.IO.Directory.Delete(dir, recursive: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
            }
        }
    }
}

/// <summary>Tests that share the run's one RabbitMQ node (started once; tests in the collection run one at a time).</summary>
[CollectionDefinition(Name)]
public sealed class RabbitMqCollection : ICollectionFixture<RabbitMqServer>
{
    public const string Name = "RabbitMQ";
}
