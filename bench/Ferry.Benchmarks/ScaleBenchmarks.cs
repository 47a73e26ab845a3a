using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Ferry.Host;
using Microsoft.Extensions.Logging;

namespace Ferry.Benchmarks;

/// <summary>
/// `./ferry bench --only scale`: an all-in-one of <c>hosts</c> fake hosts started on an empty data directory (in this
/// process), <c>instances</c> instances seeded into it (<see cref="ScaleWorld"/>), then the built host started again on
/// that data directory as `./ferry up` runs it: its "Ferry is ready" time (start-up recovery and power sync of every
/// host included), its resident memory, and how its compute services' heartbeats spread over one report interval.
/// </summary>
internal static partial class ScaleBenchmarks
{
    private static readonly TimeSpan s_restartLimit = TimeSpan.FromMinutes(3);

    /// <summary>Live migrations started at once on the restarted cloud (issue 10: 200 at that size, no error).</summary>
    private const int ConcurrentMoves = 200;

    public sealed record Result(int Hosts, int Instances, double FreshStartMs, double SeedMs, double RestartReadyMs, double RestartWallMs,
        double RssMb, double PeakRssMb, double HeartbeatMaxSecondShare, int HeartbeatSecondsUsed, double ReportIntervalSeconds)
    {
        /// <summary>The <see cref="ConcurrentMoves"/> live migrations: how many completed, how many did not, and the time until the last was final.</summary>
        public (int Moves, int Completed, int NotCompleted, double WallMs)? ConcurrentLiveMigrations { get; init; }
    }

    public static async Task<Result> RunAsync(string hostDll, int hosts, int instances, Action<string> log)
    {
        var dataDirectory = Directory.CreateTempSubdirectory("ferry-bench-scale-").FullName;
        try
        {
            var options = new FerryHostOptions
            {
                DataDirectory = dataDirectory,
                ComputeApiPort = 0,
                PlacementPort = 0,
                IdentityPort = 0,
                ImagePort = 0,
                NetworkPort = 0,
                VolumePort = 0,
                Hosts = hosts,
                Auth = "noauth2",
            };
            double freshMs, seedMs;
            await using (var ferry = AllInOne.Build(options, logging => logging.ClearProviders().SetMinimumLevel(LogLevel.None)))
            {
                var t0 = Stopwatch.GetTimestamp();
                await ferry.StartAsync(CancellationToken.None);
                freshMs = Stats.Ms(Stopwatch.GetTimestamp() - t0);
                log($"scale: {hosts} hosts started on an empty data directory in {freshMs:0} ms (in process)");
                var seeded = await ScaleWorld.SeedAsync(ferry, instances, CancellationToken.None);
                seedMs = seeded.Elapsed.TotalMilliseconds;
                log($"scale: {instances} instances seeded in {seedMs:0} ms");
            }
            return await RestartAsync(hostDll, dataDirectory, hosts, instances, freshMs, seedMs, options.ReportInterval, log);
        }
        finally
        {
            try
            {
                // FERRY_BENCH_KEEP_DATA=1 keeps the seeded data directory, to time restarts of other builds on the same 100,000 instances.
                if (Environment.GetEnvironmentVariable("FERRY_BENCH_KEEP_DATA") == "1")
                {
                    log($"scale: data directory kept: {dataDirectory}");
                }
                else
                {
                    Directory.Delete(dataDirectory, recursive: true);
                }
            }
            catch (IOException)
            {
            }
        }
    }

    private static async Task<Result> RestartAsync(string hostDll, string dataDirectory, int hosts, int instances, double freshMs, double seedMs,
        TimeSpan reportInterval, Action<string> log)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[]
        {
            hostDll, "all-in-one", "--hosts", hosts.ToString(CultureInfo.InvariantCulture), "--data-dir", dataDirectory, "--compute-port", "0",
            "--placement-port", "0", "--image-port", "0", "--network-port", "0", "--volume-port", "0", "--auth", "noauth2", "--log-level", "warning",
        })
        {
            start.ArgumentList.Add(arg);
        }
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        var t0 = Stopwatch.GetTimestamp();
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start the host");
        var ready = new TaskCompletionSource<(double Ms, string ComputeUrl)>(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null && ReadyLine().Match(e.Data) is { Success: true } m)
            {
                ready.TrySetResult((double.Parse(m.Groups["ms"].Value, CultureInfo.InvariantCulture), m.Groups["compute"].Value));
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                Console.Error.WriteLine($"  [host] {e.Data}");
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            var exited = process.WaitForExitAsync();
            var first = await Task.WhenAny(ready.Task, exited, Task.Delay(s_restartLimit));
            if (first != ready.Task)
            {
                throw new InvalidOperationException(first == exited ? $"the host exited with {process.ExitCode} before it was ready"
                    : $"the host was not ready in {s_restartLimit.TotalMinutes} min");
            }
            var wallMs = Stats.Ms(Stopwatch.GetTimestamp() - t0);
            var (readyMs, computeUrl) = ready.Task.Result;
            var readyAt = DateTimeOffset.UtcNow;
            log($"scale: restart with {instances} instances ready in {readyMs:0} ms ({wallMs:0} ms from the process start)");
            using var http = InProcessFerry.Client(computeUrl);
            http.Timeout = TimeSpan.FromSeconds(60);
            // Every host heartbeats once per interval at its own point of it: after one whole interval past ready, each
            // service's updated_at is a periodic heartbeat, not the start-up one.
            var heartbeats = await WaitForHeartbeatsAfterAsync(http, readyAt + reportInterval, hosts, TimeSpan.FromTicks(reportInterval.Ticks * 6));
            var seconds = heartbeats.GroupBy(t => t.ToUnixTimeSeconds() % (long)reportInterval.TotalSeconds).Select(g => g.Count()).ToList();
            var rssMb = ReadStatusKb(process.Id, "VmRSS") / 1024.0;
            var moves = await ConcurrentLiveMigrationsAsync(http, Math.Min(ConcurrentMoves, hosts / 2), log);
            var result = new Result(hosts, instances, freshMs, seedMs, readyMs, wallMs, rssMb,
                ReadStatusKb(process.Id, "VmHWM") / 1024.0, seconds.Max() / (double)heartbeats.Count, seconds.Count, reportInterval.TotalSeconds)
            {
                ConcurrentLiveMigrations = moves,
            };
            log($"scale: RSS {result.RssMb:0} MB (peak {result.PeakRssMb:0} MB); heartbeats over {seconds.Count} of {reportInterval.TotalSeconds:0} seconds, " +
                $"the busiest second {result.HeartbeatMaxSecondShare:P1}");
            return result;
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
            await process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token);
        }
    }

    /// <summary>
    /// Live-migrates <paramref name="moves"/> servers on as many different hosts at once, the scheduler choosing each
    /// destination among every host, and waits until each migration is final.
    /// </summary>
    internal static async Task<(int Moves, int Completed, int NotCompleted, double WallMs)> ConcurrentLiveMigrationsAsync(HttpClient http, int moves, Action<string> log)
    {
        // One server from each of `moves` hosts: a host's servers are neighbours in the list, so read pages until there are enough.
        var byHost = new Dictionary<string, string>(StringComparer.Ordinal);
        for (string? marker = null; byHost.Count < moves;)
        {
            var page = JsonNode.Parse(await http.GetStringAsync($"servers/detail?all_tenants=1&limit=1000{(marker is null ? "" : "&marker=" + marker)}"))!["servers"]!.AsArray();
            if (page.Count == 0)
            {
                break;
            }
            foreach (var server in page.Where(s => (string?)s!["status"] == "ACTIVE"))
            {
                byHost.TryAdd((string)server!["OS-EXT-SRV-ATTR:host"]!, (string)server["id"]!);
            }
            marker = (string)page[^1]!["id"]!;
        }
        var chosen = byHost.Values.Take(moves).ToList();
        var t0 = Stopwatch.GetTimestamp();
        await Task.WhenAll(chosen.Select(async id =>
        {
            using var response = await http.SendAsync(InProcessFerry.Post($"servers/{id}/action", """{"os-migrateLive": {"host": null, "block_migration": "auto"}}"""));
            if (response.StatusCode != HttpStatusCode.Accepted)
            {
                throw new InvalidOperationException($"live migration of {id}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            }
        }));
        var ids = chosen.ToHashSet(StringComparer.Ordinal);
        string[] finals = ["completed", "error", "failed", "cancelled"];
        while (true)
        {
            var migrations = JsonNode.Parse(await http.GetStringAsync("os-migrations?migration_type=live-migration&limit=1000"))!["migrations"]!.AsArray()
                .Where(m => ids.Contains((string)m!["instance_uuid"]!)).ToList();
            if (migrations.Count == chosen.Count && migrations.All(m => finals.Contains((string?)m!["status"])))
            {
                var wallMs = Stats.Ms(Stopwatch.GetTimestamp() - t0);
                var completed = migrations.Count(m => (string?)m!["status"] == "completed");
                log($"scale: {chosen.Count} live migrations at once: {completed} completed, {chosen.Count - completed} not, in {wallMs:0} ms");
                return (chosen.Count, completed, chosen.Count - completed, wallMs);
            }
            if (Stopwatch.GetElapsedTime(t0) > s_restartLimit)
            {
                throw new TimeoutException($"{chosen.Count} live migrations at once: not all final after {s_restartLimit.TotalMinutes} min");
            }
            await Task.Delay(200);
        }
    }

    /// <summary>Each compute service's last heartbeat, once every one of them is later than <paramref name="after"/>.</summary>
    internal static async Task<List<DateTimeOffset>> WaitForHeartbeatsAfterAsync(HttpClient http, DateTimeOffset after, int hosts, TimeSpan limit)
    {
        var started = Stopwatch.GetTimestamp();
        while (true)
        {
            using var response = await http.GetAsync("os-services?binary=nova-compute");
            if (response.StatusCode != HttpStatusCode.OK)
            {
                throw new InvalidOperationException($"os-services: {(int)response.StatusCode}");
            }
            var times = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["services"]!.AsArray()
                .Select(s => DateTimeOffset.Parse(s!["updated_at"]!.GetValue<string>() + "Z", CultureInfo.InvariantCulture)).ToList();
            if (times.Count >= hosts && times.All(t => t > after))
            {
                return times;
            }
            if (Stopwatch.GetElapsedTime(started) > limit)
            {
                throw new TimeoutException($"{times.Count(t => t <= after)} of {times.Count} compute services had not heartbeaten after {after:HH:mm:ss} in {limit.TotalSeconds} s");
            }
            await Task.Delay(500);
        }
    }

    [GeneratedRegex(@"Ferry is ready in (?<ms>\d+) ms: compute API (?<compute>http://[^\s,]+)/v2\.1,")]
    private static partial Regex ReadyLine();

    private static long ReadStatusKb(int pid, string field)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
            {
                return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            }
        }
        throw new InvalidOperationException($"no {field} in /proc/{pid}/status");
    }
}
