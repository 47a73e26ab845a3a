using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Ferry.Benchmarks;

// `./ferry bench [--json] [--only a,b] [--distributed]`: measures the figures of BENCHMARKS.md, prints a table (or, with
// --json, one JSON object) on stdout; progress goes to stderr. --distributed measures them against `ferry distributed`
// (PostgreSQL + RabbitMQ, every role its own process) instead of the embedded all-in-one. `./ferry bench qemu [...]`: real QEMU live
// migrations (Qemu/). `./ferry bench bdn [BDN args]` runs BenchmarkDotNet instead (select_destinations at
// 1,000 hosts), with a short in-process job. `./ferry bench --help` (and `qemu --help`) list every option.
var parts = new[] { "startup", "live", "cold", "concurrent", "scheduler" };
// Long (minutes, 10,000 hosts / 100,000 instances): run only when named in --only.
// concurrent240: only the 240-at-once round of "concurrent" (which runs the 20-at-once rounds first).
var extraParts = new[] { "scale", "queries", "concurrent240" };
var jsonOption = new Option<bool>("--json") { Description = "Print one JSON object instead of the table." };
var onlyOption = new Option<string[]>("--only")
{
    Description = $"Run only these parts, comma-separated: {string.Join(", ", parts)}; and {string.Join(", ", extraParts)}, never run by default.",
    HelpName = "PARTS",
    CustomParser = r => r.Tokens.Count == 1 ? r.Tokens[0].Value.Split(',') : [],
};
onlyOption.Validators.Add(r =>
{
    foreach (var part in r.GetValueOrDefault<string[]>() ?? [])
    {
        if (!parts.Contains(part) && !extraParts.Contains(part))
        {
            r.AddError($"--only: '{part}' is not one of {string.Join(", ", parts.Concat(extraParts))}");
        }
    }
});
var scaleHosts = PositiveInt("--scale-hosts", "Compute hosts of the scale part (default 10000).");
var scaleInstances = PositiveInt("--scale-instances", "Instances of the scale part (default 100000).");
var scaleHostsPerCompute = PositiveInt("--scale-hosts-per-compute", "scale with --distributed: fake hosts per `ferry compute` process (default 1000).");
var distributedOption = new Option<bool>("--distributed")
{
    Description = "Measure against `ferry distributed` (what ./ferry up --distributed runs: PostgreSQL, RabbitMQ, 2 replicas of api, " +
        "conductor and scheduler, one compute process per host) instead of the embedded all-in-one; parts startup, live, cold, concurrent, " +
        "plus the resident memory of every process.",
};
var qemuJson = new Option<bool>("--json") { Description = "Print one JSON object instead of the table." };
var quick = new Option<bool>("--quick") { Description = "Only the 64 MiB guest." };
var png = new Option<string>("--png") { Description = "Where to write the chart (default docs/img/qemu-migration.png).", HelpName = "FILE" };
var statusTicks = PositiveInt("--status-ticks", "Guest status line every N ticks.");
var qemuOnly = new Option<string>("--only") { Description = "Run only these cells, comma-separated.", HelpName = "CELLS" };
var parallel = new Option<bool>("--parallel") { Description = "Measure 1, 2 and 4 memory streams (multifd) instead." };
var volumes = new Option<bool>("--volumes") { Description = "Compare a guest booted from a volume (no disk copied) with one whose local disk is block-migrated instead." };
var repeat = PositiveInt("--repeat", "Rounds per cell with --parallel or --volumes.");
var dataMib = PositiveInt("--data-mib", "With --volumes: MiB written to the volume and to the local disk before each move (default 64).");
var qemu = new Command("qemu", "Real QEMU live migrations between two local QEMU hosts (results in BENCHMARKS.md).")
{
    qemuJson, quick, png, statusTicks, qemuOnly, parallel, volumes, repeat, dataMib,
};
var netJson = new Option<bool>("--json") { Description = "Print one JSON object instead of the table." };
var netOnly = new Option<string>("--only") { Description = "Run only these cells, comma-separated (1000M-converging, 1000M-hot, 100M-converging, 100M-hot).", HelpName = "CELLS" };
var netLatency = new Option<double>("--link-latency")
{
    Description = "Every host's link also delays packets this many ms each way (source and destination 4×MS apart in round trip).",
    HelpName = "MS",
};
netLatency.Validators.Add(r =>
{
    if (r.GetValueOrDefault<double>() is < 0 or double.NaN)
    {
        r.AddError("--link-latency must be 0 or more");
    }
});
var net = new Command("net", "The network blackout of live migrations between two namespace hosts over links shaped to 1 Gbit/s and 100 Mbit/s (root; results in BENCHMARKS.md).")
{
    netJson, netOnly, netLatency,
};
var bdn = new Command("bdn", "BenchmarkDotNet (select_destinations at 1,000 hosts); further arguments go to BenchmarkDotNet.")
{
    TreatUnmatchedTokensAsErrors = false,
};
var queryHosts = PositiveInt("--query-hosts", "queries: compute hosts seeded (default 10000).");
var queryInstances = PositiveInt("--query-instances", "queries: instances seeded (default 100000).");
var queryDatabase = new Option<string>("--query-database")
{
    Description = "queries: run on this PostgreSQL database (postgresql://… or Host=…; it must be empty) instead of SQLite.",
    HelpName = "DB",
};
var command = new RootCommand("Ferry's benchmarks: the figures of BENCHMARKS.md.") { jsonOption, onlyOption, distributedOption, scaleHosts, scaleInstances, scaleHostsPerCompute, queryHosts, queryInstances, queryDatabase, qemu, net, bdn };
foreach (var version in command.Options.OfType<VersionOption>().ToList())
{
    command.Options.Remove(version); // no release version to print
}
command.SetAction(_ => 0); // the figures run below; without an action System.CommandLine would require a subcommand
var parsed = command.Parse(args);
if (parsed.Errors.Count > 0)
{
    foreach (var error in parsed.Errors)
    {
        Console.Error.WriteLine($"ferry bench: {error.Message}");
    }
    return 2;
}
if (parsed.Action is System.CommandLine.Help.HelpAction)
{
    return parsed.Invoke();
}
if (parsed.CommandResult.Command == bdn)
{
    var config = DefaultConfig.Instance
        .AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance).WithId("short-inprocess"))
        .WithOptions(ConfigOptions.DisableOptimizationsValidator)
        .WithArtifactsPath(Path.Combine(AppContext.BaseDirectory, "BenchmarkDotNet.Artifacts")); // under bin/, out of git
    var rest = parsed.UnmatchedTokens.ToArray();
    BenchmarkSwitcher.FromTypes([typeof(SelectDestinationsBenchmark)]).Run(rest.Length == 0 ? ["--filter", "*"] : rest, config);
    return 0;
}
if (parsed.CommandResult.Command == net)
{
    return await Ferry.Benchmarks.Qemu.NetworkBlackoutBench.RunAsync(parsed.GetValue(netJson), parsed.GetValue(netLatency), parsed.GetValue(netOnly));
}
if (parsed.CommandResult.Command == qemu)
{
    return await Ferry.Benchmarks.Qemu.QemuMigrationBench.RunAsync(new Ferry.Benchmarks.Qemu.QemuBenchArguments(
        parsed.GetValue(qemuJson), parsed.GetValue(quick), parsed.GetValue(png), parsed.GetValue(statusTicks),
        parsed.GetValue(qemuOnly)?.Split(','), parsed.GetValue(parallel), parsed.GetValue(repeat), parsed.GetValue(volumes), parsed.GetValue(dataMib)));
}

var json = parsed.GetValue(jsonOption);
var only = parsed.GetValue(onlyOption) is { Length: > 0 } given ? given : parts; // no --only: every part but the long ones
var distributed = parsed.GetValue(distributedOption);
bool Runs(string part) => !distributed && only.Contains(part); // the embedded parts; --distributed runs its own below
var results = new Results { LoadAtStart = Results.LoadAverage(), Distributed = distributed };
var total = Stopwatch.StartNew();
static void Log(string line) => Console.Error.WriteLine($"[bench {DateTime.Now:HH:mm:ss}] {line}");

try
{
    if (distributed)
    {
        await DistributedBenchmarks.RunAsync(results, only.Contains, Log);
        if (only.Contains("scale"))
        {
            var hostDll = HostBuild.EnsureBuilt(Log);
            var hosts = parsed.GetValue(scaleHosts) ?? 10_000;
            results.DistributedScale = await DistributedScaleBenchmarks.RunAsync(hostDll, hosts, parsed.GetValue(scaleInstances) ?? 100_000,
                Math.Min(hosts, parsed.GetValue(scaleHostsPerCompute) ?? 1_000), Log);
            results.Queries.Add(results.DistributedScale.Queries);
        }
    }

    if (Runs("startup"))
    {
        var hostDll = HostBuild.EnsureBuilt(Log);
        var starts = new List<double>();
        for (var i = 0; i < 3; i++)
        {
            var r = await ChildHostBenchmarks.RunAsync(hostDll, measureMemory: i == 0);
            Log($"host start {i + 1}: ready in {r.StartupMs:0} ms" + (i == 0 ? $", RSS {r.RssMb:0.0} MB after 10 boots + 10 live migrations (peak {r.PeakRssMb:0.0} MB, {r.RssAfterStartMb:0.0} MB at ready)" : ""));
            starts.Add(r.StartupMs);
            if (i == 0)
            {
                results.RssMb = r.RssMb;
                results.PeakRssMb = r.PeakRssMb;
                results.RssAtReadyMb = r.RssAfterStartMb;
            }
        }
        results.StartupMs = Stats.Percentile(starts, 50);
        results.StartupRuns = starts;
    }

    if (Runs("live") || Runs("cold"))
    {
        await using var ferry = await InProcessFerry.StartAsync(hosts: 3, maxConcurrentLiveMigrations: 1);
        if (Runs("live"))
        {
            var samples = await MigrationBenchmarks.LiveMigrationLatencyAsync(ferry, warmup: 20, measured: 100, budget: TimeSpan.FromSeconds(40));
            results.Live = samples;
            Log($"live migration → ACTIVE: n={samples.Count} p50 {Stats.Percentile(samples, 50):0.00} ms p90 {Stats.Percentile(samples, 90):0.00} ms");
        }
        if (Runs("cold"))
        {
            var samples = await MigrationBenchmarks.ColdMigrateConfirmLatencyAsync(ferry, warmup: 20, measured: 100, budget: TimeSpan.FromSeconds(40));
            results.Cold = samples;
            Log($"cold migrate + confirm: n={samples.Count} p50 {Stats.Percentile(samples, 50):0.00} ms p90 {Stats.Percentile(samples, 90):0.00} ms");
        }
    }

    if (Runs("concurrent"))
    {
        await using (var ferry = await InProcessFerry.StartAsync(hosts: 3, maxConcurrentLiveMigrations: 1))
        {
            var rounds = await MigrationBenchmarks.ConcurrentLiveMigrationsAsync(ferry, servers: 20, rounds: 10, limit: TimeSpan.FromSeconds(30));
            results.Concurrent3 = rounds;
            Log($"20 concurrent live migrations, 3 hosts, 1 outgoing per host: {string.Join(", ", rounds.Select(r => $"{r.PerSecond:0.0}/s ({r.WallMs:0} ms)"))}");
        }
    }
    if (Runs("concurrent") || Runs("concurrent240"))
    {
        await using (var ferry = await InProcessFerry.StartAsync(hosts: 20, maxConcurrentLiveMigrations: Results.RaisedLimit))
        {
            var rounds = await MigrationBenchmarks.ConcurrentLiveMigrationsAsync(ferry, servers: Results.Servers20, rounds: 3, limit: TimeSpan.FromSeconds(60));
            results.Concurrent20 = rounds;
            Log($"{Results.Servers20} concurrent live migrations, 20 hosts, limit {Results.RaisedLimit}: {string.Join(", ", rounds.Select(r => $"{r.PerSecond:0.0}/s ({r.WallMs:0} ms)"))}");
        }
    }

    if (Runs("scale"))
    {
        var hostDll = HostBuild.EnsureBuilt(Log);
        results.Scale = await ScaleBenchmarks.RunAsync(hostDll, parsed.GetValue(scaleHosts) ?? 10_000, parsed.GetValue(scaleInstances) ?? 100_000, Log);
    }

    if (Runs("scheduler"))
    {
        var (samples, setupMs) = await SchedulerBenchmarks.SelectDestinationsAsync(hosts: 1_000, instances: 10_000, warmup: 300, measured: 3_000, budget: TimeSpan.FromSeconds(60));
        results.Select = samples;
        Log($"select_destinations, 1000 hosts / 10000 instances (setup {setupMs:0} ms): n={samples.Count} p50 {Stats.Percentile(samples, 50):0.000} ms p99 {Stats.Percentile(samples, 99):0.000} ms");
    }

    if (Runs("queries"))
    {
        var hosts = parsed.GetValue(queryHosts) ?? 10_000;
        var instances = parsed.GetValue(queryInstances) ?? 100_000;
        results.Queries.Add(parsed.GetValue(queryDatabase) is { } postgres
            ? await QueryBenchmarks.RunAsync(hosts, instances, postgres, "postgresql", Log)
            : await QueryBenchmarks.RunAsync(hosts, instances, database: null, "sqlite", Log));
    }
}
catch (Exception ex)
{
    Log($"FAILED: {ex}");
    return 1;
}

results.LoadAtEnd = Results.LoadAverage();
Log($"done in {total.Elapsed.TotalSeconds:0} s; load average {results.LoadAtStart} at start, {results.LoadAtEnd} at end");
Console.Out.Write(json ? results.ToJson() : results.ToTable());
return 0; // a missed target is a finding reported in the output, not a harness failure

static Option<int?> PositiveInt(string name, string description) => new(name)
{
    Description = description,
    HelpName = "N",
    CustomParser = r =>
    {
        var text = r.Tokens.Count == 1 ? r.Tokens[0].Value : "";
        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) || value < 1)
        {
            r.AddError($"{name}: '{text}' is not a whole number of at least 1");
        }
        return value;
    },
};

/// <summary>The figures of one run, with Nova's and the targets beside them.</summary>
internal sealed class Results
{
    public const int RaisedLimit = 0; // 0 = unlimited outgoing live migrations per host
    public const int Servers20 = 240;

    // Real Nova 26.2.2, fake driver, same kind of 2-core machine (from the issue).
    private const double NovaLiveMs = 1360, NovaColdMs = 2030, NovaPerSecond = 0.7, NovaSelectMsHigh = 210, NovaRssMb = 1900;

    public List<double>? Live { get; set; }
    public List<double>? Cold { get; set; }
    public List<(double PerSecond, double WallMs)>? Concurrent3 { get; set; }
    public List<(double PerSecond, double WallMs)>? Concurrent20 { get; set; }
    public List<double>? Select { get; set; }
    public List<QueryFigures> Queries { get; } = [];
    public double StartupMs { get; set; } = double.NaN;
    public List<double> StartupRuns { get; set; } = [];
    public double RssMb { get; set; } = double.NaN;
    public double PeakRssMb { get; set; } = double.NaN;
    public double RssAtReadyMb { get; set; } = double.NaN;
    public ScaleBenchmarks.Result? Scale { get; set; }
    public DistributedScaleBenchmarks.Result? DistributedScale { get; set; }
    public string LoadAtStart { get; set; } = "";
    public string LoadAtEnd { get; set; } = "";

    /// <summary>Measured against `ferry distributed` rather than the embedded all-in-one.</summary>
    public bool Distributed { get; set; }

    /// <summary>Distributed: the Ferry processes' PSS summed (a shared page counted once over all of them).</summary>
    public double PssMb { get; set; } = double.NaN;

    public double PostgresRssMb { get; set; } = double.NaN;
    public double RabbitMqRssMb { get; set; } = double.NaN;
    public int FerryProcesses { get; set; }

    /// <summary>Distributed: which ferry ran the processes, "native (path)" or "JIT (dotnet path)".</summary>
    public string FerryBinary { get; set; } = "";

    /// <summary>Why the 240-at-once figure is missing (a round that did not finish in time), or null.</summary>
    public string? Concurrent20Failure { get; set; }

    /// <summary>The 1, 5 and 15 minute load averages: on a shared 2-core machine they say how much to trust a run.</summary>
    public static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "?";
        }
    }

    private static double P(List<double>? s, double p) => s is null ? double.NaN : Stats.Percentile(s, p);
    private static double Median(List<(double PerSecond, double WallMs)>? r) => r is null ? double.NaN : Stats.Percentile([.. r.Select(x => x.PerSecond)], 50);

    private IEnumerable<(string Key, string Label, double Value, string Unit, double Target, bool AtMost, double Nova, string NovaText)> Rows()
    {
        if (Distributed)
        {
            foreach (var row in DistributedRows())
            {
                yield return row;
            }
            yield break;
        }
        yield return ("live_migration_p50_ms", "live migration API → ACTIVE on destination, p50", P(Live, 50), "ms", 30, true, NovaLiveMs, "1.36 s (median)");
        yield return ("cold_migrate_confirm_p50_ms", "cold migrate + confirm, p50", P(Cold, 50), "ms", 50, true, NovaColdMs, "2.03 s (median)");
        yield return ("concurrent_live_migrations_per_s", "20 concurrent live migrations, 3 hosts, 1 outgoing/host", Median(Concurrent3), "/s", 20 * NovaPerSecond, false, NovaPerSecond, "~0.7/s");
        yield return ("concurrent_live_migrations_per_s_20_hosts", $"{Servers20} concurrent live migrations, 20 hosts, limit raised", Median(Concurrent20), "/s", 100, false, double.NaN, "—");
        yield return ("select_destinations_p99_ms_1000_hosts", "select_destinations p99, 1,000 hosts / 10,000 instances", P(Select, 99), "ms", 5, true, NovaSelectMsHigh, "0.10–0.21 s at 3–103 nodes");
        yield return ("startup_ms", "all-in-one start → 3 hypervisors listed (median of 3)", StartupMs, "ms", 3000, true, double.NaN, "—");
        yield return ("rss_mb_all_in_one", "RSS of the all-in-one, 3 hosts, after 10 boots + 10 live migrations", RssMb, "MB", 150, true, NovaRssMb, "~1.9 GB");
        var scale = Scale is { } sc ? $"{sc.Hosts:N0} hosts / {sc.Instances:N0} instances" : "";
        yield return ("scale_restart_ready_ms", $"all-in-one restart → ready, {scale}", Scale?.RestartReadyMs ?? double.NaN, "ms", 30_000, true, double.NaN, "—");
        yield return ("scale_fresh_start_ms", $"all-in-one start, empty data dir, {scale} hosts", Scale?.FreshStartMs ?? double.NaN, "ms", 30_000, true, double.NaN, "—");
        yield return ("scale_rss_mb", $"RSS of the restarted all-in-one, {scale}", Scale?.RssMb ?? double.NaN, "MB", double.NaN, true, double.NaN, "—");
        yield return ("scale_heartbeat_busiest_second_share", "share of heartbeats in the busiest second of the interval", (Scale?.HeartbeatMaxSecondShare ?? double.NaN) * 100, "%", 20, true, double.NaN, "—");
        var moves = Scale?.ConcurrentLiveMigrations;
        yield return ("scale_concurrent_live_migrations_not_completed", $"{moves?.Moves ?? 200} live migrations at once at that size, not completed", moves?.NotCompleted ?? double.NaN, "", 0, true, double.NaN, "—");
        yield return ("scale_concurrent_live_migrations_per_s", $"the same, moves per second until the last was final", moves is { } m ? m.Moves / (m.WallMs / 1000) : double.NaN, "/s", double.NaN, false, double.NaN, "—");
    }

    // The issue's targets for the distributed shape (Nova 26.2 was measured distributed: PostgreSQL/MySQL, RabbitMQ, processes).
    private IEnumerable<(string Key, string Label, double Value, string Unit, double Target, bool AtMost, double Nova, string NovaText)> DistributedRows()
    {
        yield return ("live_migration_p50_ms", "live migration API → ACTIVE on destination, p50", P(Live, 50), "ms", 50, true, NovaLiveMs, "1.36 s (median)");
        yield return ("cold_migrate_confirm_p50_ms", "cold migrate + confirm, p50", P(Cold, 50), "ms", 80, true, NovaColdMs, "2.03 s (median)");
        yield return ("concurrent_live_migrations_per_s", "20 concurrent live migrations, 3 hosts, 1 outgoing/host", Median(Concurrent3), "/s", 20 * NovaPerSecond, false, NovaPerSecond, "~0.7/s");
        yield return ("concurrent_live_migrations_per_s_20_hosts", $"{Servers20} concurrent live migrations, 20 hosts, limit raised", Median(Concurrent20), "/s", 100, false, double.NaN, "—");
        yield return ("startup_ms", "distributed start (fresh dir: initdb, RabbitMQ, db sync) → 3 hypervisors", StartupMs, "ms", double.NaN, true, double.NaN, "—");
        yield return ("rss_mb_ferry_processes", $"all {FerryProcesses} Ferry processes, sum of VmRSS after the run", RssMb, "MB", 400, true, NovaRssMb, "~1.9 GB");
        yield return ("pss_mb_ferry_processes", "the same, sum of PSS (shared runtime pages counted once)", PssMb, "MB", double.NaN, true, double.NaN, "—");
        yield return ("rss_mb_postgresql", "PostgreSQL (postmaster and its children), VmRSS", PostgresRssMb, "MB", double.NaN, true, double.NaN, "counted apart");
        yield return ("rss_mb_rabbitmq", "RabbitMQ (Erlang VM and its children), VmRSS", RabbitMqRssMb, "MB", double.NaN, true, double.NaN, "counted apart");
        if (DistributedScale is { } ds)
        {
            var size = $"{ds.Hosts:N0} hosts / {ds.Instances:N0} instances, {ds.ComputeProcesses} compute processes";
            yield return ("scale_restart_ready_ms", $"distributed start → ready, {size}", ds.RestartReadyMs, "ms", 30_000, true, double.NaN, "—");
            yield return ("scale_fresh_start_ms", $"distributed start, empty database, {ds.Hosts:N0} hosts → all listed", ds.FreshStartMs, "ms", 30_000, true, double.NaN, "—");
            yield return ("scale_rss_mb", $"all Ferry processes at that size, sum of VmRSS", ds.RssMb, "MB", double.NaN, true, double.NaN, "—");
            yield return ("scale_heartbeat_busiest_second_share", "share of heartbeats in the busiest second of the interval", ds.HeartbeatMaxSecondShare * 100, "%", 20, true, double.NaN, "—");
            var m = ds.ConcurrentLiveMigrations;
            yield return ("scale_concurrent_live_migrations_not_completed", $"{m.Moves} live migrations at once at that size, not completed", m.NotCompleted, "", 0, true, double.NaN, "—");
            yield return ("scale_concurrent_live_migrations_per_s", "the same, moves per second until the last was final", m.Moves / (m.WallMs / 1000), "/s", double.NaN, false, double.NaN, "—");
        }
    }

    public List<string> Missed() =>
    [
        .. Rows().Where(r => !double.IsNaN(r.Value) && (r.AtMost ? r.Value > r.Target : r.Value < r.Target)).Select(r => r.Key),
        .. Queries.SelectMany(q => q.Rows()).Where(r => Stats.Percentile(r.Samples, 99) > r.Target).Select(r => r.Key),
    ];

    public string ToTable()
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Ferry benchmarks{(Distributed ? " (distributed shape: ferry distributed, PostgreSQL + RabbitMQ)" : "")}, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, .NET {Environment.Version}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"load average (1/5/15 min): {LoadAtStart} at start, {LoadAtEnd} at end");
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"{"figure",-72} {"Ferry",12} {"target",10} {"Nova 26.2.2",28} {"vs Nova",9} {"met",4}");
        foreach (var r in Rows())
        {
            var target = double.IsNaN(r.Target) ? "—" : (r.AtMost ? "≤ " : "≥ ") + F(r.Target);
            var ratio = double.IsNaN(r.Nova) || double.IsNaN(r.Value) ? "—" : (r.AtMost ? r.Nova / r.Value : r.Value / r.Nova).ToString("0.#", CultureInfo.InvariantCulture) + "×";
            var met = double.IsNaN(r.Value) || double.IsNaN(r.Target) ? "—" : Missed().Contains(r.Key) ? "NO" : "yes";
            sb.AppendLine(CultureInfo.InvariantCulture, $"{r.Label,-72} {F(r.Value) + " " + r.Unit,12} {target,10} {r.NovaText,28} {ratio,9} {met,4}");
        }
        sb.AppendLine();
        if (Live is not null)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"live migration: n={Live.Count}, p50 {F(P(Live, 50))} ms, p90 {F(P(Live, 90))} ms, max {F(Live.Max())} ms");
        }
        if (Cold is not null)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"cold migrate + confirm: n={Cold.Count}, p50 {F(P(Cold, 50))} ms, p90 {F(P(Cold, 90))} ms, max {F(Cold.Max())} ms");
        }
        if (Concurrent3 is not null)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"20 live migrations / 3 hosts / limit 1, per round: {string.Join(", ", Concurrent3.Select(r => $"{F(r.PerSecond)}/s in {F(r.WallMs)} ms"))}");
        }
        if (Concurrent20 is not null)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"{Servers20} live migrations / 20 hosts / limit {RaisedLimit} (unlimited), per round: {string.Join(", ", Concurrent20.Select(r => $"{F(r.PerSecond)}/s in {F(r.WallMs)} ms"))}");
        }
        if (Select is not null)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"select_destinations: n={Select.Count}, p50 {F(P(Select, 50))} ms, p90 {F(P(Select, 90))} ms, p99 {F(P(Select, 99))} ms, max {F(Select.Max())} ms");
        }
        if (Concurrent20Failure is not null)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"{Servers20} live migrations / 20 hosts: not measured: {Concurrent20Failure}");
        }
        if (Distributed && FerryProcesses > 0)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"memory: {FerryProcesses} Ferry processes ({FerryBinary}), VmRSS {F(RssAtReadyMb)} MB at ready, {F(RssMb)} MB after the run (PSS {F(PssMb)} MB, peaks summed {F(PeakRssMb)} MB); PostgreSQL {F(PostgresRssMb)} MB, RabbitMQ {F(RabbitMqRssMb)} MB");
        }
        else if (StartupRuns.Count > 0)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"start-up runs: {string.Join(", ", StartupRuns.Select(s => F(s) + " ms"))}; RSS at ready {F(RssAtReadyMb)} MB, after work {F(RssMb)} MB, peak (VmHWM) {F(PeakRssMb)} MB");
        }
        if (Scale is { } s)
        {
            var moves = s.ConcurrentLiveMigrations is { } m ? $"; {m.Moves} live migrations at once: {m.Completed} completed, {m.NotCompleted} not, in {F(m.WallMs)} ms" : "";
            sb.AppendLine(CultureInfo.InvariantCulture, $"scale: {s.Hosts} hosts / {s.Instances} instances: fresh start {F(s.FreshStartMs)} ms, seeding {F(s.SeedMs)} ms, " +
                $"restart ready {F(s.RestartReadyMs)} ms ({F(s.RestartWallMs)} ms from the process start), RSS {F(s.RssMb)} MB (peak {F(s.PeakRssMb)} MB), " +
                $"heartbeats over {s.HeartbeatSecondsUsed} of {F(s.ReportIntervalSeconds)} s, busiest second {F(s.HeartbeatMaxSecondShare * 100)} %{moves}");
        }
        if (DistributedScale is { } ds)
        {
            var m = ds.ConcurrentLiveMigrations;
            sb.AppendLine(CultureInfo.InvariantCulture, $"scale (distributed): {ds.Hosts} hosts in {ds.ComputeProcesses} compute processes of {ds.HostsPerCompute} / {ds.Instances} instances: " +
                $"start on an empty database {F(ds.FreshStartMs)} ms, seeding {F(ds.SeedMs)} ms, start with the instances {F(ds.RestartReadyMs)} ms, Ferry processes VmRSS {F(ds.RssMb)} MB, " +
                $"PostgreSQL {F(ds.PostgresRssMb)} MB, RabbitMQ {F(ds.RabbitMqRssMb)} MB, heartbeats over {ds.HeartbeatSecondsUsed} of {F(ds.ReportIntervalSeconds)} s, " +
                $"busiest second {F(ds.HeartbeatMaxSecondShare * 100)} %; {m.Moves} live migrations at once: {m.Completed} completed, {m.NotCompleted} not, in {F(m.WallMs)} ms; " +
                $"steady state, % of one core: {string.Join(", ", ds.SteadyCpuPercent.Select(r => $"{r.Key} {F(r.Value)}"))}");
        }
        foreach (var queries in Queries)
        {
            sb.Append(queries.ToTable());
        }
        var missed = Missed();
        sb.AppendLine(missed.Count == 0 ? "all measured targets met" : $"targets missed: {string.Join(", ", missed)}");
        return sb.ToString();
    }

    public string ToJson()
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            foreach (var r in Rows())
            {
                Number(w, r.Key, r.Value);
            }
            Number(w, "live_migration_p90_ms", P(Live, 90));
            Number(w, "cold_migrate_confirm_p90_ms", P(Cold, 90));
            Number(w, "select_destinations_p50_ms_1000_hosts", P(Select, 50));
            Number(w, "rss_mb_all_in_one_peak", PeakRssMb);
            w.WriteNumber("live_migration_samples", Live?.Count ?? 0);
            w.WriteNumber("cold_migrate_confirm_samples", Cold?.Count ?? 0);
            w.WriteNumber("select_destinations_samples", Select?.Count ?? 0);
            w.WriteNumber("concurrent_live_migrations_20_hosts_servers", Servers20);
            w.WriteString("shape", Distributed ? "distributed" : "embedded");
            if (Distributed)
            {
                w.WriteString("ferry_binary", FerryBinary);
            }
            if (Concurrent20Failure is not null)
            {
                w.WriteString("concurrent_live_migrations_20_hosts_failure", Concurrent20Failure);
            }
            w.WriteNumber("cores", Environment.ProcessorCount);
            w.WriteString("load_average_start", LoadAtStart);
            w.WriteString("load_average_end", LoadAtEnd);
            w.WriteString("date", DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture));
            foreach (var queries in Queries)
            {
                foreach (var (key, _, samples, _) in queries.Rows())
                {
                    Number(w, key, Stats.Percentile(samples, 99));
                }
            }
            w.WriteStartArray("targets_missed");
            foreach (var key in Missed())
            {
                w.WriteStringValue(key);
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray()) + Environment.NewLine;
    }

    private static void Number(Utf8JsonWriter w, string key, double value)
    {
        if (double.IsNaN(value))
        {
            w.WriteNull(key);
        }
        else
        {
            w.WriteNumber(key, Math.Round(value, 3));
        }
    }

    private static string F(double value) => double.IsNaN(value) ? "—" : value switch
    {
        >= 100 => value.ToString("0", CultureInfo.InvariantCulture),
        >= 10 => value.ToString("0.0", CultureInfo.InvariantCulture),
        _ => value.ToString("0.00", CultureInfo.InvariantCulture),
    };
}
