using System.Text.Json.Nodes;
using Ferry.Core.Domain;

namespace Ferry.Tests.Api;

/// <summary>
/// Nova's list paging on every paged list: limit cut to [api] max_limit, marker (400 "marker [x] not found" when
/// unknown), and a next link (the request's parameters, sorted, with the last item as marker) when a page is full.
/// </summary>
[Collection(ComputeApiCollection.Name)]
public sealed class PagingTests(ComputeApiFixture f)
{
    private static List<string> Ids(ApiResponse r, string key) =>
        r.Json![key]!.AsArray().Select(s => s!["id"]!.ToString()).ToList();

    private static string? Next(ApiResponse r, string key) =>
        r.Json![key] is JsonArray links ? links.Single()!["href"]!.GetValue<string>() : null;

    /// <summary>A next link as a path the fixture's client can send (it is absolute, on the API's own address).</summary>
    private static string PathOf(string href) => new Uri(href).PathAndQuery.TrimStart('/');

    private async Task WithMaxLimitAsync(int maxLimit, Func<Task> test)
    {
        var before = f.Options.MaxLimit;
        f.Options.MaxLimit = maxLimit;
        try
        {
            await test();
        }
        finally
        {
            f.Options.MaxLimit = before;
        }
    }

    [Fact]
    public async Task ServersList_KeysetPagesOfOne_WalkEveryServerNewestFirstOnce()
    {
        var host = f.AddHost();
        var project = "pg-" + Guid.NewGuid().ToString("N")[..8];
        var created = new List<Instance>();
        for (var i = 0; i < 5; i++)
        {
            created.Add(f.AddInstance(host, project: project));
            if (i % 2 == 0)
            {
                f.Time.Advance(TimeSpan.FromSeconds(1)); // some share a created_at: the id breaks the tie
            }
        }
        var seen = new List<string>();
        string? path = "v2.1/servers/detail?limit=1";
        while (path is not null)
        {
            var page = await f.SendAsync(HttpMethod.Get, path, token: $"u:{project}");
            Assert.Equal(200, page.Status);
            seen.AddRange(Ids(page, "servers"));
            path = Next(page, "servers_links") is { } href ? PathOf(href) : null;
            Assert.True(seen.Count <= 6, "the next links never end");
        }

        var expected = created.OrderByDescending(i => i.CreatedAt).ThenByDescending(i => i.Id).Select(i => i.Uuid).ToList();
        Assert.Equal(expected, seen); // the last full page links to an empty one, as Nova's does
    }

    [Fact]
    public async Task ServersList_LimitAboveMaxLimit_CutToMaxLimitWithNextLinkKeepingParameters()
    {
        var host = f.AddHost();
        var project = "pm-" + Guid.NewGuid().ToString("N")[..8];
        var created = Enumerable.Range(0, 3).Select(_ => f.AddInstance(host, project: project)).ToList();
        await WithMaxLimitAsync(2, async () =>
        {
            var first = await f.SendAsync(HttpMethod.Get, "v2.1/servers?status=ACTIVE&limit=50", token: $"u:{project}");

            Assert.Equal(2, Ids(first, "servers").Count);
            var href = Next(first, "servers_links")!;
            Assert.EndsWith($"/v2.1/servers?limit=50&marker={Ids(first, "servers")[1]}&status=ACTIVE", href, StringComparison.Ordinal);
            var rest = await f.SendAsync(HttpMethod.Get, PathOf(href), token: $"u:{project}");
            Assert.Single(Ids(rest, "servers"));
            Assert.False(rest.Json!.AsObject().ContainsKey("servers_links"));

            var unlimited = await f.SendAsync(HttpMethod.Get, "v2.1/servers/detail", token: $"u:{project}");
            Assert.Equal(2, Ids(unlimited, "servers").Count);
            Assert.Contains("/v2.1/servers/detail?marker=", Next(unlimited, "servers_links"), StringComparison.Ordinal);
        });
        Assert.Equal(3, created.Count);
    }

    [Fact]
    public async Task ServersList_StatusFilterOverManyRows_FillsEachPageFromLaterRows()
    {
        var host = f.AddHost();
        var project = "ps-" + Guid.NewGuid().ToString("N")[..8];
        var stopped = new List<Instance>();
        for (var i = 0; i < 12; i++)
        {
            var vm = i % 4 == 0 ? VmState.Stopped : VmState.Active;
            var instance = f.AddInstance(host, project: project, vm: vm);
            if (vm == VmState.Stopped)
            {
                stopped.Add(instance);
            }
        }

        var page = await f.SendAsync(HttpMethod.Get, "v2.1/servers?status=SHUTOFF&limit=2", token: $"u:{project}");
        var rest = await f.SendAsync(HttpMethod.Get, PathOf(Next(page, "servers_links")!), token: $"u:{project}");

        var expected = stopped.OrderByDescending(i => i.Id).Select(i => i.Uuid).ToList();
        Assert.Equal(expected[..2], Ids(page, "servers"));
        Assert.Equal(expected[2..], Ids(rest, "servers"));
    }

    [Theory]
    [InlineData("v2.1/servers?marker=7d8a5c2e-0000-4000-8000-000000000000", "marker [7d8a5c2e-0000-4000-8000-000000000000] not found")]
    [InlineData("v2.1/servers/detail?limit=abc", "Invalid input for query parameters limit. Value: abc. 'abc' does not match '^[0-9]*$'")]
    public async Task ServersList_BadMarkerOrLimit_400InNovaWords(string path, string message)
    {
        var r = await f.SendAsync(HttpMethod.Get, path);

        Assert.Equal(400, r.Status);
        Assert.Equal("badRequest", r.FaultName);
        Assert.Equal(message, r.FaultMessage);
    }

    [Fact]
    public async Task ServersList_LimitZero_EmptyWithoutLinks()
    {
        var r = await f.SendAsync(HttpMethod.Get, "v2.1/servers?limit=0");

        Assert.Equal(200, r.Status);
        Assert.Empty(r.Json!["servers"]!.AsArray());
        Assert.False(r.Json!.AsObject().ContainsKey("servers_links"));
    }

    [Theory]
    [InlineData("2.33")]
    [InlineData("2.53")]
    public async Task HypervisorsList_PagesByIdWithMarker_EveryNodeOnceAndBadMarker400(string version)
    {
        for (var i = 0; i < 3; i++)
        {
            f.AddHost();
        }
        var uuidIds = version == "2.53";
        var all = await f.SendAsync(HttpMethod.Get, "v2.1/os-hypervisors", version: version);
        var expected = Ids(all, "hypervisors");
        Assert.True(expected.Count >= 3);

        var seen = new List<string>();
        string? path = "v2.1/os-hypervisors/detail?limit=2";
        while (path is not null)
        {
            var page = await f.SendAsync(HttpMethod.Get, path, version: version);
            Assert.Equal(200, page.Status);
            var ids = Ids(page, "hypervisors");
            Assert.True(ids.Count <= 2);
            seen.AddRange(ids);
            path = Next(page, "hypervisors_links") is { } href ? PathOf(href) : null;
            Assert.True(seen.Count <= expected.Count + 2, "the next links never end");
        }
        Assert.Equal(expected, seen);

        var bad = uuidIds ? "7d8a5c2e-0000-4000-8000-000000000000" : "999999";
        var r = await f.SendAsync(HttpMethod.Get, $"v2.1/os-hypervisors?marker={bad}", version: version);
        Assert.Equal(400, r.Status);
        Assert.Equal($"marker [{bad}] not found", r.FaultMessage);
    }

    [Fact]
    public async Task HypervisorsList_MaxLimit_CutsEvenWithoutLimitFrom233ButNotBefore()
    {
        for (var i = 0; i < 3; i++)
        {
            f.AddHost();
        }
        await WithMaxLimitAsync(2, async () =>
        {
            var paged = await f.SendAsync(HttpMethod.Get, "v2.1/os-hypervisors?limit=1000", version: "2.33");
            Assert.Equal(2, Ids(paged, "hypervisors").Count);
            Assert.Contains("limit=1000&marker=", Next(paged, "hypervisors_links"), StringComparison.Ordinal);

            var legacy = await f.SendAsync(HttpMethod.Get, "v2.1/os-hypervisors", version: "2.32");
            Assert.True(Ids(legacy, "hypervisors").Count >= 3); // no paging before 2.33, as Nova
            Assert.False(legacy.Json!.AsObject().ContainsKey("hypervisors_links"));
        });
    }

    [Fact]
    public async Task HypervisorsDetail_Usage_SumsTheLiveInstancesOfEachHost()
    {
        var host = f.AddHost();
        f.AddInstance(host, flavorId: "1");
        f.AddInstance(host, flavorId: "2", task: TaskState.Migrating);
        var gone = f.AddInstance(host, flavorId: "2");
        f.Instances.Update(new Ferry.Core.Rpc.Conductor.InstanceUpdateRequest { Uuid = gone.Uuid, Deleted = true });
        var node = f.Nodes.FindByHost(host)!;

        var r = await f.SendAsync(HttpMethod.Get, "v2.1/os-hypervisors/detail?with_servers=true", version: "2.53");

        var h = r.Json!["hypervisors"]!.AsArray().Single(x => x!["id"]!.GetValue<string>() == node.Uuid)!;
        Assert.Equal(2, h["vcpus_used"]!.GetValue<long>());
        Assert.Equal(512 + 2048 + node.ReservedHostMemoryMb, h["memory_mb_used"]!.GetValue<long>());
        Assert.Equal(21, h["local_gb_used"]!.GetValue<long>());
        Assert.Equal(1, h["current_workload"]!.GetValue<long>());
        Assert.Equal(2, h["running_vms"]!.GetValue<long>());
        Assert.Equal(2, h["servers"]!.AsArray().Count);
    }

    [Fact]
    public async Task InstanceActions_From258_PagedByRequestIdWithLinksAndBadMarker400()
    {
        var vm = f.AddInstance(f.AddHost());
        for (var i = 1; i <= 3; i++)
        {
            f.Actions.StartAction(vm.Uuid, $"req-{i}", "stop", "admin", "admin");
        }
        var path = $"v2.1/servers/{vm.Uuid}/os-instance-actions";

        var old = await f.SendAsync(HttpMethod.Get, path + "?limit=1", version: "2.57");
        var first = await f.SendAsync(HttpMethod.Get, path + "?limit=2", version: "2.58");
        var rest = await f.SendAsync(HttpMethod.Get, PathOf(first.Json!["links"]![0]!["href"]!.GetValue<string>()), version: "2.58");
        var bad = await f.SendAsync(HttpMethod.Get, path + "?marker=req-9", version: "2.58");
        var unknown = await f.SendAsync(HttpMethod.Get, path + "?bogus=1", version: "2.58");

        Assert.Equal(3, old.Json!["instanceActions"]!.AsArray().Count); // no paging before 2.58
        Assert.Equal(["req-3", "req-2"], first.Json!["instanceActions"]!.AsArray().Select(a => a!["request_id"]!.GetValue<string>()));
        Assert.EndsWith($"/v2.1/servers/{vm.Uuid}/os-instance-actions?limit=2&marker=req-2", first.Json!["links"]![0]!["href"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(["req-1"], rest.Json!["instanceActions"]!.AsArray().Select(a => a!["request_id"]!.GetValue<string>()));
        Assert.False(rest.Json!.AsObject().ContainsKey("links"));
        Assert.Equal((400, "Marker req-9 could not be found."), (bad.Status, bad.FaultMessage));
        Assert.Equal(400, unknown.Status);
    }

    [Fact]
    public async Task FlavorsList_MaxLimit_CutWithNextLink()
    {
        await WithMaxLimitAsync(1, async () =>
        {
            var r = await f.SendAsync(HttpMethod.Get, "v2.1/flavors");

            Assert.Single(Ids(r, "flavors"));
            Assert.Contains("/v2.1/flavors?marker=", Next(r, "flavors_links"), StringComparison.Ordinal);
        });
    }
}
