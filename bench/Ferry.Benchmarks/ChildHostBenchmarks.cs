using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Ferry.Benchmarks;

/// <summary>
/// The built Release host as `./ferry up` runs it (less the build): time until the API answers with three
/// hypervisors, then its resident memory after booting 10 servers and live-migrating each once.
/// </summary>
internal static partial class ChildHostBenchmarks
{
    private static readonly TimeSpan s_startLimit = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan s_workLimit = TimeSpan.FromSeconds(60);

    public sealed record Result(double StartupMs, double RssMb, double PeakRssMb, double RssAfterStartMb);

    /// <summary>Starts the host once; measures start-up, and when <paramref name="measureMemory"/> the memory after work.</summary>
    public static async Task<Result> RunAsync(string hostDll, bool measureMemory)
    {
        var dataDirectory = Directory.CreateTempSubdirectory("ferry-bench-host-").FullName;
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { hostDll, "all-in-one", "--data-dir", dataDirectory, "--compute-port", "0", "--placement-port", "0", "--image-port", "0", "--network-port", "0", "--volume-port", "0", "--auth", "noauth2" })
        {
            start.ArgumentList.Add(arg);
        }
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";

        var t0 = Stopwatch.GetTimestamp();
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start the host");
        // Every port 0: the host binds free ports itself and names them in its ready line.
        var computeUrl = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null && ReadyLine().Match(e.Data) is { Success: true } ready)
            {
                computeUrl.TrySetResult(ready.Groups["compute"].Value);
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
        HttpClient? client = null;
        try
        {
            while (true)
            {
                if (process.HasExited)
                {
                    throw new InvalidOperationException($"the host exited with {process.ExitCode} before it was ready");
                }
                if (Stopwatch.GetElapsedTime(t0) > s_startLimit)
                {
                    throw new TimeoutException($"the host was not ready in {s_startLimit.TotalSeconds} s");
                }
                if (computeUrl.Task.IsCompleted)
                {
                    client ??= InProcessFerry.Client(computeUrl.Task.Result);
                    client.Timeout = TimeSpan.FromSeconds(10);
                    if (await HypervisorCountAsync(client) >= 3)
                    {
                        break;
                    }
                }
                await Task.Delay(5);
            }
            var http = client!;
            var startupMs = Stats.Ms(Stopwatch.GetTimestamp() - t0);
            var rssAfterStart = ReadStatusKb(process.Id, "VmRSS") / 1024.0;
            if (!measureMemory)
            {
                return new Result(startupMs, double.NaN, double.NaN, rssAfterStart);
            }

            var hosts = new[] { "compute1", "compute2", "compute3" };
            var ids = new List<(string Id, string Host)>();
            for (var i = 0; i < 10; i++)
            {
                var host = hosts[i % 3];
                ids.Add((await InProcessFerry.PostBootAsync(http, $"rss-{i}", host), host));
            }
            await WaitAllAsync(http, ids, "ACTIVE");
            var moved = new List<(string Id, string Host)>();
            foreach (var (id, host) in ids)
            {
                var destination = hosts[(Array.IndexOf(hosts, host) + 1) % 3];
                using var response = await http.SendAsync(InProcessFerry.Post($"servers/{id}/action", InProcessFerry.LiveMigrateBody(destination)));
                if (response.StatusCode != HttpStatusCode.Accepted)
                {
                    throw new InvalidOperationException($"live migrate {id}: {(int)response.StatusCode}");
                }
                moved.Add((id, destination));
            }
            await WaitAllAsync(http, moved, "ACTIVE");
            return new Result(startupMs, ReadStatusKb(process.Id, "VmRSS") / 1024.0, ReadStatusKb(process.Id, "VmHWM") / 1024.0, rssAfterStart);
        }
        finally
        {
            client?.Dispose();
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
            await process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token);
            try
            {
                Directory.Delete(dataDirectory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    [GeneratedRegex(@"Ferry is ready in \d+ ms: compute API (?<compute>http://[^\s,]+)/v2\.1,")]
    private static partial Regex ReadyLine();

    private static async Task<int> HypervisorCountAsync(HttpClient http)
    {
        try
        {
            using var response = await http.GetAsync("os-hypervisors");
            if (response.StatusCode != HttpStatusCode.OK)
            {
                return 0;
            }
            return JsonNode.Parse(await response.Content.ReadAsStringAsync())?["hypervisors"]?.AsArray().Count ?? 0;
        }
        catch (HttpRequestException)
        {
            return 0; // not listening yet
        }
    }

    /// <summary>Waits (bounded) until every server is in <paramref name="status"/> on its host with no task.</summary>
    private static async Task WaitAllAsync(HttpClient http, List<(string Id, string Host)> servers, string status)
    {
        var started = Stopwatch.GetTimestamp();
        var pending = new List<(string Id, string Host)>(servers);
        while (pending.Count > 0)
        {
            if (Stopwatch.GetElapsedTime(started) > s_workLimit)
            {
                throw new TimeoutException($"{pending.Count} servers not {status} on their hosts after {s_workLimit.TotalSeconds} s");
            }
            var (id, host) = pending[^1];
            var server = JsonNode.Parse(await http.GetStringAsync($"servers/{id}"))!["server"]!;
            if (server["status"]?.GetValue<string>() == status
                && server["OS-EXT-SRV-ATTR:host"]?.GetValue<string>() == host
                && server["OS-EXT-STS:task_state"]?.GetValue<string>() is null)
            {
                pending.RemoveAt(pending.Count - 1);
                continue;
            }
            await Task.Delay(20);
        }
    }

    private static long ReadStatusKb(int pid, string field)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
            {
                return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
            }
        }
        throw new InvalidOperationException($"no {field} in /proc/{pid}/status");
    }
}
