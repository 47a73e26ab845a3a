using System.Diagnostics;
using System.Globalization;
using System.Text;
using Ferry.Host.Distributed;

namespace Ferry.FunctionalTests.Distributed;

/// <summary>
/// `ferry distributed` (what `./ferry up --distributed` runs) as a child process of the test: it is ready when it prints
/// its ready line, and its openrc files are read back. Without <c>--database</c>/<c>--transport</c> it runs a PostgreSQL and
/// a RabbitMQ of its own under the data directory (which must then be one the postgres user can reach: /tmp, 0755).
/// Disposing sends SIGTERM, as Ctrl-C would, kills whatever outlived the launcher and removes the data directory;
/// a survivor of the SIGTERM is reported as an error.
/// </summary>
public sealed class DistributedFerry : IAsyncDisposable
{
    private static readonly TimeSpan s_readyTimeout = TimeSpan.FromSeconds(240);

    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource<string> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Process _launcher;
    private bool _started;
    private readonly Dictionary<string, (string[] Argv, Dictionary<string, string> Environment)> _killed = [];
    private readonly List<Process> _startedAgain = [];

    private DistributedFerry(string dataDirectory, IEnumerable<string> arguments)
    {
        DataDirectory = dataDirectory;
        var start = new ProcessStartInfo(FerryBinary.Executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in (string[])["distributed", "--data-dir", dataDirectory, .. arguments])
        {
            start.ArgumentList.Add(arg);
        }
        _launcher = new Process { StartInfo = start, EnableRaisingEvents = true };
        _launcher.OutputDataReceived += (_, e) => OnLine(e.Data);
        _launcher.ErrorDataReceived += (_, e) => OnLine(e.Data);
        _launcher.Exited += (_, _) => _ready.TrySetException(new InvalidOperationException($"ferry distributed exited before it was ready:\n{Output}"));
    }

    public string DataDirectory { get; }

    public string ReadyLine => _ready.Task.Result;

    public IReadOnlyList<KeyValuePair<string, string>> AdminEnv { get; private set; } = [];

    public IReadOnlyList<KeyValuePair<string, string>> DemoEnv { get; private set; } = [];

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

    /// <summary>Starts `ferry distributed --data-dir <paramref name="dataDirectory"/> <paramref name="arguments"/>…` and waits until it is ready.</summary>
    public static async Task<DistributedFerry> StartAsync(string dataDirectory, params string[] arguments)
    {
        Directory.CreateDirectory(dataDirectory);
        var ferry = new DistributedFerry(dataDirectory, arguments);
        try
        {
            ferry._started = ferry._launcher.Start();
            ferry._launcher.BeginOutputReadLine();
            ferry._launcher.BeginErrorReadLine();
            await ferry._ready.Task.WaitAsync(s_readyTimeout);
            ferry.AdminEnv = ReadOpenRc(Path.Combine(dataDirectory, "admin-openrc.sh"));
            ferry.DemoEnv = ReadOpenRc(Path.Combine(dataDirectory, "demo-openrc.sh"));
            return ferry;
        }
        catch
        {
            await ferry.DisposeAsync();
            throw;
        }
    }

    /// <summary>One variable of an openrc file (e.g. OS_PASSWORD of the admin's).</summary>
    public static string Variable(IReadOnlyList<KeyValuePair<string, string>> env, string name) => env.Single(v => v.Key == name).Value;

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

    /// <summary>kill -9 of one role process (e.g. compute2, as a host that crashed); <see cref="StartAgainAsync"/> starts it again.</summary>
    public async Task KillAsync(string name)
    {
        var pid = Children()[name];
        var argv = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries);
        var environment = File.ReadAllText($"/proc/{pid}/environ").Split('\0', StringSplitOptions.RemoveEmptyEntries)
            .Select(v => v.Split('=', 2)).Where(v => v.Length == 2).ToDictionary(v => v[0], v => v[1]);
        _killed[name] = (argv, environment);
        using var process = Process.GetProcessById(pid);
        process.Kill();
        await process.WaitForExitAsync();
    }

    /// <summary>Starts a role process <see cref="KillAsync"/> killed, with its command line and environment, and waits until it is ready.</summary>
    public async Task StartAgainAsync(string name)
    {
        var (argv, environment) = _killed[name];
        var start = new ProcessStartInfo(argv[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in argv.Skip(1))
        {
            start.ArgumentList.Add(arg);
        }
        start.Environment.Clear();
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) =>
        {
            OnLine(e.Data);
            if (e.Data?.Contains(" is ready in ", StringComparison.Ordinal) == true)
            {
                ready.TrySetResult();
            }
        };
        process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        process.Exited += (_, _) => ready.TrySetException(new InvalidOperationException($"ferry {name} exited before it was ready:\n{Output}"));
        process.Start();
        _startedAgain.Add(process);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        await ready.Task.WaitAsync(s_readyTimeout);
    }

    /// <summary>The variables of an openrc file; none with <c>--auth noauth2</c>, which writes no openrc files.</summary>
    private static List<KeyValuePair<string, string>> ReadOpenRc(string path) =>
        !File.Exists(path) ? [] : [.. File.ReadAllLines(path)
            .Where(line => line.StartsWith("export ", StringComparison.Ordinal))
            .Select(line => line["export ".Length..].Split('=', 2))
            .Select(parts => KeyValuePair.Create(parts[0], parts[1].Trim('\'')))];

    public async ValueTask DisposeAsync()
    {
        var children = File.Exists(Path.Combine(DataDirectory, "distributed.pids")) ? Children() : new Dictionary<string, int>();
        List<string> survivors = [];
        try
        {
            if (_started && !_launcher.HasExited)
            {
                using (var term = Process.Start("kill", ["-s", "TERM", _launcher.Id.ToString(CultureInfo.InvariantCulture)]))
                {
                    await term.WaitForExitAsync();
                }
                await _launcher.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120));
            }
            // A role started again by the test is not the launcher's: it is stopped here as Ctrl-C would stop it.
            foreach (var process in _startedAgain.Where(p => !p.HasExited))
            {
                using var term = Process.Start("kill", ["-s", "TERM", process.Id.ToString(CultureInfo.InvariantCulture)]);
                await term.WaitForExitAsync();
                await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
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
            foreach (var process in _startedAgain)
            {
                if (!process.HasExited)
                {
                    process.Kill(entireProcessTree: true);
                }
                process.Dispose();
            }
            if (_started && !_launcher.HasExited)
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
