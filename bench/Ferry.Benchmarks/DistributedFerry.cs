using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Host;
using Ferry.Host.Distributed;

namespace Ferry.Benchmarks;

/// <summary>
/// `ferry distributed` (what `./ferry up --distributed` runs) in a child process, as an operator starts it: PostgreSQL and
/// RabbitMQ of its own under a temp data directory, `ferry db sync`, two replicas of api, conductor and scheduler and one
/// `ferry compute` process per host, fake driver with no simulated time, every port 0 read back from its ready line.
/// Driven only through the REST API; its PostgreSQL database is read to see when a move has ended.
/// </summary>
internal sealed partial class DistributedFerry : IBenchFerry, IAsyncDisposable
{
    private static readonly TimeSpan s_startLimit = TimeSpan.FromSeconds(240);
    private static readonly TimeSpan s_bootLimit = TimeSpan.FromSeconds(120);

    private readonly DistributedRun _run;
    private readonly FerryDatabase _database;

    private DistributedFerry(string dataDirectory, DistributedRun run, string computeUrl, int postgresPort, int hosts, double startupMs)
    {
        DataDirectory = dataDirectory;
        _run = run;
        Http = InProcessFerry.Client(computeUrl);
        HostNames = [.. Enumerable.Range(1, hosts).Select(i => $"compute{i}")];
        StartupMs = startupMs;
        var connection = new Npgsql.NpgsqlConnectionStringBuilder { Host = "127.0.0.1", Port = postgresPort, Username = "postgres", Database = "ferry" }.ConnectionString;
        _database = FerryInfrastructure.OpenDatabase(connection);
        Instances = new InstanceStore(_database, TimeProvider.System);
        Migrations = new MigrationStore(_database, TimeProvider.System);
    }

    public string DataDirectory { get; }
    public HttpClient Http { get; }
    public InstanceStore Instances { get; }
    public MigrationStore Migrations { get; }
    public IReadOnlyList<string> HostNames { get; }

    /// <summary>Each read is a PostgreSQL round trip (~0.2 ms): a tighter loop would only take CPU from the processes measured.</summary>
    public TimeSpan LatencyPoll => TimeSpan.FromMilliseconds(1);

    /// <summary>From starting the launcher to the compute API listing every hypervisor (a fresh data directory: initdb included).</summary>
    public double StartupMs { get; }

    /// <summary>Starts `ferry distributed` with <paramref name="hosts"/> compute processes and waits until the API lists them all.</summary>
    public static async Task<DistributedFerry> StartAsync(string hostDll, int hosts, int maxConcurrentLiveMigrations, Action<string> log)
    {
        // Under /tmp (mode 0755 under the usual umask): PostgreSQL runs as the postgres user, which must reach its directory.
        var dataDirectory = Path.Combine("/tmp", $"ferry-bench-dist-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}");
        Directory.CreateDirectory(dataDirectory);
        var (program, prefix) = HostBuild.Command(hostDll);
        // FERRY_BENCH_DISTRIBUTED_ARGS (space-separated) adds flags for a profile, e.g. "--log-level information --metrics-port 0";
        // the logs are then kept when the run ends.
        var extra = ExtraArguments();
        string[] arguments =
        [
            .. prefix, "distributed", "--data-dir", dataDirectory, "--hosts", Invariant(hosts), "--replicas", "2",
            "--time-scale", "0", "--max-concurrent-live-migrations", Invariant(maxConcurrentLiveMigrations), "--auth", "noauth2",
            "--compute-port", "0", "--placement-port", "0", "--image-port", "0", "--network-port", "0", "--volume-port", "0",
            .. extra.Contains("--log-level") ? (string[])[] : ["--log-level", "warning"], .. extra,
        ];
        DistributedRun? run = null;
        try
        {
            run = await DistributedRun.StartAsync(program, arguments, dataDirectory, s_startLimit, line =>
            {
                if (line.StartsWith("Metrics (besides", StringComparison.Ordinal))
                {
                    Console.Error.WriteLine($"[bench] {line}"); // with --metrics-port in FERRY_BENCH_DISTRIBUTED_ARGS: where to scrape
                }
            });
            var line = run.ReadyLine;
            var match = ReadyLine().Match(line);
            if (!match.Success)
            {
                throw new InvalidOperationException($"unexpected ready line: {line}");
            }
            var computeUrl = match.Groups["compute"].Value;
            using (var probe = InProcessFerry.Client(computeUrl))
            {
                while (await HypervisorCountAsync(probe) < hosts)
                {
                    if (Stopwatch.GetElapsedTime(run.Started) > s_startLimit)
                    {
                        throw new TimeoutException($"{hosts} hypervisors not listed within {s_startLimit.TotalSeconds} s");
                    }
                    await Task.Delay(5);
                }
            }
            var startupMs = Stats.Ms(Stopwatch.GetTimestamp() - run.Started);
            log($"ferry distributed ({hosts} hosts, 2 replicas) ready in {startupMs:0} ms: {line}");
            var ferry = new DistributedFerry(dataDirectory, run, computeUrl,
                int.Parse(match.Groups["postgres"].Value, CultureInfo.InvariantCulture), hosts, startupMs);
            // The benchmarks boot hundreds of servers in one project: lift Nova's default quotas (10 instances, 20 cores).
            await new QuotaStore(ferry._database).SetClassLimitsAsync("default", new Dictionary<string, long> { ["instances"] = -1, ["cores"] = -1, ["ram"] = -1 },
                CancellationToken.None);
            return ferry;
        }
        catch
        {
            await StopAsync(run, dataDirectory);
            throw;
        }
    }

    [GeneratedRegex(@"compute API (?<compute>http://[^\s,]+)/v2\.1,.*PostgreSQL 127\.0\.0\.1:(?<postgres>\d+),")]
    private static partial Regex ReadyLine();

    private static async Task<int> HypervisorCountAsync(HttpClient http)
    {
        try
        {
            using var response = await http.GetAsync("os-hypervisors");
            return response.StatusCode != HttpStatusCode.OK ? 0
                : JsonNode.Parse(await response.Content.ReadAsStringAsync())?["hypervisors"]?.AsArray().Count ?? 0;
        }
        catch (HttpRequestException)
        {
            return 0;
        }
    }

    /// <inheritdoc cref="DistributedRun.Children"/>
    public IReadOnlyList<(string Name, int Pid)> Children() => _run.Children();

    /// <summary>The PostgreSQL server's processes: the postmaster (its pid file) and its children.</summary>
    public IReadOnlyList<int> PostgresProcesses() =>
        ProcessMemory.Tree(ProcessMemory.PidInFile(Path.Combine(DataDirectory, "postgres", "data", "postmaster.pid")));

    /// <summary>The RabbitMQ node's processes: the Erlang VM (its pid file) and its children (epmd is shared by every node, not counted).</summary>
    public IReadOnlyList<int> RabbitMqProcesses() =>
        ProcessMemory.Tree(ProcessMemory.PidInFile(Path.Combine(DataDirectory, "rabbitmq", "pid")));

    /// <summary>Copies every process's log out of the data directory (deleted at the end) for a figure that failed; returns where.</summary>
    public string KeepLogs()
    {
        var kept = Path.Combine(Path.GetTempPath(), $"ferry-bench-logs-{DateTime.UtcNow:yyyyMMddTHHmmss}-{Guid.NewGuid().ToString("N")[..4]}");
        Directory.CreateDirectory(kept);
        foreach (var file in Directory.GetFiles(Path.Combine(DataDirectory, "log")))
        {
            File.Copy(file, Path.Combine(kept, Path.GetFileName(file)));
        }
        return kept;
    }

    public async Task<List<(string Id, string Host)>> BootManyAsync(IReadOnlyList<string> hosts)
    {
        using var gate = new SemaphoreSlim(16);
        var ids = await Task.WhenAll(hosts.Select(async (host, i) =>
        {
            await gate.WaitAsync();
            try
            {
                return await InProcessFerry.PostBootAsync(Http, $"bench-{i}", host);
            }
            finally
            {
                gate.Release();
            }
        }));
        var wanted = ids.ToHashSet(StringComparer.Ordinal);
        await Poll.UntilAsync(() => Instances.List().Count(i => wanted.Contains(i.Uuid) && i.VmState == VmState.Active && i.TaskState is null) == wanted.Count,
            TimeSpan.FromMilliseconds(50), s_bootLimit, $"{ids.Length} servers ACTIVE");
        return [.. ids.Zip(hosts)];
    }

    private static string[] ExtraArguments() =>
        Environment.GetEnvironmentVariable("FERRY_BENCH_DISTRIBUTED_ARGS")?.Split(' ', StringSplitOptions.RemoveEmptyEntries) ?? [];

    public async ValueTask DisposeAsync()
    {
        if (ExtraArguments().Length > 0)
        {
            Console.Error.WriteLine($"[bench] logs kept in {KeepLogs()}");
        }
        Http.Dispose();
        _database.Dispose();
        await StopAsync(_run, DataDirectory);
    }

    /// <summary>Stops the run (if it started) and the PostgreSQL and RabbitMQ it left, then deletes the data directory.</summary>
    private static async Task StopAsync(DistributedRun? run, string dataDirectory)
    {
        try
        {
            if (run is not null)
            {
                await run.StopAsync(TimeSpan.FromSeconds(120));
                await run.DisposeAsync();
            }
        }
        finally
        {
            LocalRabbitMq.KillLeftover(Path.Combine(dataDirectory, "rabbitmq"));
            LocalPostgres.StopLeftover(Path.Combine(dataDirectory, "postgres"));
            try
            {
                Directory.Delete(dataDirectory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static string Invariant(int value) => value.ToString(CultureInfo.InvariantCulture);
}
