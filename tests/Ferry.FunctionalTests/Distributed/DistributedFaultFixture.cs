using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Ferry.Host.Distributed;

namespace Ferry.FunctionalTests.Distributed;

/// <summary>
/// The distributed shape for fault tests, launched in the test process through <see cref="DistributedLauncher"/> so a
/// test can stop and start PostgreSQL and RabbitMQ, kill -9 one role process and start it again: PostgreSQL, RabbitMQ,
/// two api replicas sharing their ports, two conductors, two schedulers and three `ferry compute` processes (fake
/// driver at real time, so a big guest's live migration lasts seconds), noauth2. Besides the launcher's replicas, two
/// more api processes (<c>api-a</c>, <c>api-b</c>) each serve the compute API on a port of its own, so a test can
/// send a request to one replica in particular. Every compute process carries <c>FERRY_FAKE_CRASH_AT</c> armed by a
/// file (<see cref="ArmCrash"/>), so a test can have one die at a step of a move.
/// </summary>
public class DistributedFaultFixture : IAsyncLifetime
{
    public const int Hosts = 3;

    private readonly int _hostsPerCompute;
    private readonly IReadOnlyDictionary<string, string> _settings;

    public DistributedFaultFixture()
        : this(Hosts, hostsPerCompute: 1, new Dictionary<string, string>())
    {
    }

    /// <summary>Another size of the same shape: <paramref name="settings"/> (FERRY_… variables) go to every process, after the fixture's own.</summary>
    protected DistributedFaultFixture(int hosts, int hostsPerCompute, IReadOnlyDictionary<string, string> settings)
    {
        HostCount = hosts;
        _hostsPerCompute = hostsPerCompute;
        _settings = settings;
    }

    /// <summary>Compute hosts compute1..computeN (<see cref="Hosts"/> for the fault tests).</summary>
    public int HostCount { get; }

    private readonly StringWriter _launcherOutput = new();
    private readonly Dictionary<string, FerryChild> _apis = [];
    private readonly Dictionary<string, string> _apiUrls = [];
    private readonly List<int> _apiPids = [];
    private DistributedLauncher? _launcher;
    private Dictionary<string, string> _environment = [];

    /// <summary>Under /tmp with mode 0755: PostgreSQL runs as the postgres user, which must reach its directory.</summary>
    public string DataDirectory { get; } = Path.Combine("/tmp", $"ferry-dist-faults-{System.Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}");

    public DistributedLauncher Launcher => _launcher ?? throw new InvalidOperationException("not started");

    /// <summary>The file whose presence arms the compute processes' crash point (<see cref="ArmCrash"/>).</summary>
    public string CrashArmedFile => Path.Combine(DataDirectory, "crash-armed");

    /// <summary>The file that holds a fake driver step while it names it (<see cref="Hold"/>).</summary>
    public string HoldFile => Path.Combine(DataDirectory, "hold");

    /// <summary>The compute API behind the shared port (either launcher replica).</summary>
    public NovaClient Admin { get; private set; } = null!;

    /// <summary>The placement API behind the shared port.</summary>
    public HttpClient Placement { get; private set; } = null!;

    /// <summary>The compute API of one replica only: <c>api-a</c> or <c>api-b</c>.</summary>
    public NovaClient AdminOf(string api) => new(_apiUrls[api], "admin:admin");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(DataDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        var given = new Dictionary<string, string>
        {
            ["FERRY_AUTH"] = "noauth2",
            ["FERRY_TIMESCALE"] = "1",
            // Empty: the armed file names the crash point, so one set of processes serves every test.
            ["FERRY_FAKE_CRASH_AT"] = "",
            ["FERRY_FAKE_CRASH_ARMED"] = CrashArmedFile,
            ["FERRY_FAKE_HOLD"] = HoldFile,
        };
        foreach (var (name, value) in _settings)
        {
            given[name] = value;
        }
        var plan = new DistributedPlan(DataDirectory, HostCount, Replicas: 2, PostgresPort: 0, RabbitMqPort: 0, 0, 0, 0, 0, 0, 0, UsesKeystone: false, given)
        {
            Program = FerryBinary.Given,
            HostsPerCompute = _hostsPerCompute,
        };
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(240));
        _launcher = await DistributedLauncher.StartAsync(plan, TextWriter.Synchronized(_launcherOutput), timeout.Token);
        _environment = new Dictionary<string, string>(given)
        {
            ["FERRY_DATADIR"] = DataDirectory,
            ["FERRY_DATABASE"] = _launcher.Postgres.ConnectionString,
            ["FERRY_TRANSPORT"] = _launcher.RabbitMq.Url,
        };
        Admin = new NovaClient(_launcher.ComputeApiUrl[..^"/v2.1".Length], "admin:admin");
        Placement = new HttpClient { BaseAddress = new Uri(_launcher.PlacementUrl + "/"), Timeout = TimeSpan.FromSeconds(30) };
        Placement.DefaultRequestHeaders.Add("X-Auth-Token", "admin:admin");
        Placement.DefaultRequestHeaders.Add("OpenStack-API-Version", "placement 1.39");
        Placement.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        await Task.WhenAll(StartApiAsync("api-a", timeout.Token), StartApiAsync("api-b", timeout.Token));
        // Admin may boot past the default quotas (10 instances, 20 cores).
        var project = "admin";
        var (status, body) = await Admin.SendAsync(HttpMethod.Put, $"os-quota-sets/{project}",
            JsonNode.Parse("""{"quota_set": {"instances": -1, "cores": -1, "ram": -1}}"""));
        Assert.True(status == HttpStatusCode.OK, $"quota: {(int)status} {body?.ToJsonString()}");
    }

    /// <summary>An api process of its own (not sharing the launcher's ports): only the compute API, on a free port.</summary>
    private async Task StartApiAsync(string name, CancellationToken ct)
    {
        var child = FerryChild.Start(name,
            ["api", "--apis", "compute", "--compute-port", "0", "--placement-port", "0", "--image-port", "0", "--network-port", "0", "--volume-port", "0", "--identity-port", "0", "--log-name", name],
            _environment, FerryBinary.Given);
        lock (_apis)
        {
            _apis[name] = child;
            _apiPids.Add(child.ProcessId);
        }
        await child.WaitReadyAsync(TimeSpan.FromSeconds(120), ct);
        var url = Regex.Match(child.ReadyLine, @"compute API (http://\S+?)/v2\.1").Groups[1].Value;
        lock (_apis)
        {
            _apiUrls[name] = url;
        }
    }

    /// <summary>The pid of a role process: one of the launcher's (api-1, conductor-2, compute1…) or api-a / api-b.</summary>
    public FerryChild Child(string name)
    {
        lock (_apis)
        {
            if (_apis.TryGetValue(name, out var api))
            {
                return api;
            }
        }
        return Launcher.Children.Last(c => c.Name == name);
    }

    /// <summary>kill -9 of one role process; returns once it is gone.</summary>
    public async Task KillAsync(string name)
    {
        var child = Child(name);
        child.Kill();
        for (var i = 0; i < 200 && !child.HasExited; i++)
        {
            await Task.Delay(25);
        }
        Assert.True(child.HasExited, $"{name} still runs after SIGKILL");
    }

    /// <summary>Sends <paramref name="signal"/> (STOP, CONT…) to one role process.</summary>
    public async Task SignalAsync(string name, string signal)
    {
        using var kill = System.Diagnostics.Process.Start("kill", ["-s", signal, Child(name).ProcessId.ToString(CultureInfo.InvariantCulture)]);
        await kill.WaitForExitAsync();
        Assert.Equal(0, kill.ExitCode);
    }

    /// <summary>Starts a role process again after it died (the launcher's, or api-a / api-b).</summary>
    public async Task RestartAsync(string name)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        if (name is "api-a" or "api-b")
        {
            var old = Child(name);
            Assert.True(old.HasExited, $"{name} still runs");
            old.Dispose();
            await StartApiAsync(name, timeout.Token);
            return;
        }
        await Launcher.RestartAsync(name, timeout.Token);
    }

    /// <summary>
    /// Makes the compute processes started from now on die (SIGKILL) at <paramref name="point"/> (a fake step, or
    /// step:after) once <see cref="CrashArmedFile"/> exists: the crash point is read at a process's start.
    /// </summary>
    public void ArmCrash(string point)
    {
        File.WriteAllText(CrashArmedFile, point);
    }

    public void DisarmCrash() => File.Delete(CrashArmedFile);

    /// <summary>Makes the compute process that reaches fake step <paramref name="step"/> wait there until <see cref="Release"/>.</summary>
    public void Hold(string step)
    {
        File.Delete(HoldFile + ".reached");
        File.WriteAllText(HoldFile, step);
    }

    /// <summary>Waits until a compute process reached the held step.</summary>
    public async Task WaitHeldAsync()
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!File.Exists(HoldFile + ".reached"))
        {
            Assert.True(DateTime.UtcNow < deadline, $"no compute process reached the held step {File.ReadAllText(HoldFile)}");
            await Task.Delay(20);
        }
    }

    public void Release() => File.Delete(HoldFile);

    /// <summary>Settings of a compute process started by the test itself (with a crash point of its own).</summary>
    public IReadOnlyDictionary<string, string> Environment => _environment;

    /// <summary>Where compute host <paramref name="host"/> keeps its fake guest definitions (power state, one file per guest).</summary>
    public string GuestDirectory(string host) => Path.Combine(DataDirectory, "instances", host, "_run", host);

    /// <summary>The last lines of a role's log file, for failure messages.</summary>
    public string LogTail(string name, int lines = 40)
    {
        var directory = Path.Combine(DataDirectory, "log");
        var files = Directory.Exists(directory)
            ? Directory.EnumerateFiles(directory, $"ferry-{name}-*.log").Order(StringComparer.Ordinal).ToList()
            : [];
        return files.Count == 0 ? $"(no log of {name})" : string.Join('\n', files.SelectMany(File.ReadLines).TakeLast(lines));
    }

    /// <summary>Every line of every log of role <paramref name="name"/>.</summary>
    public IEnumerable<string> LogLines(string name)
    {
        var directory = Path.Combine(DataDirectory, "log");
        return Directory.EnumerateFiles(directory, $"ferry-{name}-*.log").Order(StringComparer.Ordinal).SelectMany(f =>
        {
            using var stream = new FileStream(f, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(stream);
            return reader.ReadToEnd().Split('\n');
        }).ToList();
    }

    public async Task DisposeAsync()
    {
        Admin?.Dispose();
        Placement?.Dispose();
        try
        {
            foreach (var api in _apis.Values)
            {
                await api.StopAsync(TimeSpan.FromSeconds(10));
                api.Dispose();
            }
            if (_launcher is not null)
            {
                await _launcher.DisposeAsync();
            }
        }
        finally
        {
            // Whatever a failed stop left dies here, so no run leaves servers behind (only what this fixture started).
            foreach (var pid in ChildPids())
            {
                try
                {
                    System.Diagnostics.Process.GetProcessById(pid).Kill(entireProcessTree: true);
                }
                catch (ArgumentException)
                {
                }
            }
            LocalRabbitMq.KillLeftover(Path.Combine(DataDirectory, "rabbitmq"));
            LocalPostgres.StopLeftover(Path.Combine(DataDirectory, "postgres"));
            if (System.Environment.GetEnvironmentVariable("FERRY_KEEP_DIST_DIR") != "1")
            {
                Directory.Delete(DataDirectory, recursive: true);
            }
        }
    }

    private List<int> ChildPids()
    {
        var pids = new List<int>();
        var file = Path.Combine(DataDirectory, "distributed.pids");
        if (File.Exists(file))
        {
            pids.AddRange(File.ReadAllLines(file).Select(l => int.Parse(l.Split(' ')[0], CultureInfo.InvariantCulture)));
        }
        pids.AddRange(_apiPids);
        // Only processes of this data directory: a pid of a process that ended may belong to another by now.
        return [.. pids.Where(pid => Directory.Exists($"/proc/{pid}") && OfThisDirectory(pid))];
    }

    private bool OfThisDirectory(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/environ").Contains($"FERRY_DATADIR={DataDirectory}\0", StringComparison.Ordinal);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
