using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace Ferry.Benchmarks;

/// <summary>The control plane's queries at scale (issue 10 part 6): select_destinations, /os-hypervisors/detail, /servers/detail.</summary>
internal static class QueryBenchmarks
{
    public static async Task<QueryFigures> RunAsync(int hosts, int instances, string? database, string engine, Action<string> log)
    {
        await using var world = await QueryWorld.StartAsync(hosts, instances, database, log);
        log($"queries ({engine}): seeded {hosts} hosts / {instances} instances in {world.SeedMs / 1000:0.0} s");
        var figures = new QueryFigures(engine, hosts, instances, world.SeedMs);

        // select_destinations through the real scheduler and its database host-state source; each claim is released.
        var budget = TimeSpan.FromSeconds(60);
        var started = Stopwatch.GetTimestamp();
        for (var i = 0; i < 50 + 1000 && Stopwatch.GetElapsedTime(started) < budget; i++)
        {
            var spec = world.NextSpec();
            var t0 = Stopwatch.GetTimestamp();
            var selections = await world.Scheduler.SelectDestinationsAsync(spec, numAlternates: 2, CancellationToken.None);
            var t1 = Stopwatch.GetTimestamp();
            if (selections.Count != 3)
            {
                throw new InvalidOperationException($"expected a host and two alternates, got {selections.Count}");
            }
            world.Placement.DeleteAllocations(spec.InstanceUuid);
            if (i >= 50)
            {
                figures.Select.Add(Stats.Ms(t1 - t0));
            }
        }
        log($"select_destinations: n={figures.Select.Count} p50 {Stats.Percentile(figures.Select, 50):0.00} ms p99 {Stats.Percentile(figures.Select, 99):0.00} ms");

        // Every hypervisor at once (2.1, as `openstack hypervisor list --long` asks: no paging before 2.33).
        await TimeGetAsync(world.Http, "os-hypervisors/detail", "2.1", warmup: 2, measured: 20, figures.HypervisorsAll,
            json => Check(json, "hypervisors", hosts + 1));
        log($"GET /os-hypervisors/detail (2.1, all {hosts + 1}): p50 {Stats.Percentile(figures.HypervisorsAll, 50):0} ms p99 {Stats.Percentile(figures.HypervisorsAll, 99):0} ms");
        // One page of max_limit (2.53).
        await TimeGetAsync(world.Http, "os-hypervisors/detail", "2.53", warmup: 3, measured: 50, figures.HypervisorsPage,
            json => Check(json, "hypervisors", Math.Min(1000, hosts + 1)));
        log($"GET /os-hypervisors/detail (2.53, a page of 1000): p50 {Stats.Percentile(figures.HypervisorsPage, 50):0} ms p99 {Stats.Percentile(figures.HypervisorsPage, 99):0} ms");

        await TimeServersPagesAsync(world.Http, instances, figures.ServersPage);
        log($"GET /servers/detail?limit=1000: {figures.ServersPage.Count} pages, p50 {Stats.Percentile(figures.ServersPage, 50):0} ms p99 {Stats.Percentile(figures.ServersPage, 99):0} ms");
        return figures;
    }

    /// <summary>
    /// Pages of 1000 servers of every project, following the next links: the first page and ever deeper ones (the first 3
    /// requests not timed), up to 60 requests; a cloud of fewer pages is walked again from the first until 20 are timed.
    /// </summary>
    internal static async Task TimeServersPagesAsync(HttpClient http, int instances, List<double> samples)
    {
        const string First = "servers/detail?all_tenants=1&limit=1000";
        var path = First;
        var page = 0;
        for (var request = 0; request < 60; request++)
        {
            var (json, ms) = await TimedGetAsync(http, path, "2.95");
            Check(json, "servers", Math.Min(1000, instances - page * 1000));
            if (request >= 3)
            {
                samples.Add(ms);
            }
            if (json["servers_links"] is JsonArray links)
            {
                path = new Uri(links[0]!["href"]!.GetValue<string>()).PathAndQuery[("/v2.1/".Length)..];
                page++;
            }
            else if (samples.Count >= 20)
            {
                return;
            }
            else
            {
                (path, page) = (First, 0);
            }
        }
    }

    internal static void Check(JsonNode json, string key, int expected)
    {
        var count = json[key]!.AsArray().Count;
        if (count != expected)
        {
            throw new InvalidOperationException($"{key}: expected {expected} items, got {count}");
        }
    }

    internal static async Task TimeGetAsync(HttpClient http, string path, string version, int warmup, int measured, List<double> samples, Action<JsonNode> check)
    {
        for (var i = 0; i < warmup + measured; i++)
        {
            var (json, ms) = await TimedGetAsync(http, path, version);
            check(json);
            if (i >= warmup)
            {
                samples.Add(ms);
            }
        }
    }

    /// <summary>GETs a response and times it until its last byte is read; the body is parsed (to check it) outside that time.</summary>
    internal static async Task<(JsonNode Json, double Ms)> TimedGetAsync(HttpClient http, string path, string version)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Add("OpenStack-API-Version", "compute " + version);
        var t0 = Stopwatch.GetTimestamp();
        using var response = await http.SendAsync(request);
        var body = await response.Content.ReadAsByteArrayAsync();
        var ms = Stats.Ms(Stopwatch.GetTimestamp() - t0);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw new InvalidOperationException($"GET {path}: {(int)response.StatusCode} {Encoding.UTF8.GetString(body)}");
        }
        return (JsonNode.Parse(body)!, ms);
    }
}

/// <summary>The figures of one <see cref="QueryBenchmarks"/> run.</summary>
internal sealed class QueryFigures(string engine, int hosts, int instances, double seedMs)
{
    public string Engine { get; } = engine;
    public int Hosts { get; } = hosts;
    public int Instances { get; } = instances;
    public double SeedMs { get; } = seedMs;
    public List<double> Select { get; } = [];
    public List<double> HypervisorsAll { get; } = [];
    public List<double> HypervisorsPage { get; } = [];
    public List<double> ServersPage { get; } = [];

    public IEnumerable<(string Key, string Label, List<double> Samples, double Target)> Rows()
    {
        var size = $"{Hosts:N0} hosts / {Instances:N0} instances, {Engine}";
        yield return ($"select_destinations_p99_ms_{Hosts}_hosts_{Engine}", $"select_destinations p99 (DB host states), {size}", Select, 50);
        yield return ($"hypervisors_detail_all_p99_ms_{Engine}", $"GET /os-hypervisors/detail p99, all (2.1), {size}", HypervisorsAll, 1000);
        yield return ($"hypervisors_detail_page_p99_ms_{Engine}", $"GET /os-hypervisors/detail p99, page of 1000 (2.53), {size}", HypervisorsPage, 1000);
        yield return ($"servers_detail_limit_1000_p99_ms_{Engine}", $"GET /servers/detail?limit=1000 p99, {size}", ServersPage, 300);
    }

    public string ToTable()
    {
        var sb = new StringBuilder();
        foreach (var (_, label, samples, target) in Rows())
        {
            var p99 = Stats.Percentile(samples, 99);
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"{label,-96} p99 {p99,8:0.00} ms  p50 {Stats.Percentile(samples, 50),8:0.00} ms  n={samples.Count,-5} target ≤ {target} ms  {(p99 <= target ? "met" : "NOT met")}");
        }
        if (!double.IsNaN(SeedMs))
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"seeding {Hosts:N0} hosts / {Instances:N0} instances through the stores ({Engine}): {SeedMs / 1000:0.0} s");
        }
        return sb.ToString();
    }
}
