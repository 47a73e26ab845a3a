using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Ferry.Host.Roles;

namespace Ferry.Host.Distributed;

/// <summary>What `ferry distributed` (`./ferry up --distributed`) runs besides the settings every role shares.</summary>
public sealed record DistributedPlan(
    string DataDirectory,
    int Hosts,
    int Replicas,
    int PostgresPort,
    int RabbitMqPort,
    int ComputePort,
    int PlacementPort,
    int IdentityPort,
    int ImagePort,
    int NetworkPort,
    int VolumePort,
    bool UsesKeystone,
    IReadOnlyDictionary<string, string> Environment,
    int? MetricsPort = null)
{
    /// <summary>Hosts each `ferry compute` process serves (fake driver): compute1..computeK in the first, and so on; the last may serve fewer.</summary>
    public int HostsPerCompute { get; init; } = 1;

    /// <summary>Each compute process's name and the hosts it serves (as <c>--host</c> takes them): compute2, or compute[1-1000].</summary>
    public IReadOnlyList<(string Name, string Hosts)> ComputeProcesses() =>
        [.. Enumerable.Range(0, (Hosts + HostsPerCompute - 1) / HostsPerCompute).Select(p =>
        {
            var (first, last) = (p * HostsPerCompute + 1, Math.Min(Hosts, (p + 1) * HostsPerCompute));
            return (first == last ? $"compute{first}" : $"compute{first}-{last}", Configuration.ComputeHostList.RangeOf("compute", first, last));
        })];

    /// <summary>An operator's own PostgreSQL (a <c>database</c> setting): used instead of starting one under the data directory.</summary>
    public string? Database { get; init; }

    /// <summary>An operator's own RabbitMQ (a <c>transport</c> URL): used instead of starting a node under the data directory.</summary>
    public string? Transport { get; init; }

    /// <summary>The <c>ferry</c> executable the roles run (tests: a native ferry); null: this program.</summary>
    public string? Program { get; init; }

    /// <summary>Each compute host in a network namespace of its own (<see cref="NetnsLab"/>); null: every process on loopback.</summary>
    public LabPlan? Lab { get; init; }

    /// <summary>
    /// <c>--kill-guests-on-stop</c>: guests end with Ferry (the compute processes have the setting too). A lab's agents
    /// always end theirs (nothing may keep a namespace alive).
    /// </summary>
    public bool KillGuestsOnStop { get; init; }

    /// <summary>
    /// Whether the guests end when the launcher stops, and with them the volume storage daemon that serves their volumes,
    /// as the all-in-one ends it; otherwise both outlive Ferry and the next start adopts them.
    /// </summary>
    public bool GuestsEndWithFerry => KillGuestsOnStop || Lab is not null;
}

/// <summary>`--netns`: the hosts' links shaped to a rate (Mbit/s) and a one-way delay (ms), each when given.</summary>
public sealed record LabPlan(double? LinkBandwidthMbit = null, double? LinkLatencyMs = null);

/// <summary>
/// Nova's shape on one machine: PostgreSQL and RabbitMQ on loopback (data under the data directory), `ferry db sync`,
/// then every control-plane role as its own processes (<see cref="DistributedPlan.Replicas"/> each of api, conductor
/// and scheduler; the api replicas share their ports through SO_REUSEPORT, so the kernel spreads connections between
/// them) and one `ferry compute` process per host, or per <see cref="DistributedPlan.HostsPerCompute"/> hosts. <see cref="DisposeAsync"/> stops them all, agents first, then the
/// broker and the database. The children's pids are kept in <c>&lt;data dir&gt;/distributed.pids</c>, so a start after a
/// killed launcher first ends the processes it left (one "pid name" line each). The volume storage daemon an api process
/// started runs in a session of its own: it outlives the launcher as the guests do, unless they end with Ferry
/// (<see cref="DistributedPlan.GuestsEndWithFerry"/>), when the stop ends it after the api processes.
/// </summary>
public sealed class DistributedLauncher : IAsyncDisposable
{
    private static readonly TimeSpan s_readyTimeout = TimeSpan.FromSeconds(120);

    private readonly DistributedPlan _plan;
    private readonly TextWriter _output;
    private readonly List<FerryChild> _children = [];
    private readonly Dictionary<string, (string[] Arguments, IReadOnlyDictionary<string, string> Environment, IReadOnlyList<string>? Wrapper)> _started = [];
    private LocalPostgres? _postgres;
    private LocalRabbitMq? _rabbitMq;
    private NetnsLab? _lab;

    private DistributedLauncher(DistributedPlan plan, TextWriter output)
    {
        _plan = plan;
        _output = output;
    }

    /// <summary>The PostgreSQL this launcher started, or null when the plan names the operator's own.</summary>
    public LocalPostgres? Postgres => _postgres;

    /// <summary>The RabbitMQ node this launcher started, or null when the plan names the operator's own.</summary>
    public LocalRabbitMq? RabbitMq => _rabbitMq;

    /// <summary>The database and the broker as the ready line names them (never with a password).</summary>
    public string DatabaseDisplay { get; private set; } = "";
    public string BrokerDisplay { get; private set; } = "";

    /// <summary>The running children, in start order.</summary>
    public IReadOnlyList<FerryChild> Children => _children;

    public string ComputeApiUrl { get; private set; } = "";
    public string PlacementUrl { get; private set; } = "";
    public string IdentityUrl { get; private set; } = "";
    public string ImageUrl { get; private set; } = "";

    public string NetworkUrl { get; private set; } = "";

    /// <summary>The volume API, without /v3.</summary>
    public string VolumeUrl { get; private set; } = "";

    /// <summary>The namespaces, veths and bridges of `--netns` (null without it).</summary>
    public NetnsLab? Lab => _lab;

    private string PidFile => Path.Combine(_plan.DataDirectory, "distributed.pids");

    /// <summary>Starts everything; on any failure stops what it started and throws <see cref="FerryStartException"/>.</summary>
    public static async Task<DistributedLauncher> StartAsync(DistributedPlan plan, TextWriter output, CancellationToken ct)
    {
        var launcher = new DistributedLauncher(plan, output);
        try
        {
            await launcher.StartAllAsync(ct);
            return launcher;
        }
        catch
        {
            await launcher.DisposeAsync();
            throw;
        }
    }

    private async Task StartAllAsync(CancellationToken ct)
    {
        Directory.CreateDirectory(_plan.DataDirectory);
        KillLeftovers();
        if (_plan.Lab is { } lab)
        {
            if (NetnsLab.Unavailable() is { } missing)
            {
                throw new FerryStartException(missing);
            }
            _lab = await NetnsLab.CreateAsync(_plan.DataDirectory, _plan.Hosts, lab.LinkBandwidthMbit, lab.LinkLatencyMs, Seed.PrivateGateway, ct);
        }
        // In a lab the hosts reach the control plane at the controller's address on the management network.
        var controller = _lab?.ControllerAddress ?? "127.0.0.1";
        string[] listen = _lab is null ? [] : ["--listen", controller];
        string database, transport;
        if (_plan.Database is { } given)
        {
            using var opened = FerryInfrastructure.OpenDatabase(given); // unreachable or not PostgreSQL: one line, nothing started
            if (!opened.IsShared)
            {
                throw new FerryStartException($"database: '{given}' is a SQLite file, which one process owns; the distributed shape needs PostgreSQL (postgresql://…)");
            }
            (database, DatabaseDisplay) = (given, opened.Description);
        }
        else
        {
            _postgres = LocalPostgres.Start(Path.Combine(_plan.DataDirectory, "postgres"), _plan.PostgresPort);
            (database, DatabaseDisplay) = (_postgres.ConnectionString, $"PostgreSQL 127.0.0.1:{_postgres.Port}");
        }
        if (_plan.Transport is { } url)
        {
            (transport, BrokerDisplay) = (url, Messaging.RabbitMqEndpoint.Parse(url).Display);
        }
        else
        {
            _rabbitMq = await LocalRabbitMq.StartAsync(Path.Combine(_plan.DataDirectory, "rabbitmq"), _plan.RabbitMqPort, address: controller);
            (transport, BrokerDisplay) = (_rabbitMq.Url, $"RabbitMQ {controller}:{_rabbitMq.Port}");
        }
        var shared = new Dictionary<string, string>(_plan.Environment)
        {
            ["FERRY_DATADIR"] = _plan.DataDirectory,
            ["FERRY_DATABASE"] = database,
            ["FERRY_TRANSPORT"] = transport,
        };

        using (var sync = FerryChild.Start("db-sync", ["db", "sync"], shared, _plan.Program))
        {
            var exit = await sync.WaitForExitAsync(s_readyTimeout, ct);
            if (exit != 0)
            {
                throw new FerryStartException($"ferry db sync exited {exit}: {sync.LastLine()}");
            }
        }

        // The first api replica picks the ports (0: free ones); the others join it on the same ports.
        var first = await StartAsync("api-1", ["api", "--reuse-port", .. listen, .. ApiPorts(_plan.ComputePort, _plan.PlacementPort, _plan.IdentityPort, _plan.ImagePort, _plan.NetworkPort, _plan.VolumePort)], shared, ct);
        ComputeApiUrl = UrlIn(first.ReadyLine, "compute API", "/v2.1");
        PlacementUrl = UrlIn(first.ReadyLine, "placement", "");
        ImageUrl = UrlIn(first.ReadyLine, "images", "");
        NetworkUrl = UrlIn(first.ReadyLine, "network", "");
        VolumeUrl = UrlIn(first.ReadyLine, "volume", "");
        IdentityUrl = _plan.UsesKeystone ? UrlIn(first.ReadyLine, "identity", "/v3") : "";
        var ports = new[] { PortOf(ComputeApiUrl), PortOf(PlacementUrl), _plan.UsesKeystone ? PortOf(IdentityUrl) : 0, PortOf(ImageUrl), PortOf(NetworkUrl), PortOf(VolumeUrl) };
        var others = Enumerable.Range(2, _plan.Replicas - 1)
            .Select(i => StartAsync($"api-{i}", ["api", "--reuse-port", .. listen, .. ApiPorts(ports[0], ports[1], ports[2], ports[3], ports[4], ports[5])], shared, ct));
        var control = Enumerable.Range(1, _plan.Replicas).SelectMany(i => new[]
        {
            StartAsync($"conductor-{i}", ["conductor", "--controller-host", $"{Environment.MachineName}-{i}", .. MetricsPort(2 * (i - 1))], shared, ct),
            StartAsync($"scheduler-{i}", ["scheduler", "--controller-host", $"{Environment.MachineName}-{i}", .. MetricsPort(2 * (i - 1) + 1)], shared, ct),
        });
        await Task.WhenAll(others.Concat(control));

        var agentEnvironment = new Dictionary<string, string>(shared)
        {
            ["FERRY_API__PLACEMENTURL"] = PlacementUrl,
            ["FERRY_API__IMAGEURL"] = ImageUrl,
            ["FERRY_API__NETWORKURL"] = NetworkUrl,
            ["FERRY_API__VOLUMEURL"] = VolumeUrl,
        };
        if (_plan.UsesKeystone)
        {
            agentEnvironment["FERRY_API__IDENTITYURL"] = IdentityUrl[..^"/v3".Length];
        }
        if (_lab is { } netns)
        {
            // One agent per namespace, with Nova's tap names, its own address for migrations and its namespace's bridge
            // (the lab made it, with the uplink); guests end with their agent, so nothing keeps a namespace alive.
            await Task.WhenAll(Enumerable.Range(1, _plan.Hosts).Select(host => StartAsync($"compute{host}",
                ["compute", "--host", $"compute{host}", "--address", netns.HostAddress(host), "--own-netns", "--bridge", NetnsLab.HostBridge,
                    "--bridge-address", "", "--kill-guests-on-stop", .. MetricsPort(2 * _plan.Replicas + host - 1)],
                agentEnvironment, ct, netns.Wrapper(host))));
            return;
        }
        await Task.WhenAll(_plan.ComputeProcesses().Select((process, i) =>
            StartAsync(process.Name, ["compute", "--host", process.Hosts, .. MetricsPort(2 * _plan.Replicas + i)], agentEnvironment, ct)));
    }

    /// <summary>Each process without an API and its <c>/metrics</c> URL, from its ready line (with <see cref="DistributedPlan.MetricsPort"/>).</summary>
    public IReadOnlyList<(string Name, string Url)> MetricsUrls() =>
        [.. _children.Select(c => (c.Name, Match: Regex.Match(c.ReadyLine, @", metrics (http://\S+?/metrics),")))
            .Where(c => c.Match.Success)
            .Select(c => (c.Name, c.Match.Groups[1].Value))];

    // --metrics-port for the index-th process without an API: 0 gives each a free port, N the ports N, N+1… in that order.
    private string[] MetricsPort(int index) => _plan.MetricsPort switch
    {
        null => [],
        0 => ["--metrics-port", "0"],
        { } first => ["--metrics-port", Invariant(first + index)],
    };

    private static string[] ApiPorts(int compute, int placement, int identity, int image, int network, int volume) =>
    [
        "--compute-port", Invariant(compute), "--placement-port", Invariant(placement), "--identity-port", Invariant(identity), "--image-port", Invariant(image),
        "--network-port", Invariant(network), "--volume-port", Invariant(volume),
    ];

    private async Task<FerryChild> StartAsync(string name, string[] arguments, IReadOnlyDictionary<string, string> environment, CancellationToken ct,
        IReadOnlyList<string>? wrapper = null)
    {
        var child = FerryChild.Start(name, [.. arguments, "--log-name", name], environment, _plan.Program, wrapper);
        lock (_children)
        {
            _started[name] = (arguments, environment, wrapper);
            _children.Add(child);
            File.WriteAllLines(PidFile, _children.Select(c => $"{Invariant(c.ProcessId)} {c.Name}"));
        }
        // A compute process of many hosts starts each of them (service row, node, provider) before it says it is ready.
        var hosts = name.StartsWith("compute", StringComparison.Ordinal) ? _plan.HostsPerCompute : 1;
        await child.WaitReadyAsync(s_readyTimeout + TimeSpan.FromSeconds(0.25 * (hosts - 1)), ct);
        return child;
    }

    /// <summary>
    /// Starts the role process <paramref name="name"/> (api-1, conductor-2, compute1…) again, with the words and settings it
    /// first had, once it has died (killed, or crashed). The launcher does not do it by itself: a dead replica's work
    /// falls to the others (the queues are shared), and a dead compute agent's host stays down until it is started
    /// again, as under systemd without Restart=.
    /// </summary>
    /// <exception cref="InvalidOperationException">No such child, or it still runs.</exception>
    public async Task<FerryChild> RestartAsync(string name, CancellationToken ct)
    {
        FerryChild old;
        (string[] Arguments, IReadOnlyDictionary<string, string> Environment, IReadOnlyList<string>? Wrapper) start;
        lock (_children)
        {
            old = _children.LastOrDefault(c => c.Name == name) ?? throw new InvalidOperationException($"no child {name}");
            if (!old.HasExited)
            {
                throw new InvalidOperationException($"{name} still runs");
            }
            start = _started[name];
            _children.Remove(old);
        }
        old.Dispose();
        return await StartAsync(name, start.Arguments, start.Environment, ct, start.Wrapper);
    }

    /// <summary>Ends the children a killed launcher left (only processes whose command line is a Ferry role of this data directory).</summary>
    private void KillLeftovers()
    {
        if (!File.Exists(PidFile))
        {
            return;
        }
        foreach (var line in File.ReadAllLines(PidFile))
        {
            if (int.TryParse(line.Split(' ')[0], CultureInfo.InvariantCulture, out var pid) && Directory.Exists($"/proc/{pid}")
                && File.ReadAllText($"/proc/{pid}/environ").Contains($"FERRY_DATADIR={_plan.DataDirectory}\0", StringComparison.Ordinal))
            {
                _ = ProcessSignals.Send(pid, "KILL");
            }
        }
        File.Delete(PidFile);
    }

    private static string UrlIn(string readyLine, string label, string suffix)
    {
        var match = Regex.Match(readyLine, Regex.Escape(label) + @" (http://\S+?)" + Regex.Escape(suffix) + "(?:,|$| )");
        return match.Success ? match.Groups[1].Value + suffix : throw new FerryStartException($"cannot find the {label} URL in: {readyLine}");
    }

    private static int PortOf(string url) => new Uri(url).Port;

    private static string Invariant(int value) => value.ToString(CultureInfo.InvariantCulture);

    public async ValueTask DisposeAsync()
    {
        // Agents first (they finish or hand back what they run), then the control plane, then the broker and the database.
        var order = new[] { "compute", "conductor", "scheduler", "api" };
        foreach (var prefix in order)
        {
            var group = _children.Where(c => c.Name.StartsWith(prefix, StringComparison.Ordinal)).ToList();
            await Task.WhenAll(group.Select(c => c.StopAsync(TimeSpan.FromSeconds(15))));
        }
        foreach (var child in _children)
        {
            child.Dispose();
        }
        _children.Clear();
        File.Delete(PidFile);
        if (_plan.GuestsEndWithFerry)
        {
            // Its users, the api processes, are gone: nothing starts or adopts it again.
            try
            {
                await VolumeBackends.StopDaemonAsync(_plan.DataDirectory);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                await _output.WriteLineAsync($"ferry distributed: could not stop the volume storage daemon of {_plan.DataDirectory}: {ex.Message}");
            }
        }
        if (_rabbitMq is not null)
        {
            await _rabbitMq.StopAsync();
        }
        _postgres?.Stop();
        if (_lab is not null)
        {
            await _lab.DisposeAsync();
            _lab = null;
        }
    }
}
