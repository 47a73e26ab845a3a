using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Ferry.Core.Errors;
using Ferry.Core.Placement;

namespace Ferry.Tests.Placement;

public sealed class PlacementApiTests(PlacementApiFixture fixture) : IClassFixture<PlacementApiFixture>, IDisposable
{
    private const string Project = "project-api";
    private const string User = "user-api";

    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(30));

    private CancellationToken Ct => _timeout.Token;

    private PlacementHttpClient Client => fixture.Client;

    public void Dispose() => _timeout.Dispose();

    [Fact]
    public async Task GetRoot_Always_ReturnsVersionDocumentWithMicroversionHeaders()
    {
        using var response = await fixture.Http.GetAsync("/", Ct);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync(Ct))!;

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("placement 1.39", response.Headers.GetValues("OpenStack-API-Version").Single());
        Assert.Contains("OpenStack-API-Version", response.Headers.Vary);
        var version = body["versions"]![0]!;
        Assert.Equal("v1.0", (string?)version["id"]);
        Assert.Equal("1.39", (string?)version["max_version"]);
        Assert.Equal("1.0", (string?)version["min_version"]);
        Assert.Equal("CURRENT", (string?)version["status"]);
    }

    [Fact]
    public async Task Get_UnsupportedMicroversion_Returns406()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/resource_providers");
        request.Headers.Add("OpenStack-API-Version", "placement 1.99");

        using var response = await fixture.Http.SendAsync(request, Ct);

        Assert.Equal(HttpStatusCode.NotAcceptable, response.StatusCode);
    }

    [Fact]
    public async Task EnsureResourceProviderAsync_NewThenRenamed_CreatesThenUpdates()
    {
        var uuid = Guid.NewGuid().ToString();

        var created = await Client.EnsureResourceProviderAsync(uuid, $"host-{uuid}", Ct);
        var again = await Client.EnsureResourceProviderAsync(uuid, $"host-{uuid}", Ct);
        var renamed = await Client.EnsureResourceProviderAsync(uuid, $"renamed-{uuid}", Ct);

        Assert.Equal(uuid, created.Uuid);
        Assert.Equal(uuid, created.RootProviderUuid);
        Assert.Null(created.ParentProviderUuid);
        Assert.Contains(created.Links!, l => l.Rel == "self" && l.Href == $"/resource_providers/{uuid}");
        Assert.Equal((created.Uuid, created.Name, created.Generation), (again.Uuid, again.Name, again.Generation));
        Assert.Equal($"renamed-{uuid}", renamed.Name);

        var list = JsonNode.Parse(await fixture.Http.GetStringAsync($"/resource_providers?name=renamed-{uuid}", Ct))!;
        var only = Assert.Single(list["resource_providers"]!.AsArray());
        Assert.Equal(uuid, (string?)only!["uuid"]);
        Assert.Null(only["parent_provider_uuid"]);
    }

    [Fact]
    public async Task PostResourceProviders_DuplicateName_Returns409DuplicateName()
    {
        var name = $"dup-{Guid.NewGuid()}";
        await Client.EnsureResourceProviderAsync(Guid.NewGuid().ToString(), name, Ct);

        using var response = await SendJsonAsync(HttpMethod.Post, "/resource_providers", $$"""{"name": "{{name}}"}""");

        await AssertPlacementErrorAsync(response, 409, PlacementErrorCodes.DuplicateName);
    }

    [Fact]
    public async Task SetInventoriesAsync_AfterAnotherWriterBumpedGeneration_ReadsAndSucceeds()
    {
        var rp = await NewProviderAsync(vcpu: 8);
        fixture.Service.SetTraits(rp, null, ["CUSTOM_BUMP"]);

        var generation = await Client.SetInventoriesAsync(rp, Inventories(vcpu: 16, memoryMb: 2048), Ct);
        var unchanged = await Client.SetInventoriesAsync(rp, Inventories(vcpu: 16, memoryMb: 2048), Ct);

        Assert.Equal(generation, unchanged);
        Assert.Equal(16, fixture.Service.GetInventories(rp)["VCPU"].Total);
        Assert.Equal(2048, fixture.Service.GetInventories(rp)["MEMORY_MB"].Total);
    }

    [Fact]
    public async Task ReportResourceProviderAsync_NewNode_CreatesProviderWithInventoriesInTwoRequests()
    {
        using var counting = new CountingHandler(new SocketsHttpHandler());
        using var http = new HttpClient(counting) { BaseAddress = fixture.Http.BaseAddress };
        var client = new PlacementHttpClient(http, authToken: "test-token");
        var uuid = Guid.NewGuid().ToString();

        var generation = await client.ReportResourceProviderAsync(uuid, $"host-{uuid}", Inventories(vcpu: 8, memoryMb: 4096), newNode: true, Ct);

        Assert.Equal(["POST resource_providers", $"PUT resource_providers/{uuid}/inventories"], counting.Requests);
        Assert.Equal(fixture.Service.GetProvider(uuid)!.Generation, generation);
        Assert.Equal($"host-{uuid}", fixture.Service.GetProvider(uuid)!.Name);
        Assert.Equal(8, fixture.Service.GetInventories(uuid)["VCPU"].Total);
        Assert.Equal(4096, fixture.Service.GetInventories(uuid)["MEMORY_MB"].Total);
    }

    [Fact]
    public async Task ReportResourceProviderAsync_KnownNodeUnchangedThenChanged_OneRequestThenTwo()
    {
        var uuid = await NewProviderAsync(vcpu: 8);
        using var counting = new CountingHandler(new SocketsHttpHandler());
        using var http = new HttpClient(counting) { BaseAddress = fixture.Http.BaseAddress };
        var client = new PlacementHttpClient(http, authToken: "test-token");
        var before = fixture.Service.GetProvider(uuid)!.Generation;

        var unchanged = await client.ReportResourceProviderAsync(uuid, $"host-{uuid}", Inventories(vcpu: 8), newNode: false, Ct);
        var unchangedRequests = counting.Requests.ToList();
        var changed = await client.ReportResourceProviderAsync(uuid, $"host-{uuid}", Inventories(vcpu: 12), newNode: false, Ct);

        Assert.Equal([$"GET resource_providers/{uuid}/inventories"], unchangedRequests);
        Assert.Equal(before, unchanged);
        Assert.Equal(3, counting.Requests.Count);
        Assert.Equal(before + 1, changed);
        Assert.Equal(12, fixture.Service.GetInventories(uuid)["VCPU"].Total);
    }

    [Fact]
    public async Task ReportResourceProviderAsync_KnownNodeWithoutProvider_CreatesIt()
    {
        var uuid = Guid.NewGuid().ToString();

        await Client.ReportResourceProviderAsync(uuid, $"host-{uuid}", Inventories(vcpu: 4), newNode: false, Ct);

        Assert.Equal($"host-{uuid}", fixture.Service.GetProvider(uuid)!.Name);
        Assert.Equal(4, fixture.Service.GetInventories(uuid)["VCPU"].Total);
    }

    [Fact]
    public async Task ReportResourceProviderAsync_NewNodeWhoseProviderAnotherWriterMade_ReadsAndWritesInventories()
    {
        var uuid = Guid.NewGuid().ToString();
        await Client.EnsureResourceProviderAsync(uuid, $"host-{uuid}", Ct);
        fixture.Service.SetTraits(uuid, null, ["CUSTOM_BUMP"]);

        await Client.ReportResourceProviderAsync(uuid, $"host-{uuid}", Inventories(vcpu: 6), newNode: true, Ct);

        Assert.Equal(6, fixture.Service.GetInventories(uuid)["VCPU"].Total);
    }

    [Fact]
    public async Task ReportResourceProviderAsync_NameTakenByAnotherProvider_Throws409()
    {
        var name = $"taken-{Guid.NewGuid()}";
        await Client.EnsureResourceProviderAsync(Guid.NewGuid().ToString(), name, Ct);
        var uuid = Guid.NewGuid().ToString();

        await Assert.ThrowsAsync<PlacementConflictException>(() => Client.ReportResourceProviderAsync(uuid, name, Inventories(vcpu: 4), newNode: true, Ct));

        Assert.Null(fixture.Service.GetProvider(uuid));
    }

    [Fact]
    public async Task GetInventories_WholeAllocationRatio_KeepsPythonFloatSpelling()
    {
        var rp = await NewProviderAsync(vcpu: 8);
        using var put = await SendJsonAsync(HttpMethod.Put, $"/resource_providers/{rp}/inventories/VCPU",
            $$"""{"resource_provider_generation": {{fixture.Service.GetProvider(rp)!.Generation}}, "total": 1000, "allocation_ratio": 16.0}""");
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        using var putMemory = await SendJsonAsync(HttpMethod.Put, $"/resource_providers/{rp}/inventories/MEMORY_MB",
            $$"""{"resource_provider_generation": {{fixture.Service.GetProvider(rp)!.Generation}}, "total": 800000, "reserved": 512, "allocation_ratio": 1.5}""");
        Assert.Equal(HttpStatusCode.OK, putMemory.StatusCode);

        var raw = await fixture.Http.GetStringAsync($"/resource_providers/{rp}/inventories", Ct);

        // osc-placement prints what Placement's Python encoder wrote: 16.0 and 1.5, never 16.
        Assert.Contains("\"allocation_ratio\":16.0", raw, StringComparison.Ordinal);
        Assert.Contains("\"allocation_ratio\":1.5", raw, StringComparison.Ordinal);
        Assert.Equal(16.0, (double)JsonNode.Parse(raw)!["inventories"]!["VCPU"]!["allocation_ratio"]!);
    }

    [Fact]
    public async Task GetAllocations_SeveralResourceClasses_ListsThemInNameOrder()
    {
        var rp = await NewProviderAsync(vcpu: 8);
        await Client.SetInventoriesAsync(rp, new Dictionary<string, InventoryDto> { ["VCPU"] = new(8), ["MEMORY_MB"] = new(4096), ["DISK_GB"] = new(100) }, Ct);
        var consumer = Guid.NewGuid().ToString();
        using var put = await SendJsonAsync(HttpMethod.Put, $"/allocations/{consumer}",
            $$"""{"allocations": {"{{rp}}": {"resources": {"VCPU": 1, "MEMORY_MB": 64, "DISK_GB": 1} } }, "consumer_generation": null, "project_id": "p", "user_id": "u"}""");
        Assert.Equal(HttpStatusCode.NoContent, put.StatusCode);

        var body = JsonNode.Parse(await fixture.Http.GetStringAsync($"/allocations/{consumer}", Ct))!;

        Assert.Equal(["DISK_GB", "MEMORY_MB", "VCPU"], body["allocations"]![rp]!["resources"]!.AsObject().Select(p => p.Key));
        Assert.Equal(["allocations", "consumer_generation", "project_id", "user_id", "consumer_type"], body.AsObject().Select(p => p.Key));
    }

    [Fact]
    public async Task PutInventories_StaleGeneration_Returns409ConcurrentUpdate()
    {
        var rp = await NewProviderAsync(vcpu: 8);

        using var response = await SendJsonAsync(HttpMethod.Put, $"/resource_providers/{rp}/inventories",
            """{"resource_provider_generation": 0, "inventories": {"VCPU": {"total": 4}}}""");

        await AssertPlacementErrorAsync(response, 409, PlacementErrorCodes.ConcurrentUpdate);
    }

    [Fact]
    public async Task PutInventories_MalformedBody_Returns400()
    {
        var rp = await NewProviderAsync(vcpu: 8);

        using var missingGeneration = await SendJsonAsync(HttpMethod.Put, $"/resource_providers/{rp}/inventories", """{"inventories": {}}""");
        using var notJson = await SendJsonAsync(HttpMethod.Put, $"/resource_providers/{rp}/inventories", "{not json");

        await AssertPlacementErrorAsync(missingGeneration, 400, PlacementErrorCodes.Default);
        await AssertPlacementErrorAsync(notJson, 400, PlacementErrorCodes.Default);
    }

    [Fact]
    public async Task GetResourceProvider_Unknown_Returns404()
    {
        using var response = await fixture.Http.GetAsync($"/resource_providers/{Guid.NewGuid()}", Ct);

        await AssertPlacementErrorAsync(response, 404, PlacementErrorCodes.Default);
    }

    [Fact]
    public async Task GetAllocations_ExistingConsumer_Returns128Shape()
    {
        var rp = await NewProviderAsync(vcpu: 8);
        var consumer = Guid.NewGuid().ToString();
        await Client.PutAllocationsAsync(consumer, Allocations(rp, vcpu: 2, generation: null), Ct);

        var body = JsonNode.Parse(await fixture.Http.GetStringAsync($"/allocations/{consumer}", Ct))!;

        Assert.Equal(1, (long?)body["consumer_generation"]);
        Assert.Equal(Project, (string?)body["project_id"]);
        Assert.Equal(User, (string?)body["user_id"]);
        Assert.Equal(2, (long?)body["allocations"]![rp]!["resources"]!["VCPU"]);
        Assert.Equal(fixture.Service.GetProvider(rp)!.Generation, (long?)body["allocations"]![rp]!["generation"]);
    }

    [Fact]
    public async Task PutAllocationsAsync_StaleConsumerGeneration_ThrowsConflict()
    {
        var rp = await NewProviderAsync(vcpu: 8);
        var consumer = Guid.NewGuid().ToString();
        await Client.PutAllocationsAsync(consumer, Allocations(rp, vcpu: 2, generation: null), Ct);

        var ex = await Assert.ThrowsAsync<PlacementConflictException>(() =>
            Client.PutAllocationsAsync(consumer, Allocations(rp, vcpu: 3, generation: null), Ct));

        Assert.Contains("consumer generation conflict", ex.Message);
    }

    [Fact]
    public async Task PutAllocations_OverCapacity_Returns409()
    {
        var rp = await NewProviderAsync(vcpu: 2);

        using var response = await SendJsonAsync(HttpMethod.Put, $"/allocations/{Guid.NewGuid()}",
            $$"""{"allocations": {"{{rp}}": {"resources": {"VCPU": 3} } }, "consumer_generation": null, "project_id": "p", "user_id": "u"}""");

        var detail = await AssertPlacementErrorAsync(response, 409, PlacementErrorCodes.Default);
        Assert.Contains("Unable to allocate inventory", detail);
    }

    [Fact]
    public async Task MoveAllocationsAsync_InstanceToMigrationAndBack_KeepsUsagesRight()
    {
        var source = await NewProviderAsync(vcpu: 8);
        var dest = await NewProviderAsync(vcpu: 8);
        var instance = Guid.NewGuid().ToString();
        var migration = Guid.NewGuid().ToString();
        await Client.PutAllocationsAsync(instance, Allocations(source, vcpu: 2, generation: null), Ct);

        Assert.True(await Client.MoveAllocationsAsync(instance, migration, Ct));
        var emptied = await Client.GetAllocationsAsync(instance, Ct);
        await Client.PutAllocationsAsync(instance, Allocations(dest, vcpu: 4, generation: emptied.ConsumerGeneration), Ct);

        Assert.Null(emptied.ConsumerGeneration);
        Assert.Empty(emptied.Allocations!);
        Assert.Equal(2, (await Client.GetProviderUsagesAsync(source, Ct)).Usages["VCPU"]);
        Assert.Equal(4, (await Client.GetProviderUsagesAsync(dest, Ct)).Usages["VCPU"]);

        Assert.True(await Client.MoveAllocationsAsync(migration, instance, Ct));

        Assert.Equal(2, (await Client.GetProviderUsagesAsync(source, Ct)).Usages["VCPU"]);
        Assert.Equal(0, (await Client.GetProviderUsagesAsync(dest, Ct)).Usages["VCPU"]);
        Assert.Equal([source], (await Client.GetAllocationsAsync(instance, Ct)).Allocations!.Keys);
        Assert.False(await Client.MoveAllocationsAsync(migration, instance, Ct));
    }

    [Fact]
    public async Task RemoveProviderFromAllocationAsync_TwoProviders_RemovesOneThenAll()
    {
        var a = await NewProviderAsync(vcpu: 8);
        var b = await NewProviderAsync(vcpu: 8);
        var consumer = Guid.NewGuid().ToString();
        var both = Allocations(a, vcpu: 1, generation: null);
        both.Allocations![b] = new AllocationResourcesDto(new() { ["VCPU"] = 3 });
        await Client.PutAllocationsAsync(consumer, both, Ct);

        Assert.True(await Client.RemoveProviderFromAllocationAsync(consumer, b, Ct));
        Assert.False(await Client.RemoveProviderFromAllocationAsync(consumer, b, Ct));
        Assert.Equal([a], (await Client.GetAllocationsAsync(consumer, Ct)).Allocations!.Keys);
        Assert.True(await Client.RemoveProviderFromAllocationAsync(consumer, a, Ct));

        Assert.Null((await Client.GetAllocationsAsync(consumer, Ct)).ConsumerGeneration);
        Assert.Equal(0, (await Client.GetProviderUsagesAsync(a, Ct)).Usages["VCPU"]);
    }

    [Fact]
    public async Task DeleteAllocationsAsync_ExistingThenMissing_ReturnsTrueThenFalse()
    {
        var rp = await NewProviderAsync(vcpu: 8);
        var consumer = Guid.NewGuid().ToString();
        await Client.PutAllocationsAsync(consumer, Allocations(rp, vcpu: 1, generation: null), Ct);

        Assert.True(await Client.DeleteAllocationsAsync(consumer, Ct));
        Assert.False(await Client.DeleteAllocationsAsync(consumer, Ct));
    }

    [Fact]
    public async Task DeleteResourceProvider_WithAllocations_Returns409()
    {
        var rp = await NewProviderAsync(vcpu: 8);
        await Client.PutAllocationsAsync(Guid.NewGuid().ToString(), Allocations(rp, vcpu: 1, generation: null), Ct);

        using var response = await fixture.Http.DeleteAsync($"/resource_providers/{rp}", Ct);

        await AssertPlacementErrorAsync(response, 409, PlacementErrorCodes.Default);
        Assert.NotNull(fixture.Service.GetProvider(rp));
    }

    [Fact]
    public async Task PostAllocations_OneConsumerStale_ChangesNothing()
    {
        var rp = await NewProviderAsync(vcpu: 8);
        var existing = Guid.NewGuid().ToString();
        var fresh = Guid.NewGuid().ToString();
        await Client.PutAllocationsAsync(existing, Allocations(rp, vcpu: 1, generation: null), Ct);

        using var response = await SendJsonAsync(HttpMethod.Post, "/allocations", $$"""
            {
              "{{fresh}}": {"allocations": {"{{rp}}": {"resources": {"VCPU": 2} } }, "consumer_generation": null, "project_id": "p", "user_id": "u"},
              "{{existing}}": {"allocations": {}, "consumer_generation": 5, "project_id": "p", "user_id": "u"}
            }
            """);

        await AssertPlacementErrorAsync(response, 409, PlacementErrorCodes.ConcurrentUpdate);
        Assert.Null((await Client.GetAllocationsAsync(fresh, Ct)).ConsumerGeneration);
        Assert.Equal(1, (await Client.GetProviderUsagesAsync(rp, Ct)).Usages["VCPU"]);
    }

    [Fact]
    public async Task GetAllocationCandidates_TraitsInTreeAndLimit_ReturnsPlacementShape()
    {
        var trait = $"CUSTOM_T{Guid.NewGuid():N}".ToUpperInvariant();
        var plain = await NewProviderAsync(vcpu: 8);
        var tagged = await NewProviderAsync(vcpu: 8);
        var taggedDisabled = await NewProviderAsync(vcpu: 8);
        SetTraits(tagged, trait);
        SetTraits(taggedDisabled, trait, "COMPUTE_STATUS_DISABLED");

        var filtered = await GetJsonAsync($"/allocation_candidates?resources=VCPU:2&required={trait},!COMPUTE_STATUS_DISABLED");
        var inTree = await GetJsonAsync($"/allocation_candidates?resources=VCPU:2&in_tree={plain}");
        var anyOf = await GetJsonAsync($"/allocation_candidates?resources=VCPU:2&required=in:{trait},CUSTOM_NOPE&limit=1");
        var tooBig = await GetJsonAsync($"/allocation_candidates?resources=VCPU:9&in_tree={plain}");

        var request = Assert.Single(filtered["allocation_requests"]!.AsArray())!;
        Assert.Equal(2, (long?)request["allocations"]![tagged]!["resources"]!["VCPU"]);
        var summary = filtered["provider_summaries"]![tagged]!;
        Assert.Equal(8, (long?)summary["resources"]!["VCPU"]!["capacity"]);
        Assert.Equal(0, (long?)summary["resources"]!["VCPU"]!["used"]);
        Assert.Equal([trait], summary["traits"]!.AsArray().Select(t => (string?)t));
        Assert.Equal(plain, (string?)Assert.Single(inTree["allocation_requests"]!.AsArray())!["allocations"]!.AsObject().Single().Key);
        Assert.Single(anyOf["allocation_requests"]!.AsArray());
        Assert.Empty(tooBig["allocation_requests"]!.AsArray());
        Assert.Empty(tooBig["provider_summaries"]!.AsObject());
    }

    [Fact]
    public async Task GetAllocationCandidates_BadResources_Returns400()
    {
        using var response = await fixture.Http.GetAsync("/allocation_candidates?resources=VCPU", Ct);

        await AssertPlacementErrorAsync(response, 400, PlacementErrorCodes.Default);
    }

    [Fact]
    public async Task GetUsages_ForProject_SumsItsConsumers()
    {
        var rp = await NewProviderAsync(vcpu: 8);
        var project = $"project-{Guid.NewGuid()}";
        var allocation = Allocations(rp, vcpu: 3, generation: null) with { ProjectId = project };
        await Client.PutAllocationsAsync(Guid.NewGuid().ToString(), allocation, Ct);
        await Client.PutAllocationsAsync(Guid.NewGuid().ToString(), allocation, Ct);

        var body = await GetJsonAsync($"/usages?project_id={project}");

        Assert.Equal(6, (long?)body["usages"]!["VCPU"]);
    }

    /// <summary>
    /// Property: whatever sequence of puts, moves, provider removals and deletes the agents issue, each
    /// provider's reported usage equals the sum of the allocations against it, and never exceeds capacity.
    /// </summary>
    [Fact]
    public async Task RandomAllocationSequences_ThroughHttpClient_KeepUsageEqualToSumOfAllocations()
    {
        var random = new Random(20240611);
        var providers = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            providers.Add(await NewProviderAsync(vcpu: 6));
        }
        var consumers = Enumerable.Range(0, 6).Select(_ => Guid.NewGuid().ToString()).ToArray();

        for (var step = 0; step < 150; step++)
        {
            var consumer = consumers[random.Next(consumers.Length)];
            switch (random.Next(4))
            {
                case 0:
                    var current = await Client.GetAllocationsAsync(consumer, Ct);
                    var put = new ConsumerAllocationsDto
                    {
                        Allocations = [],
                        ConsumerGeneration = current.ConsumerGeneration,
                        ProjectId = Project,
                        UserId = User,
                    };
                    foreach (var rp in providers.OrderBy(_ => random.Next()).Take(random.Next(1, 3)))
                    {
                        put.Allocations[rp] = new AllocationResourcesDto(new() { ["VCPU"] = random.Next(1, 4) });
                    }
                    try
                    {
                        await Client.PutAllocationsAsync(consumer, put, Ct);
                    }
                    catch (PlacementConflictException ex)
                    {
                        Assert.Contains("Unable to allocate inventory", ex.Message);
                    }
                    break;
                case 1:
                    var target = consumers[random.Next(consumers.Length)];
                    if (target != consumer)
                    {
                        await Client.MoveAllocationsAsync(consumer, target, Ct);
                    }
                    break;
                case 2:
                    await Client.RemoveProviderFromAllocationAsync(consumer, providers[random.Next(providers.Count)], Ct);
                    break;
                default:
                    await Client.DeleteAllocationsAsync(consumer, Ct);
                    break;
            }

            var expected = providers.ToDictionary(rp => rp, _ => 0L);
            foreach (var c in consumers)
            {
                foreach (var (rp, part) in (await Client.GetAllocationsAsync(c, Ct)).Allocations!)
                {
                    expected[rp] += part.Resources["VCPU"];
                }
            }
            foreach (var rp in providers)
            {
                var used = (await Client.GetProviderUsagesAsync(rp, Ct)).Usages["VCPU"];
                Assert.True(expected[rp] == used, $"step {step}: provider {rp} reports {used}, allocations sum to {expected[rp]}");
                Assert.InRange(used, 0, 6);
            }
        }
    }

    private async Task<string> NewProviderAsync(long vcpu)
    {
        var uuid = Guid.NewGuid().ToString();
        await Client.EnsureResourceProviderAsync(uuid, $"host-{uuid}", Ct);
        await Client.SetInventoriesAsync(uuid, Inventories(vcpu), Ct);
        return uuid;
    }

    private void SetTraits(string rp, params string[] traits) =>
        fixture.Service.SetTraits(rp, fixture.Service.GetProvider(rp)!.Generation, traits);

    private static Dictionary<string, InventoryDto> Inventories(long vcpu, long? memoryMb = null)
    {
        var inventories = new Dictionary<string, InventoryDto> { ["VCPU"] = new(vcpu) };
        if (memoryMb is { } memory)
        {
            inventories["MEMORY_MB"] = new(memory, Reserved: 512);
        }
        return inventories;
    }

    private static ConsumerAllocationsDto Allocations(string rp, long vcpu, long? generation) => new()
    {
        Allocations = new() { [rp] = new AllocationResourcesDto(new() { ["VCPU"] = vcpu }) },
        ConsumerGeneration = generation,
        ProjectId = Project,
        UserId = User,
    };

    private async Task<HttpResponseMessage> SendJsonAsync(HttpMethod method, string path, string json)
    {
        using var request = new HttpRequestMessage(method, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        request.Headers.Add("OpenStack-API-Version", "placement 1.39");
        return await fixture.Http.SendAsync(request, Ct);
    }

    private async Task<JsonNode> GetJsonAsync(string path)
    {
        using var response = await fixture.Http.GetAsync(path, Ct);
        var text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(response.IsSuccessStatusCode, text);
        return JsonNode.Parse(text)!;
    }

    /// <summary>Asserts Placement's error shape and returns the detail.</summary>
    private async Task<string> AssertPlacementErrorAsync(HttpResponseMessage response, int status, string code)
    {
        var text = await response.Content.ReadAsStringAsync(Ct);
        var body = JsonNode.Parse(text)!;
        var error = body["errors"]![0]!;
        Assert.True(status == (int)response.StatusCode, text);
        Assert.Equal(status, (int?)error["status"]);
        Assert.Equal(code, (string?)error["code"]);
        Assert.False(string.IsNullOrEmpty((string?)error["title"]));
        Assert.Equal("placement 1.39", response.Headers.GetValues("OpenStack-API-Version").Single());
        return (string?)error["detail"] ?? "";
    }

    /// <summary>Records each request's method and path (relative to the placement root), then sends it on.</summary>
    private sealed class CountingHandler(HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        public List<string> Requests { get; } = [];

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Requests.Add($"{request.Method} {request.RequestUri!.AbsolutePath.TrimStart('/')}");
            return base.SendAsync(request, cancellationToken);
        }
    }
}
