using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Ferry.FunctionalTests.Cli;
using Ferry.Host.Distributed;

namespace Ferry.FunctionalTests.Distributed;

/// <summary>
/// `ferry distributed` as an operator starts it (`./ferry up --distributed`), in a child process: its own PostgreSQL and
/// RabbitMQ under a data directory of its own, two replicas of each control-plane role and two compute hosts, every
/// port 0 read back from its ready line. The real <c>openstack</c> client talks to it with the admin openrc it wrote.
/// Disposing sends SIGTERM, as Ctrl-C would, and checks that everything it started is gone.
/// </summary>
public sealed class DistributedFixture : IAsyncLifetime
{
    private static readonly TimeSpan s_readyTimeout = TimeSpan.FromSeconds(240);
    private static readonly TimeSpan s_callTimeout = TimeSpan.FromSeconds(90);

    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource<string> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Process _launcher = null!;

    /// <summary>Under /tmp with mode 0755: PostgreSQL runs as the postgres user, which must reach its directory.</summary>
    public string DataDirectory { get; } = Path.Combine("/tmp", $"ferry-dist-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}");

    public string? OpenStack { get; } = CliFixture.FindOnPath("openstack");

    public string ReadyLine => _ready.Task.Result;

    public IReadOnlyList<KeyValuePair<string, string>> AdminEnv { get; private set; } = [];

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

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(DataDirectory);
        var start = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "ferry"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
        {
            "distributed", "--data-dir", DataDirectory, "--hosts", "2", "--replicas", "2", "--time-scale", "0",
            "--compute-port", "0", "--placement-port", "0", "--identity-port", "0", "--image-port", "0", "--metrics-port", "0",
        })
        {
            start.ArgumentList.Add(arg);
        }
        _launcher = new Process { StartInfo = start, EnableRaisingEvents = true };
        _launcher.OutputDataReceived += (_, e) => OnLine(e.Data);
        _launcher.ErrorDataReceived += (_, e) => OnLine(e.Data);
        _launcher.Exited += (_, _) => _ready.TrySetException(new InvalidOperationException($"ferry distributed exited before it was ready:\n{Output}"));
        _launcher.Start();
        _launcher.BeginOutputReadLine();
        _launcher.BeginErrorReadLine();
        await _ready.Task.WaitAsync(s_readyTimeout);
        AdminEnv = ReadOpenRc(Path.Combine(DataDirectory, "admin-openrc.sh"));
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (_output)
        {
            _output.AppendLine(line);
        }
        if (line.StartsWith("Ferry (distributed) is ready", StringComparison.Ordinal))
        {
            _ready.TrySetResult(line);
        }
    }

    /// <summary>The role processes the launcher started, by name (api-1, conductor-2, compute1…), from its pid file.</summary>
    public IReadOnlyDictionary<string, int> Children() =>
        File.ReadAllLines(Path.Combine(DataDirectory, "distributed.pids"))
            .Select(line => line.Split(' '))
            .ToDictionary(parts => parts[1], parts => int.Parse(parts[0], CultureInfo.InvariantCulture));

    /// <summary>The <c>/metrics</c> URL of each process without an API (conductor-1, compute2…), from the launcher's metrics line.</summary>
    public IReadOnlyDictionary<string, string> MetricsUrls()
    {
        var line = Output.Split('\n').Single(l => l.StartsWith("Metrics (besides", StringComparison.Ordinal));
        return line[(line.IndexOf(": ", StringComparison.Ordinal) + 2)..].Trim().Split(", ")
            .Select(entry => entry.Split(' '))
            .ToDictionary(parts => parts[0], parts => parts[1]);
    }

    private static List<KeyValuePair<string, string>> ReadOpenRc(string path) =>
        [.. File.ReadAllLines(path)
            .Where(line => line.StartsWith("export ", StringComparison.Ordinal))
            .Select(line => line["export ".Length..].Split('=', 2))
            .Select(parts => KeyValuePair.Create(parts[0], parts[1].Trim('\'')))];

    /// <summary>Runs <c>openstack args…</c> as admin and returns its result.</summary>
    public Task<CliResult> OpenStackAsync(params string[] args)
    {
        CliFixture.RequireTool(OpenStack, "openstack", "python3-openstackclient");
        return CliFixture.RunToolAsync(OpenStack!, AdminEnv, DataDirectory, s_callTimeout, args);
    }

    /// <summary>A command that must succeed, with its <c>-f json</c> output.</summary>
    public async Task<JsonNode> JsonAsync(params string[] args)
    {
        var result = await OpenStackAsync([.. args, "-f", "json"]);
        Assert.True(result.ExitCode == 0, result.ToString());
        return JsonNode.Parse(result.Stdout)!;
    }

    public async Task DisposeAsync()
    {
        var children = File.Exists(Path.Combine(DataDirectory, "distributed.pids")) ? Children() : new Dictionary<string, int>();
        List<string> survivors = [];
        try
        {
            if (!_launcher.HasExited)
            {
                using (var term = Process.Start("kill", ["-s", "TERM", _launcher.Id.ToString(CultureInfo.InvariantCulture)]))
                {
                    await term.WaitForExitAsync();
                }
                await _launcher.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120));
            }
            survivors = [.. children.Where(c => Directory.Exists($"/proc/{c.Value}")).Select(c => c.Key)];
            if (File.Exists(Path.Combine(DataDirectory, "postgres", "data", "postmaster.pid")))
            {
                survivors.Add("postgres");
            }
        }
        finally
        {
            // Whatever outlived the launcher (a failed stop) dies here, so no run leaves servers behind.
            foreach (var pid in children.Values.Where(pid => Directory.Exists($"/proc/{pid}")))
            {
                Process.GetProcessById(pid).Kill(entireProcessTree: true);
            }
            if (!_launcher.HasExited)
            {
                _launcher.Kill(entireProcessTree: true);
            }
            _launcher.Dispose();
            LocalRabbitMq.KillLeftover(Path.Combine(DataDirectory, "rabbitmq"));
            LocalPostgres.StopLeftover(Path.Combine(DataDirectory, "postgres"));
            Directory.Delete(DataDirectory, recursive: true);
        }
        // Ctrl-C (SIGTERM) must stop everything the launcher started: a survivor fails the class.
        if (survivors.Count > 0)
        {
            throw new InvalidOperationException($"still running after ferry distributed stopped: {string.Join(", ", survivors)}\n{Output}");
        }
    }
}
