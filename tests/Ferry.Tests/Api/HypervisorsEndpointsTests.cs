using System.Text.Json.Nodes;
using Ferry.Core.Domain;

namespace Ferry.Tests.Api;

/// <summary>/os-hypervisors as each microversion serves it (hypervisors.py and its response schemas).</summary>
[Collection(ComputeApiCollection.Name)]
public sealed class HypervisorsEndpointsTests(ComputeApiFixture f)
{
    private static readonly string[] s_basic = ["hypervisor_hostname", "id", "state", "status"];
    private static readonly string[] s_detail = ["host_ip", "hypervisor_type", "hypervisor_version", "service"];
    private static readonly string[] s_usage =
    [
        "cpu_info", "current_workload", "disk_available_least", "free_disk_gb", "free_ram_mb", "local_gb", "local_gb_used",
        "memory_mb", "memory_mb_used", "running_vms", "vcpus", "vcpus_used",
    ];

    private static IEnumerable<string> Sorted(IEnumerable<string> keys) => keys.Order(StringComparer.Ordinal);

    private static IEnumerable<string> Keys(JsonNode? o) => Sorted(o!.AsObject().Select(p => p.Key));

    private (string Host, ComputeNode Node) AddBootedHost(bool up = true)
    {
        var host = f.AddHost(up: up);
        var node = f.Nodes.FindByHost(host)! with { BootedAt = f.Time.GetUtcNow() - TimeSpan.FromHours(2) };
        f.Nodes.Upsert(node);
        return (host, f.Nodes.FindByHost(host)!);
    }

    [Theory]
    [InlineData("2.1")]
    [InlineData("2.27")]
    [InlineData("2.28")]
    [InlineData("2.52")]
    [InlineData("2.53")]
    [InlineData("2.87")]
    [InlineData("2.88")]
    public async Task Show_EachMicroversion_ReturnsExactlyNovaFields(string version)
    {
        var (_, node) = AddBootedHost();
        var minor = int.Parse(version[2..], System.Globalization.CultureInfo.InvariantCulture);

        var r = await f.SendAsync(HttpMethod.Get, $"v2.1/os-hypervisors/{(minor >= 53 ? node.Uuid : node.Id)}", version: version);

        Assert.Equal(200, r.Status);
        var h = r.Json!["hypervisor"]!;
        var expected = s_basic.Concat(s_detail).Concat(minor >= 88 ? ["uptime"] : s_usage);
        Assert.Equal(Sorted(expected), Keys(h));
        Assert.Equal(["disabled_reason", "host", "id"], Keys(h["service"]));
        if (minor >= 53)
        {
            Assert.Equal(node.Uuid, h["id"]!.GetValue<string>());
            Assert.True(Guid.TryParse(h["service"]!["id"]!.GetValue<string>(), out _));
        }
        else
        {
            Assert.Equal(node.Id, h["id"]!.GetValue<int>());
            Assert.Equal(System.Text.Json.JsonValueKind.Number, h["service"]!["id"]!.GetValueKind());
        }
        if (minor < 88)
        {
            Assert.Equal(minor >= 28 ? System.Text.Json.JsonValueKind.Object : System.Text.Json.JsonValueKind.String, h["cpu_info"]!.GetValueKind());
        }
        else
        {
            Assert.Contains(" up  2:00,", h["uptime"]!.GetValue<string>(), StringComparison.Ordinal);
        }
    }

    /// <summary>Before 2.28 cpu_info is the 2.28 object as a string: each host's own, also among hosts that share a CPU.</summary>
    [Fact]
    public async Task List_Below228_CpuInfoIsEachHostsObjectAsText()
    {
        var (_, first) = AddBootedHost();
        var (_, other) = AddBootedHost();
        var (_, same) = AddBootedHost();
        f.Nodes.Upsert(other with { Vcpus = other.Vcpus + 2, CpuInfo = new CpuInfo { Model = "EPYC-Rome", Vendor = "AMD", Features = ["sse4.2", "avx2"] } });
        f.Nodes.Upsert(same with { CpuInfo = first.CpuInfo with { Features = [.. first.CpuInfo.Features] } });

        var texts = await f.SendAsync(HttpMethod.Get, "v2.1/os-hypervisors/detail", version: "2.27");
        var objects = await f.SendAsync(HttpMethod.Get, "v2.1/os-hypervisors/detail", version: "2.28");

        Assert.Equal(200, texts.Status);
        var asObjects = objects.Json!["hypervisors"]!.AsArray().ToDictionary(h => h!["id"]!.GetValue<int>(), h => h!["cpu_info"]);
        var asTexts = texts.Json!["hypervisors"]!.AsArray().ToDictionary(h => h!["id"]!.GetValue<int>(), h => JsonNode.Parse(h!["cpu_info"]!.GetValue<string>()));
        Assert.Equal(asObjects.Keys.Order(), asTexts.Keys.Order());
        Assert.All(asObjects, p => Assert.True(JsonNode.DeepEquals(p.Value, asTexts[p.Key]), $"host {p.Key}: {asTexts[p.Key]!.ToJsonString()} is not {p.Value!.ToJsonString()}"));
        Assert.Equal("EPYC-Rome", asTexts[other.Id]!["model"]!.GetValue<string>());
        Assert.Equal(other.Vcpus + 2, asTexts[other.Id]!["topology"]!["cores"]!.GetValue<int>());
        Assert.Equal(["sse4.2", "avx2"], asTexts[other.Id]!["features"]!.AsArray().Select(x => x!.GetValue<string>()));
    }

    [Fact]
    public async Task Show_DownHostAt288_UptimeIsNull()
    {
        var (_, node) = AddBootedHost(up: false);

        var r = await f.SendAsync(HttpMethod.Get, $"v2.1/os-hypervisors/{node.Uuid}", version: "2.88");

        Assert.Equal(200, r.Status);
        Assert.True(r.Json!["hypervisor"]!.AsObject().ContainsKey("uptime"));
        Assert.Null(r.Json!["hypervisor"]!["uptime"]);
    }

    [Theory]
    [InlineData("2.53", false)]
    [InlineData("2.74", false)]
    [InlineData("2.75", true)]
    public async Task Show_WithServersOnEmptyHost_ListsServersFrom275Only(string version, bool present)
    {
        var (_, node) = AddBootedHost();

        var r = await f.SendAsync(HttpMethod.Get, $"v2.1/os-hypervisors/{node.Uuid}?with_servers=true", version: version);

        Assert.Equal(present, r.Json!["hypervisor"]!.AsObject().ContainsKey("servers"));
    }

    [Theory]
    [InlineData("2.1", "abc", 404, "Hypervisor with ID 'abc' could not be found.")]
    [InlineData("2.52", "999999", 404, "Hypervisor with ID '999999' could not be found.")]
    [InlineData("2.53", "abc", 400, "Invalid uuid abc")]
    public async Task Show_BadId_AnswersAsNovaDoes(string version, string id, int status, string message)
    {
        var r = await f.SendAsync(HttpMethod.Get, $"v2.1/os-hypervisors/{id}", version: version);

        Assert.Equal((status, message), (r.Status, r.FaultMessage));
    }

    [Fact]
    public async Task Statistics_Below288_SumsEnabledHostsOnly()
    {
        var before = (await f.SendAsync(HttpMethod.Get, "v2.1/os-hypervisors/statistics", version: "2.87")).Json!["hypervisor_statistics"]!;
        var host = f.AddHost();
        f.AddInstance(host, flavorId: "2");
        var disabled = f.AddHost();
        f.Services.Update(f.Services.Find(disabled, "nova-compute")!.Id, s => s with { Disabled = true });

        var r = await f.SendAsync(HttpMethod.Get, "v2.1/os-hypervisors/statistics", version: "2.87");

        Assert.Equal(200, r.Status);
        var after = r.Json!["hypervisor_statistics"]!;
        string[] fields =
        [
            "count", "current_workload", "disk_available_least", "free_disk_gb", "free_ram_mb", "local_gb", "local_gb_used",
            "memory_mb", "memory_mb_used", "running_vms", "vcpus", "vcpus_used",
        ];
        Assert.Equal(fields, Keys(after));
        long Delta(string k) => after[k]!.GetValue<long>() - before[k]!.GetValue<long>();
        Assert.Equal((1L, 8L, 8192L, 100L, 1L, 2048L, 20L, 1L, 6144L, 80L),
            (Delta("count"), Delta("vcpus"), Delta("memory_mb"), Delta("local_gb"), Delta("vcpus_used"), Delta("memory_mb_used"),
             Delta("local_gb_used"), Delta("running_vms"), Delta("free_ram_mb"), Delta("free_disk_gb")));
    }

    [Theory]
    [InlineData("statistics")]
    [InlineData("{uuid}/uptime")]
    public async Task RemovedRoutes_At288_Return404(string path)
    {
        var (_, node) = AddBootedHost();

        var r = await f.SendAsync(HttpMethod.Get, $"v2.1/os-hypervisors/{path.Replace("{uuid}", node.Uuid, StringComparison.Ordinal)}", version: "2.88");

        Assert.Equal((404, "itemNotFound"), (r.Status, r.FaultName));
    }

    [Theory]
    [InlineData("2.1")]
    [InlineData("2.53")]
    [InlineData("2.87")]
    public async Task Uptime_Below288_ReturnsBasicViewAndUptime(string version)
    {
        var (host, node) = AddBootedHost();
        var id = version == "2.1" ? node.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) : node.Uuid;

        var r = await f.SendAsync(HttpMethod.Get, $"v2.1/os-hypervisors/{id}/uptime", version: version);

        Assert.Equal(200, r.Status);
        var h = r.Json!["hypervisor"]!;
        Assert.Equal(Sorted(s_basic.Append("uptime")), Keys(h));
        Assert.Equal(host, h["hypervisor_hostname"]!.GetValue<string>());
        Assert.Contains(" up  2:00,", h["uptime"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Uptime_DownHost_Returns400()
    {
        var (host, node) = AddBootedHost(up: false);

        var r = await f.SendAsync(HttpMethod.Get, $"v2.1/os-hypervisors/{node.Uuid}/uptime", version: "2.87");

        Assert.Equal((400, $"Compute service of {host} is unavailable at this time."), (r.Status, r.FaultMessage));
    }

    [Fact]
    public async Task SearchAndServers_Below253_MatchHostnamePattern()
    {
        var tag = $"srch{Guid.NewGuid():N}"[..10];
        var busy = f.AddHost($"{tag}-a");
        f.AddHost($"{tag}-b");
        var vm = f.AddInstance(busy);

        var search = await f.SendAsync(HttpMethod.Get, $"v2.1/os-hypervisors/{tag}/search", version: "2.52");
        var servers = await f.SendAsync(HttpMethod.Get, $"v2.1/os-hypervisors/{tag}/servers", version: "2.52");

        Assert.Equal(200, search.Status);
        var found = search.Json!["hypervisors"]!.AsArray();
        Assert.Equal([$"{tag}-a", $"{tag}-b"], found.Select(h => h!["hypervisor_hostname"]!.GetValue<string>()).Order(StringComparer.Ordinal));
        Assert.All(found, h => Assert.Equal(Sorted(s_basic), Keys(h)));
        var withServers = servers.Json!["hypervisors"]!.AsArray();
        var a = withServers.Single(h => h!["hypervisor_hostname"]!.GetValue<string>() == $"{tag}-a")!;
        Assert.Equal(vm.Uuid, Assert.Single(a["servers"]!.AsArray())!["uuid"]!.GetValue<string>());
        var b = withServers.Single(h => h!["hypervisor_hostname"]!.GetValue<string>() == $"{tag}-b")!;
        Assert.False(b.AsObject().ContainsKey("servers"));
    }

    [Theory]
    [InlineData("search", "2.53", 404, "The resource could not be found.")]
    [InlineData("servers", "2.53", 404, "The resource could not be found.")]
    [InlineData("search", "2.1", 404, "No hypervisor matching 'no-such-host-xyz' could be found.")]
    public async Task SearchAndServers_RemovedOrNoMatch_Return404(string route, string version, int status, string message)
    {
        var r = await f.SendAsync(HttpMethod.Get, $"v2.1/os-hypervisors/no-such-host-xyz/{route}", version: version);

        Assert.Equal((status, message), (r.Status, r.FaultMessage));
    }

    [Theory]
    [InlineData("statistics")]
    [InlineData("x/search")]
    [InlineData("x/servers")]
    [InlineData("1/uptime")]
    public async Task LegacyRoutes_NonAdmin_Return403(string path)
    {
        var r = await f.SendAsync(HttpMethod.Get, $"v2.1/os-hypervisors/{path}", token: "u:p", version: "2.1");

        Assert.Equal(403, r.Status);
    }

    [Theory]
    [InlineData("os-hypervisors?bogus=1")]
    [InlineData("os-hypervisors/detail?with_servers=true&bogus=1")]
    [InlineData("os-hypervisors/{uuid}?bogus=1")]
    public async Task Query_UnknownParameterFrom253_Returns400(string path)
    {
        var (_, node) = AddBootedHost();
        var url = "v2.1/" + path.Replace("{uuid}", node.Uuid, StringComparison.Ordinal);

        var at253 = await f.SendAsync(HttpMethod.Get, url, version: "2.53");
        var at252 = await f.SendAsync(HttpMethod.Get, url.Replace(node.Uuid, node.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal), version: "2.52");

        Assert.Equal((400, "Additional properties are not allowed ('bogus' was unexpected)"), (at253.Status, at253.FaultMessage));
        Assert.Equal(200, at252.Status);
    }
}
