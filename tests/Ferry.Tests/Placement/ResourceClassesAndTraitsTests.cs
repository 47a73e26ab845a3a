using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Ferry.Core.Placement;

namespace Ferry.Tests.Placement;

/// <summary>Placement's /resource_classes and /traits and the trait check on provider traits, per microversion.</summary>
public sealed class ResourceClassesAndTraitsTests(PlacementApiFixture fixture) : IClassFixture<PlacementApiFixture>, IDisposable
{
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(30));

    private CancellationToken Ct => _timeout.Token;

    public void Dispose() => _timeout.Dispose();

    private static string Unique(string prefix) => $"{prefix}{Guid.NewGuid():N}".ToUpperInvariant();

    private async Task<(HttpStatusCode Status, JsonNode? Json, HttpResponseMessage Response)> SendAsync(HttpMethod method, string path, string? version = "1.39", string? body = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (version is not null)
        {
            request.Headers.Add("OpenStack-API-Version", $"placement {version}");
        }
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }
        var response = await fixture.Http.SendAsync(request, Ct);
        var text = await response.Content.ReadAsStringAsync(Ct);
        return (response.StatusCode, text.Length > 0 ? JsonNode.Parse(text) : null, response);
    }

    private static string? Detail(JsonNode? error) => (string?)error?["errors"]?[0]?["detail"];

    [Fact]
    public async Task ListResourceClasses_From12_StandardFirstThenCustomWithLinks()
    {
        var custom = Unique("CUSTOM_RC_");
        Assert.Equal(HttpStatusCode.Created, (await SendAsync(HttpMethod.Post, "/resource_classes", body: $$"""{"name": "{{custom}}"}""")).Status);

        var (status, json, _) = await SendAsync(HttpMethod.Get, "/resource_classes", "1.2");

        Assert.Equal(HttpStatusCode.OK, status);
        var names = json!["resource_classes"]!.AsArray().Select(r => (string)r!["name"]!).ToList();
        Assert.Equal(["VCPU", "MEMORY_MB", "DISK_GB"], names.Take(3));
        Assert.Contains("PCPU", names);
        Assert.Contains(custom, names);
        var vcpu = json!["resource_classes"]![0]!;
        Assert.Equal("""{"name":"VCPU","links":[{"rel":"self","href":"/resource_classes/VCPU"}]}""", vcpu.ToJsonString());
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(HttpMethod.Get, "/resource_classes", "1.1")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(HttpMethod.Get, "/resource_classes", version: null)).Status);
    }

    [Fact]
    public async Task CreateResourceClass_PostThenPut_CreatesOnceAndConflicts()
    {
        var name = Unique("CUSTOM_GPU_");

        var post = await SendAsync(HttpMethod.Post, "/resource_classes", body: $$"""{"name": "{{name}}"}""");
        var again = await SendAsync(HttpMethod.Post, "/resource_classes", body: $$"""{"name": "{{name}}"}""");
        var put = await SendAsync(HttpMethod.Put, $"/resource_classes/{name}", "1.7");
        var putNew = await SendAsync(HttpMethod.Put, $"/resource_classes/{name}_B", "1.7");
        var show = await SendAsync(HttpMethod.Get, $"/resource_classes/{name}_B");

        Assert.Equal(HttpStatusCode.Created, post.Status);
        Assert.Equal($"/resource_classes/{name}", post.Response.Headers.Location!.OriginalString);
        Assert.Equal(HttpStatusCode.Conflict, again.Status);
        Assert.Equal($"Conflicting resource class already exists: {name}", Detail(again.Json));
        Assert.Equal(HttpStatusCode.NoContent, put.Status);
        Assert.Equal(HttpStatusCode.Created, putNew.Status);
        Assert.Equal($"{name}_B", (string?)show.Json!["name"]);
    }

    [Theory]
    [InlineData("POST", "/resource_classes", """{"name": "VCPU"}""")]
    [InlineData("POST", "/resource_classes", """{"name": "CUSTOM_lower"}""")]
    [InlineData("POST", "/resource_classes", """{"name": "CUSTOM_X", "extra": 1}""")]
    [InlineData("POST", "/resource_classes", """{"name": 5}""")]
    [InlineData("PUT", "/resource_classes/MY_CLASS", null)]
    [InlineData("PUT", "/traits/NOT_CUSTOM", null)]
    [InlineData("PUT", "/traits/CUSTOM_lower", null)]
    public async Task Create_InvalidName_Returns400AndCreatesNothing(string method, string path, string? body)
    {
        var before = (await SendAsync(HttpMethod.Get, "/resource_classes")).Json!.ToJsonString() + (await SendAsync(HttpMethod.Get, "/traits")).Json!.ToJsonString();

        var (status, json, _) = await SendAsync(new HttpMethod(method), path, body: body);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.NotNull(Detail(json));
        var after = (await SendAsync(HttpMethod.Get, "/resource_classes")).Json!.ToJsonString() + (await SendAsync(HttpMethod.Get, "/traits")).Json!.ToJsonString();
        Assert.Equal(before, after);
    }

    [Fact]
    public async Task DeleteResourceClass_StandardInUseMissingAndCustom_AnswerAsPlacement()
    {
        var name = Unique("CUSTOM_DEL_");
        var used = Unique("CUSTOM_USED_");
        await SendAsync(HttpMethod.Put, $"/resource_classes/{name}");
        await SendAsync(HttpMethod.Put, $"/resource_classes/{used}");
        var rp = Guid.NewGuid().ToString();
        fixture.Service.EnsureProvider(rp, $"host-{rp}");
        fixture.Service.SetInventories(rp, null, new Dictionary<string, Ferry.ControlPlane.Placement.Inventory> { [used] = new() { Total = 4 } });

        var standard = await SendAsync(HttpMethod.Delete, "/resource_classes/VCPU");
        var inUse = await SendAsync(HttpMethod.Delete, $"/resource_classes/{used}");
        var deleted = await SendAsync(HttpMethod.Delete, $"/resource_classes/{name}");
        var missing = await SendAsync(HttpMethod.Delete, $"/resource_classes/{name}");

        Assert.Equal((HttpStatusCode.BadRequest, "Error in delete resource class: Cannot delete standard resource class VCPU."), (standard.Status, Detail(standard.Json)));
        Assert.Equal((HttpStatusCode.Conflict, $"Error in delete resource class: Cannot delete resource class {used}. Class is in use in inventory."), (inUse.Status, Detail(inUse.Json)));
        Assert.Equal(HttpStatusCode.NoContent, deleted.Status);
        Assert.Equal((HttpStatusCode.NotFound, $"No such resource class {name}."), (missing.Status, Detail(missing.Json)));
    }

    [Fact]
    public async Task RenameResourceClass_Below17_RenamesCustomAndRefusesStandard()
    {
        var name = Unique("CUSTOM_OLD_");
        await SendAsync(HttpMethod.Put, $"/resource_classes/{name}");

        var renamed = await SendAsync(HttpMethod.Put, $"/resource_classes/{name}", "1.6", $$"""{"name": "{{name}}_NEW"}""");
        var standard = await SendAsync(HttpMethod.Put, "/resource_classes/VCPU", "1.6", """{"name": "CUSTOM_VCPU2"}""");

        Assert.Equal(HttpStatusCode.OK, renamed.Status);
        Assert.Equal($"{name}_NEW", (string?)renamed.Json!["name"]);
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(HttpMethod.Get, $"/resource_classes/{name}")).Status);
        Assert.Equal((HttpStatusCode.BadRequest, "Cannot update standard resource class VCPU"), (standard.Status, Detail(standard.Json)));
    }

    [Fact]
    public async Task Traits_CreateShowListFilterDelete_FollowPlacement()
    {
        var name = Unique("CUSTOM_TR_");

        var created = await SendAsync(HttpMethod.Put, $"/traits/{name}", "1.6");
        var existing = await SendAsync(HttpMethod.Put, $"/traits/{name}", "1.6");
        var shown = await SendAsync(HttpMethod.Get, $"/traits/{name}", "1.6");
        var inList = await SendAsync(HttpMethod.Get, $"/traits?name=in:{name},COMPUTE_STATUS_DISABLED,CUSTOM_NOPE");
        var prefixed = await SendAsync(HttpMethod.Get, "/traits?name=startswith:COMPUTE_");
        var unassociated = await SendAsync(HttpMethod.Get, $"/traits?name=in:{name}&associated=false");
        var deleted = await SendAsync(HttpMethod.Delete, $"/traits/{name}");
        var gone = await SendAsync(HttpMethod.Get, $"/traits/{name}");

        Assert.Equal(HttpStatusCode.Created, created.Status);
        Assert.Equal($"/traits/{name}", created.Response.Headers.Location!.OriginalString);
        Assert.Equal(HttpStatusCode.NoContent, existing.Status);
        Assert.Equal(HttpStatusCode.NoContent, shown.Status);
        Assert.Equal(["COMPUTE_STATUS_DISABLED", name], inList.Json!["traits"]!.AsArray().Select(t => (string)t!));
        var compute = prefixed.Json!["traits"]!.AsArray().Select(t => (string)t!).ToList();
        Assert.Contains("COMPUTE_STATUS_DISABLED", compute);
        Assert.All(compute, t => Assert.StartsWith("COMPUTE_", t, StringComparison.Ordinal));
        Assert.Equal([name], unassociated.Json!["traits"]!.AsArray().Select(t => (string)t!));
        Assert.Equal(HttpStatusCode.NoContent, deleted.Status);
        Assert.Equal((HttpStatusCode.NotFound, $"No such trait(s): {name}."), (gone.Status, Detail(gone.Json)));
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(HttpMethod.Get, "/traits", "1.5")).Status);
    }

    [Theory]
    [InlineData("/traits?name=COMPUTE_NODE", "Badly formatted name parameter. Expected name query string parameter in form: ?name=[in|startswith]:[name1,name2|prefix]. Got: \"COMPUTE_NODE\"")]
    [InlineData("/traits?associated=maybe", "The query parameter \"associated\" only accepts \"true\" or \"false\"")]
    [InlineData("/traits?bogus=1", "Invalid query string parameters: Additional properties are not allowed ('bogus' was unexpected)")]
    public async Task ListTraits_BadQuery_Returns400(string path, string detail)
    {
        var (status, json, _) = await SendAsync(HttpMethod.Get, path);

        Assert.Equal((HttpStatusCode.BadRequest, detail), (status, Detail(json)));
    }

    [Fact]
    public async Task ProviderTraits_UnknownTraitOrStaleGeneration_RefusedAndInUseTraitCannotBeDeleted()
    {
        var name = Unique("CUSTOM_RP_");
        await SendAsync(HttpMethod.Put, $"/traits/{name}");
        var rp = Guid.NewGuid().ToString();
        var generation = fixture.Service.EnsureProvider(rp, $"host-{rp}").Generation;

        var unknown = await SendAsync(HttpMethod.Put, $"/resource_providers/{rp}/traits",
            body: $$"""{"resource_provider_generation": {{generation}}, "traits": ["{{name}}", "CUSTOM_MISSING_X"]}""");
        var stale = await SendAsync(HttpMethod.Put, $"/resource_providers/{rp}/traits",
            body: $$"""{"resource_provider_generation": {{generation + 5}}, "traits": ["CUSTOM_MISSING_X"]}""");
        var set = await SendAsync(HttpMethod.Put, $"/resource_providers/{rp}/traits",
            body: $$"""{"resource_provider_generation": {{generation}}, "traits": ["{{name}}", "HW_CPU_X86_AVX2"]}""");
        var inUse = await SendAsync(HttpMethod.Delete, $"/traits/{name}");
        var associated = await SendAsync(HttpMethod.Get, $"/traits?name=in:{name}&associated=true");
        var standard = await SendAsync(HttpMethod.Delete, "/traits/HW_CPU_X86_AVX2");

        Assert.Equal((HttpStatusCode.BadRequest, "No such trait CUSTOM_MISSING_X"), (unknown.Status, Detail(unknown.Json)));
        Assert.Equal(HttpStatusCode.Conflict, stale.Status);
        Assert.Equal(HttpStatusCode.OK, set.Status);
        Assert.Equal(generation + 1, (long)set.Json!["resource_provider_generation"]!);
        Assert.Equal((HttpStatusCode.Conflict, $"The trait {name} is in use by a resource provider."), (inUse.Status, Detail(inUse.Json)));
        Assert.Equal([name], associated.Json!["traits"]!.AsArray().Select(t => (string)t!));
        Assert.Equal((HttpStatusCode.BadRequest, "Cannot delete standard trait HW_CPU_X86_AVX2."), (standard.Status, Detail(standard.Json)));
        Assert.Equal(HttpStatusCode.NoContent, (await SendAsync(HttpMethod.Delete, $"/resource_providers/{rp}/traits")).Status);
        Assert.Equal(HttpStatusCode.NoContent, (await SendAsync(HttpMethod.Delete, $"/traits/{name}")).Status);
    }
    [Fact]
    public async Task Inventories_UnknownResourceClass_400NoSuchResourceClass_NothingChanged()
    {
        var rp = Guid.NewGuid().ToString();
        var generation = fixture.Service.EnsureProvider(rp, $"host-{rp}").Generation;
        generation = fixture.Service.SetInventories(rp, generation, new Dictionary<string, Ferry.ControlPlane.Placement.Inventory> { ["VCPU"] = new() { Total = 4 } }).Generation;
        var unknown = Unique("CUSTOM_NEVER_CREATED_");

        var all = await SendAsync(HttpMethod.Put, $"/resource_providers/{rp}/inventories",
            body: $$"""{"resource_provider_generation": {{generation}}, "inventories": {"VCPU": {"total": 8}, "{{unknown}}": {"total": 1} } }""");
        Assert.Equal((HttpStatusCode.BadRequest, $"Unknown resource class in inventory for resource provider {rp}: No such resource class {unknown}."),
            (all.Status, Detail(all.Json)));
        var house = await SendAsync(HttpMethod.Put, $"/resource_providers/{rp}/inventories", body: $$"""{"resource_provider_generation": {{generation}}, "inventories": {"HOUSE": {"total": 253} } }""");
        Assert.Equal((HttpStatusCode.BadRequest, $"Unknown resource class in inventory for resource provider {rp}: No such resource class HOUSE."), (house.Status, Detail(house.Json)));
        var one = await SendAsync(HttpMethod.Put, $"/resource_providers/{rp}/inventories/{unknown}", body: $$"""{"resource_provider_generation": {{generation}}, "total": 1}""");
        Assert.Equal((HttpStatusCode.BadRequest, $"Unable to update inventory for resource provider {rp}: No such resource class {unknown}."), (one.Status, Detail(one.Json)));
        var post = await SendAsync(HttpMethod.Post, $"/resource_providers/{rp}/inventories", body: """{"resource_class": "NO_CLASS_14", "total": 2048}""");
        Assert.Equal((HttpStatusCode.BadRequest, $"Unable to create inventory for resource provider {rp}: No such resource class NO_CLASS_14."), (post.Status, Detail(post.Json)));

        Assert.Equal(generation, fixture.Service.GetProvider(rp)!.Generation);
        var inventories = fixture.Service.GetInventories(rp);
        Assert.Equal(["VCPU"], inventories.Keys);
        Assert.Equal(4, inventories["VCPU"].Total);

        // A stale generation is a conflict first, as Placement checks it before the classes.
        var stale = await SendAsync(HttpMethod.Put, $"/resource_providers/{rp}/inventories", body: $$"""{"resource_provider_generation": {{generation + 7}}, "inventories": {"HOUSE": {"total": 1} } }""");
        Assert.Equal(HttpStatusCode.Conflict, stale.Status);

        // Once created, the custom class is accepted.
        Assert.Equal(HttpStatusCode.Created, (await SendAsync(HttpMethod.Put, $"/resource_classes/{unknown}")).Status);
        var accepted = await SendAsync(HttpMethod.Put, $"/resource_providers/{rp}/inventories/{unknown}", body: $$"""{"resource_provider_generation": {{generation}}, "total": 1}""");
        Assert.Equal(HttpStatusCode.OK, accepted.Status);
        Assert.Equal(1, fixture.Service.GetInventories(rp)[unknown].Total);
        Assert.Equal(HttpStatusCode.NoContent, (await SendAsync(HttpMethod.Delete, $"/resource_providers/{rp}/inventories/{unknown}")).Status);
        Assert.Equal(HttpStatusCode.NoContent, (await SendAsync(HttpMethod.Delete, $"/resource_classes/{unknown}")).Status);
    }

    [Fact]
    public async Task PostInventory_NewClass201WithLocation_SameClassAgain409()
    {
        var rp = Guid.NewGuid().ToString();
        var generation = fixture.Service.EnsureProvider(rp, $"host-{rp}").Generation;

        var created = await SendAsync(HttpMethod.Post, $"/resource_providers/{rp}/inventories",
            body: """{"resource_class": "DISK_GB", "total": 2048, "reserved": 512, "min_unit": 10, "max_unit": 1024, "step_size": 10, "allocation_ratio": 1.0}""");
        Assert.Equal(HttpStatusCode.Created, created.Status);
        Assert.EndsWith($"/resource_providers/{rp}/inventories/DISK_GB", created.Response.Headers.Location!.ToString());
        Assert.Equal((generation + 1, 2048L, 512L), ((long)created.Json!["resource_provider_generation"]!, (long)created.Json["total"]!, (long)created.Json["reserved"]!));
        Assert.Equal(2048, fixture.Service.GetInventories(rp)["DISK_GB"].Total);

        var again = await SendAsync(HttpMethod.Post, $"/resource_providers/{rp}/inventories", body: """{"resource_class": "DISK_GB", "total": 1}""");
        Assert.Equal(HttpStatusCode.Conflict, again.Status);
        Assert.Contains("Update conflict", Detail(again.Json));
        Assert.Equal(2048, fixture.Service.GetInventories(rp)["DISK_GB"].Total);
    }
}
