using System.Globalization;

namespace Ferry.Benchmarks;

/// <summary>
/// `./ferry bench --distributed`: the move figures of the embedded run against `ferry distributed` (PostgreSQL + RabbitMQ,
/// every role its own process), plus the resident memory of every Ferry process after the run, PostgreSQL and RabbitMQ
/// on rows of their own. One 3-host start serves start-up, latency, the 20-at-once round and memory; the 240-at-once
/// round runs on a second start with 20 hosts.
/// </summary>
internal static class DistributedBenchmarks
{
    public static async Task RunAsync(Results results, Func<string, bool> runs, Action<string> log)
    {
        var hostDll = HostBuild.EnsureBuilt(log);
        results.FerryBinary = HostBuild.Describe(hostDll);
        log($"ferry distributed runs {results.FerryBinary}");
        if (runs("startup") || runs("live") || runs("cold") || runs("concurrent"))
        {
            await using var ferry = await DistributedFerry.StartAsync(hostDll, hosts: 3, maxConcurrentLiveMigrations: 1, log);
            results.StartupMs = ferry.StartupMs;
            results.StartupRuns = [ferry.StartupMs];
            results.RssAtReadyMb = ferry.Children().Sum(c => ProcessMemory.StatusMb(c.Pid, "VmRSS"));
            LogEachProcess(ferry, "at ready", log);
            if (runs("live"))
            {
                var samples = await MigrationBenchmarks.LiveMigrationLatencyAsync(ferry, warmup: 20, measured: 100, budget: TimeSpan.FromSeconds(60));
                results.Live = samples;
                log($"live migration → ACTIVE: n={samples.Count} p50 {Stats.Percentile(samples, 50):0.00} ms p90 {Stats.Percentile(samples, 90):0.00} ms");
            }
            if (runs("cold"))
            {
                var samples = await MigrationBenchmarks.ColdMigrateConfirmLatencyAsync(ferry, warmup: 20, measured: 100, budget: TimeSpan.FromSeconds(60));
                results.Cold = samples;
                log($"cold migrate + confirm: n={samples.Count} p50 {Stats.Percentile(samples, 50):0.00} ms p90 {Stats.Percentile(samples, 90):0.00} ms");
            }
            if (runs("concurrent"))
            {
                var rounds = await MigrationBenchmarks.ConcurrentLiveMigrationsAsync(ferry, servers: 20, rounds: 10, limit: TimeSpan.FromSeconds(60));
                results.Concurrent3 = rounds;
                log($"20 concurrent live migrations, 3 hosts, 1 outgoing per host: {string.Join(", ", rounds.Select(r => $"{r.PerSecond:0.0}/s ({r.WallMs:0} ms)"))}");
            }
            MeasureMemory(ferry, results, log);
        }
        if (runs("concurrent") || runs("concurrent240"))
        {
            // 20 hosts are 26 processes on this machine: a round that does not finish is reported, not fatal to the other figures.
            await using var ferry = await DistributedFerry.StartAsync(hostDll, hosts: 20, maxConcurrentLiveMigrations: Results.RaisedLimit, log);
            try
            {
                var rounds = await MigrationBenchmarks.ConcurrentLiveMigrationsAsync(ferry, servers: Results.Servers20, rounds: 3, limit: TimeSpan.FromSeconds(120));
                results.Concurrent20 = rounds;
                log($"{Results.Servers20} concurrent live migrations, 20 hosts, limit {Results.RaisedLimit}: {string.Join(", ", rounds.Select(r => $"{r.PerSecond:0.0}/s ({r.WallMs:0} ms)"))}");
            }
            catch (TimeoutException ex)
            {
                results.Concurrent20Failure = $"{ex.Message} (every process's log kept in {ferry.KeepLogs()})";
                log($"{Results.Servers20} concurrent live migrations, 20 hosts: NOT MEASURED: {ex.Message}");
            }
        }
    }

    /// <summary>Every Ferry process's VmRSS and PSS summed, and PostgreSQL's and RabbitMQ's process trees on their own.</summary>
    private static void MeasureMemory(DistributedFerry ferry, Results results, Action<string> log)
    {
        var children = ferry.Children();
        LogEachProcess(ferry, "after the run", log);
        results.RssMb = children.Sum(c => ProcessMemory.StatusMb(c.Pid, "VmRSS"));
        results.PssMb = children.Sum(c => ProcessMemory.PssMb(c.Pid));
        results.PeakRssMb = children.Sum(c => ProcessMemory.StatusMb(c.Pid, "VmHWM"));
        results.FerryProcesses = children.Count;
        var postgres = ferry.PostgresProcesses();
        var rabbitMq = ferry.RabbitMqProcesses();
        results.PostgresRssMb = postgres.Sum(pid => ProcessMemory.StatusMb(pid, "VmRSS"));
        results.RabbitMqRssMb = rabbitMq.Sum(pid => ProcessMemory.StatusMb(pid, "VmRSS"));
        log($"memory after the run: {children.Count} Ferry processes VmRSS {results.RssMb:0} MB (PSS {results.PssMb:0} MB, peak {results.PeakRssMb:0} MB); " +
            $"PostgreSQL {postgres.Count} processes {results.PostgresRssMb:0} MB; RabbitMQ {rabbitMq.Count} processes {results.RabbitMqRssMb:0} MB");
    }

    /// <summary>
    /// Each Ferry process's VmRSS, its anonymous and file parts, PSS, peak and threads. With FERRY_BENCH_MEMORY_DIR set, each
    /// one's <c>/proc</c> status and smaps are copied there too (per mapping: GC regions, malloc arenas, stacks, the binary), and
    /// the file offsets of its executable's resident pages (<c>executable-pages</c>).
    /// </summary>
    private static void LogEachProcess(DistributedFerry ferry, string when, Action<string> log)
    {
        var copyTo = Environment.GetEnvironmentVariable("FERRY_BENCH_MEMORY_DIR");
        log($"memory {when}:");
        foreach (var (name, pid) in ferry.Children())
        {
            log($"  {name,-12} VmRSS {ProcessMemory.StatusMb(pid, "VmRSS"),6:0.0} MB  anon {ProcessMemory.StatusMb(pid, "RssAnon"),5:0.0} MB  " +
                $"file {ProcessMemory.StatusMb(pid, "RssFile"),5:0.0} MB  PSS {ProcessMemory.PssMb(pid),6:0.0} MB  " +
                $"peak (VmHWM) {ProcessMemory.StatusMb(pid, "VmHWM"),6:0.0} MB  threads {ProcessMemory.StatusCount(pid, "Threads"),4}");
            if (!string.IsNullOrEmpty(copyTo))
            {
                var prefix = Path.Combine(copyTo, $"{when.Replace(' ', '-')}.{name}.{pid}");
                Directory.CreateDirectory(copyTo);
                foreach (var file in new[] { "status", "smaps" })
                {
                    try
                    {
                        File.WriteAllText($"{prefix}.{file}", File.ReadAllText($"/proc/{pid}/{file}"));
                    }
                    catch (IOException)
                    {
                        // The process ended: nothing to copy.
                    }
                }
                File.WriteAllLines($"{prefix}.executable-pages",
                    ProcessMemory.ResidentExecutablePages(pid).Select(offset => offset.ToString("x", CultureInfo.InvariantCulture)));
            }
        }
    }
}
