using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Ferry.Core.Domain;
using Ferry.Core.Rpc;
using Ferry.Core.Rpc.Scheduler;
using Ferry.Host;
using Ferry.Host.Distributed;
using Ferry.Host.Messaging;
using Ferry.Virt.Fake;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ferry.Benchmarks;

/// <summary>
/// `./ferry bench --distributed --only scale`: the scale figures of issue 10 part 6 against `ferry distributed` (every role
/// its own process, two replicas of api, conductor and scheduler, <c>hostsPerCompute</c> fake hosts per `ferry compute`
/// process) over a PostgreSQL and a RabbitMQ this bench runs, so both outlive the launcher between its two starts:
/// a start on an empty database (db sync, every host's service, node and provider created), then, with every process
/// stopped, <c>instances</c> instances seeded as the all-in-one's scale bench seeds them (<see cref="ScaleWorld"/>: rows,
/// allocations and each guest's files on its host's instances directory), then the measured start on that cloud, its
/// heartbeat spread, the three queries (select_destinations as an RPC call through RabbitMQ to the scheduler replicas)
/// and 200 concurrent live migrations.
/// </summary>
internal static partial class DistributedScaleBenchmarks
{
    private static readonly TimeSpan s_startLimit = TimeSpan.FromMinutes(20);
    private static readonly TimeSpan s_reportInterval = new FerryHostOptions().ReportInterval;

    public sealed record Result(int Hosts, int Instances, int HostsPerCompute, int ComputeProcesses, double FreshStartMs, double SeedMs, double RestartReadyMs,
        double RssMb, double PostgresRssMb, double RabbitMqRssMb, double HeartbeatMaxSecondShare, int HeartbeatSecondsUsed, double ReportIntervalSeconds,
        QueryFigures Queries, (int Moves, int Completed, int NotCompleted, double WallMs) ConcurrentLiveMigrations,
        IReadOnlyDictionary<string, double> SteadyCpuPercent);

    // How long the steady state after the start is watched: two heartbeat intervals, a third of a power-sync one.
    private static readonly TimeSpan s_steadyWindow = TimeSpan.FromSeconds(20);

    public static async Task<Result> RunAsync(string hostDll, int hosts, int instances, int hostsPerCompute, Action<string> log)
    {
        // Under /tmp (mode 0755 under the usual umask): PostgreSQL runs as the postgres user, which must reach its directory.
        var dataDirectory = Path.Combine("/tmp", $"ferry-bench-dscale-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}");
        Directory.CreateDirectory(dataDirectory);
        LocalPostgres? postgres = null;
        LocalRabbitMq? rabbitMq = null;
        DistributedRun? ferry = null;
        try
        {
            log($"ferry distributed runs {HostBuild.Describe(hostDll)}");
            postgres = LocalPostgres.Start(Path.Combine(dataDirectory, "postgres"), 0);
            rabbitMq = await LocalRabbitMq.StartAsync(Path.Combine(dataDirectory, "rabbitmq"), 0);
            string[] arguments =
            [
                .. HostBuild.Command(hostDll).Prefix, "distributed", "--data-dir", dataDirectory, "--hosts", Invariant(hosts), "--hosts-per-compute", Invariant(hostsPerCompute),
                "--replicas", "2", "--database", postgres.ConnectionString, "--transport", rabbitMq.Url, "--auth", "noauth2",
                "--compute-port", "0", "--placement-port", "0", "--image-port", "0", "--network-port", "0", "--volume-port", "0", "--log-level", "warning",
            ];
            var processes = (hosts + hostsPerCompute - 1) / hostsPerCompute;

            // Ready once every agent has reported its service, node and provider; the list then proves it (polling a list
            // of 10,000 hypervisors all along would load the API and database the start needs).
            var servers = ServersCpu(postgres, rabbitMq);
            ferry = await DistributedRun.StartAsync(HostBuild.Command(hostDll).FileName, arguments, dataDirectory, s_startLimit);
            var freshMs = Stats.Ms(ferry.ReadyAt - ferry.Started);
            log($"distributed scale: CPU of the start on an empty database, s: {StartCpu(ferry.Children(), servers, postgres, rabbitMq)}");
            var (computeUrl, _) = Urls(ferry.ReadyLine);
            using (var http = InProcessFerry.Client(computeUrl))
            {
                await WaitForHypervisorsAsync(http, hosts, ferry.Started);
            }
            log($"distributed scale: {hosts} hosts in {processes} compute processes started on an empty database in {freshMs:0} ms " +
                $"(ready line; every hypervisor listed {Stats.Ms(Stopwatch.GetTimestamp() - ferry.Started):0} ms after the launch)");
            await ferry.DisposeAsync();
            ferry = null;

            // Every process stopped: a running agent would find the seeded instances missing from its driver.
            double seedMs;
            using (var database = FerryInfrastructure.OpenDatabase(postgres.ConnectionString))
            {
                var names = Enumerable.Range(1, hosts).Select(i => $"compute{i}").ToList();
                var seeded = await ScaleWorld.SeedAsync(new InstanceStore(database, TimeProvider.System), new PlacementService(database), new CatalogStore(database),
                    new ComputeNodeStore(database), names, host => new FakeDriver(new FakeDriverOptions
                    {
                        HostName = host,
                        InstancesPath = Path.Combine(dataDirectory, "instances", host),
                        TimeScale = 0,
                    }, new FakeHypervisorState(), TimeProvider.System, NullLogger<FakeDriver>.Instance), instances, CancellationToken.None);
                seedMs = seeded.Elapsed.TotalMilliseconds;
            }
            log($"distributed scale: {instances} instances seeded in {seedMs:0} ms");

            servers = ServersCpu(postgres, rabbitMq);
            ferry = await DistributedRun.StartAsync(HostBuild.Command(hostDll).FileName, arguments, dataDirectory, s_startLimit);
            log($"distributed scale: CPU of the start with the instances, s: {StartCpu(ferry.Children(), servers, postgres, rabbitMq)}");
            (computeUrl, var placementUrl) = Urls(ferry.ReadyLine);
            var readyMs = Stats.Ms(ferry.ReadyAt - ferry.Started);
            var readyAt = DateTimeOffset.UtcNow;
            log($"distributed scale: restart with {instances} instances ready in {readyMs:0} ms: {ferry.ReadyLine}");
            using var api = InProcessFerry.Client(computeUrl);
            api.Timeout = TimeSpan.FromSeconds(60);
            var heartbeats = await ScaleBenchmarks.WaitForHeartbeatsAfterAsync(api, readyAt + s_reportInterval, hosts, TimeSpan.FromTicks(s_reportInterval.Ticks * 6));
            var seconds = heartbeats.GroupBy(t => t.ToUnixTimeSeconds() % (long)s_reportInterval.TotalSeconds).Select(g => g.Count()).ToList();
            var children = ferry.Children();
            var rssMb = children.Sum(c => ProcessMemory.StatusMb(c.Pid, "VmRSS"));
            var (postgresPids, rabbitMqPids) = ServerProcesses(postgres, rabbitMq);
            var postgresMb = postgresPids.Sum(p => ProcessMemory.StatusMb(p, "VmRSS"));
            var rabbitMqMb = rabbitMqPids.Sum(p => ProcessMemory.StatusMb(p, "VmRSS"));
            log($"distributed scale: {children.Count} Ferry processes VmRSS {rssMb:0} MB, PostgreSQL {postgresMb:0} MB, RabbitMQ {rabbitMqMb:0} MB; " +
                $"heartbeats over {seconds.Count} of {s_reportInterval.TotalSeconds:0} seconds, the busiest second {seconds.Max() / (double)heartbeats.Count:P1}");

            // What the idle control plane costs (heartbeats and power syncs only): the CPU every figure below shares the
            // machine with. % of one core per role over the window.
            var steady = await SteadyCpuAsync(children, postgres, rabbitMq);
            log($"distributed scale: steady state, % of one core over {s_steadyWindow.TotalSeconds:0} s: " +
                string.Join(", ", steady.Select(r => $"{r.Key} {r.Value:0.0}")));

            var queries = await QueriesAsync(api, placementUrl, rabbitMq.Url, postgres.ConnectionString, hosts, instances, log);
            var moves = await ScaleBenchmarks.ConcurrentLiveMigrationsAsync(api, Math.Min(200, hosts / 2), log);
            return new Result(hosts, instances, hostsPerCompute, processes, freshMs, seedMs, readyMs, rssMb, postgresMb, rabbitMqMb,
                seconds.Max() / (double)heartbeats.Count, seconds.Count, s_reportInterval.TotalSeconds, queries, moves, steady);
        }
        finally
        {
            if (ferry is not null)
            {
                await ferry.DisposeAsync();
            }
            if (rabbitMq is not null)
            {
                await rabbitMq.StopAsync();
            }
            postgres?.Stop();
            try
            {
                Directory.Delete(dataDirectory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>A child's role from its name: compute1-1000 → compute, conductor-2 → conductor.</summary>
    private static string RoleOf(string child) => new([.. child.TakeWhile(char.IsAsciiLetter)]);

    /// <summary>The processes of the bench's PostgreSQL and RabbitMQ servers now (each server's tree from its pid file).</summary>
    private static (IReadOnlyList<int> Postgres, IReadOnlyList<int> RabbitMq) ServerProcesses(LocalPostgres postgres, LocalRabbitMq rabbitMq) =>
        (ProcessMemory.Tree(ProcessMemory.PidInFile(Path.Combine(postgres.Directory, "data", "postmaster.pid"))),
         ProcessMemory.Tree(ProcessMemory.PidInFile(Path.Combine(rabbitMq.Directory, "pid"))));

    private static (Dictionary<int, TimeSpan> Postgres, Dictionary<int, TimeSpan> RabbitMq) ServersCpu(LocalPostgres postgres, LocalRabbitMq rabbitMq)
    {
        var (postgresPids, rabbitMqPids) = ServerProcesses(postgres, rabbitMq);
        return (postgresPids.ToDictionary(pid => pid, ProcessMemory.CpuTime), rabbitMqPids.ToDictionary(pid => pid, ProcessMemory.CpuTime));
    }

    // Per process: a backend of an earlier client that ended since counts nothing, one that began counts its whole life.
    private static double SecondsSince(Dictionary<int, TimeSpan> before, Dictionary<int, TimeSpan> now) =>
        now.Sum(p => (p.Value - before.GetValueOrDefault(p.Key)).TotalSeconds);

    /// <summary>
    /// The CPU seconds a start took by role, read at its ready line: the role processes' whole lives (they began with it),
    /// PostgreSQL's and RabbitMQ's processes since <paramref name="before"/> (read before the launch; a backend that ended
    /// meanwhile is not counted). A start on 2 cores is CPU-bound, so this says where its time goes.
    /// </summary>
    private static string StartCpu(IReadOnlyList<(string Name, int Pid)> children, (Dictionary<int, TimeSpan> Postgres, Dictionary<int, TimeSpan> RabbitMq) before,
        LocalPostgres postgres, LocalRabbitMq rabbitMq)
    {
        var used = new SortedDictionary<string, double>(StringComparer.Ordinal);
        foreach (var (name, pid) in children)
        {
            var role = RoleOf(name);
            used[role] = used.GetValueOrDefault(role) + ProcessMemory.CpuTime(pid).TotalSeconds;
        }
        var (postgresNow, rabbitMqNow) = ServersCpu(postgres, rabbitMq);
        used["postgresql"] = SecondsSince(before.Postgres, postgresNow);
        used["rabbitmq"] = SecondsSince(before.RabbitMq, rabbitMqNow);
        used["all"] = used.Values.Sum();
        return string.Join(", ", used.Select(r => string.Create(CultureInfo.InvariantCulture, $"{r.Key} {r.Value:0.0}")));
    }

    /// <summary>CPU used over <see cref="s_steadyWindow"/> by each role's processes (compute1-1000 → compute), in % of one core.</summary>
    private static async Task<IReadOnlyDictionary<string, double>> SteadyCpuAsync(IReadOnlyList<(string Name, int Pid)> children,
        LocalPostgres postgres, LocalRabbitMq rabbitMq)
    {
        var (postgresPids, rabbitMqPids) = ServerProcesses(postgres, rabbitMq);
        var roles = children.Select(c => (Role: RoleOf(c.Name), c.Pid))
            .Concat(postgresPids.Select(p => (Role: "postgresql", Pid: p)))
            .Concat(rabbitMqPids.Select(p => (Role: "rabbitmq", Pid: p)))
            .ToList();
        var before = roles.Select(r => ProcessMemory.CpuTime(r.Pid)).ToList();
        var clock = Stopwatch.StartNew();
        await Task.Delay(s_steadyWindow);
        var elapsed = clock.Elapsed;
        var used = new SortedDictionary<string, double>(StringComparer.Ordinal);
        for (var i = 0; i < roles.Count; i++)
        {
            used[roles[i].Role] = used.GetValueOrDefault(roles[i].Role) + (ProcessMemory.CpuTime(roles[i].Pid) - before[i]) / elapsed * 100;
        }
        used["all"] = used.Values.Sum();
        return used;
    }

    /// <summary>
    /// select_destinations as the conductor asks it (an RPC call on the scheduler topic, either replica answering; each
    /// claim released through the placement API, outside the time), then the API's two lists.
    /// </summary>
    private static async Task<QueryFigures> QueriesAsync(HttpClient api, string placementUrl, string transportUrl, string database, int hosts, int instances,
        Action<string> log)
    {
        var figures = new QueryFigures("distributed", hosts, instances, double.NaN);
        var slowest = new List<(double Ms, double At)>();
        Flavor flavor;
        using (var db = FerryInfrastructure.OpenDatabase(database))
        {
            flavor = new CatalogStore(db).FindFlavor("m1.nano") ?? throw new InvalidOperationException("no flavor m1.nano");
        }
        await using (var transport = await RabbitMqTransport.ConnectAsync(new RabbitMqOptions { Url = transportUrl }, new InMemoryRpcDeduplicator(TimeProvider.System),
            NullLogger<RabbitMqTransport>.Instance, TimeProvider.System, CancellationToken.None))
        using (var placement = new HttpClient { BaseAddress = new Uri(placementUrl + "/") })
        {
            placement.DefaultRequestHeaders.Add("X-Auth-Token", "admin:admin");
            placement.DefaultRequestHeaders.Add("OpenStack-API-Version", "placement 1.28");
            var scheduler = new SchedulerClient(transport, new RpcOptions());
            var started = Stopwatch.GetTimestamp();
            for (var i = 0; i < 50 + 1000 && Stopwatch.GetElapsedTime(started) < TimeSpan.FromSeconds(90); i++)
            {
                var spec = new RequestSpec { InstanceUuid = Guid.NewGuid().ToString(), ProjectId = "project-bench", UserId = "user-bench", Flavor = flavor };
                var t0 = Stopwatch.GetTimestamp();
                var reply = await scheduler.SelectDestinationsAsync(new SelectDestinationsRequest(spec, 2), CancellationToken.None);
                var t1 = Stopwatch.GetTimestamp();
                if (reply.Selections.Count != 3)
                {
                    throw new InvalidOperationException($"expected a host and two alternates, got {reply.Selections.Count}");
                }
                using (var deleted = await placement.DeleteAsync($"allocations/{spec.InstanceUuid}"))
                {
                    if (deleted.StatusCode != HttpStatusCode.NoContent)
                    {
                        throw new InvalidOperationException($"DELETE allocations/{spec.InstanceUuid}: {(int)deleted.StatusCode}");
                    }
                }
                if (i >= 50)
                {
                    figures.Select.Add(Stats.Ms(t1 - t0));
                    slowest.Add((Stats.Ms(t1 - t0), Stats.Ms(t0 - started) / 1000));
                }
            }
        }
        log($"select_destinations (RPC through RabbitMQ): n={figures.Select.Count} p50 {Stats.Percentile(figures.Select, 50):0.00} ms p99 {Stats.Percentile(figures.Select, 99):0.00} ms");
        // When the tail happened says what made it (a burst, one periodic task, spread evenly): the ten slowest and when.
        log("select_destinations, the ten slowest (ms at s from the first call): " +
            string.Join(", ", slowest.OrderByDescending(s => s.Ms).Take(10).Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.Ms:0.0} at {s.At:0.0}"))));
        await QueryBenchmarks.TimeGetAsync(api, "os-hypervisors/detail", "2.1", warmup: 2, measured: 20, figures.HypervisorsAll,
            json => QueryBenchmarks.Check(json, "hypervisors", hosts));
        log($"GET /os-hypervisors/detail (2.1, all {hosts}): p50 {Stats.Percentile(figures.HypervisorsAll, 50):0} ms p99 {Stats.Percentile(figures.HypervisorsAll, 99):0} ms");
        await QueryBenchmarks.TimeGetAsync(api, "os-hypervisors/detail", "2.53", warmup: 3, measured: 50, figures.HypervisorsPage,
            json => QueryBenchmarks.Check(json, "hypervisors", Math.Min(1000, hosts)));
        log($"GET /os-hypervisors/detail (2.53, a page of 1000): p50 {Stats.Percentile(figures.HypervisorsPage, 50):0} ms p99 {Stats.Percentile(figures.HypervisorsPage, 99):0} ms");
        await QueryBenchmarks.TimeServersPagesAsync(api, instances, figures.ServersPage);
        log($"GET /servers/detail?limit=1000: {figures.ServersPage.Count} pages, p50 {Stats.Percentile(figures.ServersPage, 50):0} ms p99 {Stats.Percentile(figures.ServersPage, 99):0} ms");
        return figures;
    }

    private static async Task WaitForHypervisorsAsync(HttpClient http, int hosts, long started)
    {
        while (true)
        {
            // 2.1: every hypervisor in one list (from 2.33 a page holds at most max_limit).
            using var request = new HttpRequestMessage(HttpMethod.Get, "os-hypervisors");
            request.Headers.Add("OpenStack-API-Version", "compute 2.1");
            using var response = await http.SendAsync(request);
            var count = response.StatusCode == HttpStatusCode.OK
                ? System.Text.Json.Nodes.JsonNode.Parse(await response.Content.ReadAsStringAsync())?["hypervisors"]?.AsArray().Count ?? 0
                : 0;
            if (count >= hosts)
            {
                return;
            }
            if (Stopwatch.GetElapsedTime(started) > s_startLimit)
            {
                throw new TimeoutException($"{count} of {hosts} hypervisors listed after {s_startLimit.TotalMinutes} min");
            }
            await Task.Delay(200);
        }
    }

    private static string Invariant(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static (string Compute, string Placement) Urls(string readyLine) =>
        ReadyLine().Match(readyLine) is { Success: true } match
            ? (match.Groups["compute"].Value, match.Groups["placement"].Value)
            : throw new InvalidOperationException($"unexpected ready line: {readyLine}");

    [GeneratedRegex(@"compute API (?<compute>http://[^\s,]+)/v2\.1, placement (?<placement>http://[^\s,]+),")]
    private static partial Regex ReadyLine();
}
