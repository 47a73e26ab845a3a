using System.Diagnostics;
using System.Text.Json.Nodes;
using Ferry.Core.Domain;
using Xunit.Abstractions;

namespace Ferry.Tests.Api;

/// <summary>
/// The compute API's lists over 2,000 hosts and 20,000 instances written straight through the stores (no agents):
/// every page is right and every row is listed once (times go to the test output, never into an assertion; the
/// 10,000 / 100,000 figures are `./ferry bench --only queries`).
/// </summary>
public sealed class ScaleQueryTests(ComputeApiFixture f, ITestOutputHelper output) : IClassFixture<ComputeApiFixture>
{
    private const int Hosts = 2_000;
    private const int Instances = 20_000;

    [Fact]
    public async Task Lists_2000Hosts20000Instances_EveryPageRightAndEveryRowOnce()
    {
        var clock = Stopwatch.StartNew();
        var hosts = Enumerable.Range(0, Hosts).Select(h => f.AddHost($"scale{h:D4}")).ToList();
        var start = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var flavors = new[] { f.Catalog.FindFlavor("1")!, f.Catalog.FindFlavor("2")! };
        var created = new List<Instance>(Instances);
        for (var i = 0; i < Instances; i++)
        {
            var at = start.AddSeconds(i / 3); // three to a second: the id breaks created_at ties
            var host = hosts[(i * 7919) % Hosts];
            created.Add(f.Instances.Create(id => new Instance
            {
                Id = id, Uuid = Guid.NewGuid().ToString(), DisplayName = $"s-{i}", ProjectId = $"p-{i % 20:D2}", UserId = "u",
                Host = host, Node = host, Flavor = flavors[i % 2], ImageRef = "155d900f-4e14-4e4c-a73d-069cbf4541e6",
                VmState = i % 10 == 0 ? VmState.Stopped : VmState.Active, CreatedAt = at, UpdatedAt = at, LaunchedAt = at,
            }));
        }
        output.WriteLine($"seeded {Hosts} hosts / {Instances} instances through the stores in {clock.ElapsedMilliseconds} ms");

        // Every server of every project, newest first, a page of 1000 at a time by the next links.
        var expected = created.OrderByDescending(i => i.CreatedAt).ThenByDescending(i => i.Id).Select(i => i.Uuid).ToList();
        var listed = await WalkAsync("v2.1/servers/detail?all_tenants=1&limit=1000", "servers", "servers_links", "2.95", 1000, output);
        Assert.Equal(expected, listed);

        // One project, one host, one status: the rows the filter selects, in the same order.
        var project = await WalkAsync("v2.1/servers/detail?all_tenants=1&project_id=p-07&limit=1000", "servers", "servers_links", "2.95", 1000, output);
        Assert.Equal(created.Where(i => i.ProjectId == "p-07").OrderByDescending(i => i.CreatedAt).ThenByDescending(i => i.Id).Select(i => i.Uuid), project);
        var onHost = await WalkAsync($"v2.1/servers?all_tenants=1&host={hosts[5]}", "servers", "servers_links", "2.95", 1000, output);
        Assert.Equal(created.Where(i => i.Host == hosts[5]).OrderByDescending(i => i.CreatedAt).ThenByDescending(i => i.Id).Select(i => i.Uuid), onHost);
        var stopped = await WalkAsync("v2.1/servers/detail?all_tenants=1&status=SHUTOFF&limit=700", "servers", "servers_links", "2.95", 700, output);
        Assert.Equal(created.Where(i => i.VmState == VmState.Stopped).OrderByDescending(i => i.CreatedAt).ThenByDescending(i => i.Id).Select(i => i.Uuid), stopped);

        // Every hypervisor, in pages of 1000 (2.53) and at once (2.1), each with its own usage.
        var perHost = created.GroupBy(i => i.Host!).ToDictionary(g => g.Key, g => (Vcpus: g.Sum(i => i.Flavor.Vcpus), Count: g.Count()));
        var pages = new List<JsonNode>();
        string? path = "v2.1/os-hypervisors/detail?limit=1000";
        while (path is not null)
        {
            var t = Stopwatch.StartNew();
            var page = await f.SendAsync(HttpMethod.Get, path, version: "2.53");
            output.WriteLine($"GET {path}: {t.ElapsedMilliseconds} ms");
            Assert.Equal(200, page.Status);
            var items = page.Json!["hypervisors"]!.AsArray();
            Assert.True(items.Count <= 1000);
            pages.AddRange(items.Select(x => x!));
            path = page.Json["hypervisors_links"] is JsonArray links ? new Uri(links[0]!["href"]!.GetValue<string>()).PathAndQuery.TrimStart('/') : null;
        }
        Assert.Equal(Hosts, pages.Count);
        Assert.Equal(Hosts, pages.Select(h => h["id"]!.GetValue<string>()).Distinct().Count());
        foreach (var h in pages)
        {
            var used = perHost.GetValueOrDefault(h["hypervisor_hostname"]!.GetValue<string>());
            Assert.Equal(used.Vcpus, h["vcpus_used"]!.GetValue<long>());
            Assert.Equal(used.Count, h["running_vms"]!.GetValue<long>());
        }
        var timer = Stopwatch.StartNew();
        var all = await f.SendAsync(HttpMethod.Get, "v2.1/os-hypervisors/detail", version: "2.1");
        output.WriteLine($"GET /os-hypervisors/detail (2.1, all {Hosts}): {timer.ElapsedMilliseconds} ms");
        Assert.Equal(Hosts, all.Json!["hypervisors"]!.AsArray().Count);
        Assert.Equal(Instances, all.Json["hypervisors"]!.AsArray().Sum(h => h!["running_vms"]!.GetValue<long>()));
        var statistics = await f.SendAsync(HttpMethod.Get, "v2.1/os-hypervisors/statistics", version: "2.1");
        Assert.Equal(Instances, statistics.Json!["hypervisor_statistics"]!["running_vms"]!.GetValue<long>());
    }

    private async Task<List<string>> WalkAsync(string path, string key, string linksKey, string version, int limit, ITestOutputHelper log)
    {
        var ids = new List<string>();
        string? next = path;
        var pages = 0;
        var timer = Stopwatch.StartNew();
        while (next is not null)
        {
            var pageTimer = Stopwatch.StartNew();
            var page = await f.SendAsync(HttpMethod.Get, next, version: version);
            log.WriteLine($"  page {pages + 1}: {pageTimer.ElapsedMilliseconds} ms");
            Assert.Equal(200, page.Status);
            var items = page.Json![key]!.AsArray();
            Assert.True(items.Count <= limit);
            ids.AddRange(items.Select(s => s!["id"]!.GetValue<string>()));
            next = page.Json[linksKey] is JsonArray links ? new Uri(links[0]!["href"]!.GetValue<string>()).PathAndQuery.TrimStart('/') : null;
            pages++;
            Assert.True(pages <= Instances / limit + 2, "the next links never end");
        }
        log.WriteLine($"GET {path} and its next pages: {pages} pages, {ids.Count} rows, {timer.ElapsedMilliseconds} ms");
        return ids;
    }
}
