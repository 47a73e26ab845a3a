using System.Text.Json.Nodes;

namespace Ferry.Tests.Api;

/// <summary>
/// Fields appear exactly from the microversion that introduced them (checked against Nova's response schemas
/// in nova/api/openstack/compute/schemas, one case per boundary).
/// </summary>
[Collection(ComputeApiCollection.Name)]
public sealed class MicroversionViewsTests(ComputeApiFixture f)
{
    private static IEnumerable<string> Keys(JsonNode? o) => o!.AsObject().Select(p => p.Key).Order(StringComparer.Ordinal);

    private static IEnumerable<string> Sorted(params string[] keys) => keys.Order(StringComparer.Ordinal);

    [Theory]
    [InlineData("2.1", "id,members,metadata,name,policies")]
    [InlineData("2.12", "id,members,metadata,name,policies")]
    [InlineData("2.13", "id,members,metadata,name,policies,project_id,user_id")]
    [InlineData("2.63", "id,members,metadata,name,policies,project_id,user_id")]
    [InlineData("2.64", "id,members,name,policy,project_id,rules,user_id")]
    public async Task ServerGroupShowAndList_EachMicroversion_ReturnsExactlyNovaKeys(string version, string keys)
    {
        var group = f.Groups.Create("g", "affinity", null, "admin", "admin");

        var show = await f.SendAsync(HttpMethod.Get, $"v2.1/os-server-groups/{group.Uuid}", version: version);
        var list = await f.SendAsync(HttpMethod.Get, "v2.1/os-server-groups", version: version);

        Assert.Equal(Sorted(keys.Split(',')), Keys(show.Json!["server_group"]));
        Assert.Equal(Sorted(keys.Split(',')), Keys(list.Json!["server_groups"]!.AsArray().Single(g => (string?)g!["id"] == group.Uuid)));
    }

    [Theory]
    [InlineData("2.70", false, false)]
    [InlineData("2.71", true, false)]
    [InlineData("2.95", true, false)]
    public async Task ServerGroupsField_From271_InShowOnlyNotInListDetail(string version, bool inShow, bool inList)
    {
        var vm = f.AddInstance(f.AddHost());

        var show = await f.SendAsync(HttpMethod.Get, $"v2.1/servers/{vm.Uuid}", version: version);
        var list = await f.SendAsync(HttpMethod.Get, "v2.1/servers/detail", version: version);

        Assert.Equal(inShow, show.Json!["server"]!.AsObject().ContainsKey("server_groups"));
        var listed = list.Json!["servers"]!.AsArray().Single(s => (string?)s!["id"] == vm.Uuid)!;
        Assert.Equal(inList, listed.AsObject().ContainsKey("server_groups"));
    }

    [Fact]
    public async Task ImageViews_Links_AreSelfBookmarkAndAlternate()
    {
        var r = await f.SendAsync(HttpMethod.Get, "v2.1/images/155d900f-4e14-4e4c-a73d-069cbf4541e6", token: "u:p");

        var links = r.Json!["image"]!["links"]!.AsArray();
        Assert.Equal(["self", "bookmark", "alternate"], links.Select(l => (string)l!["rel"]!));
        var alternate = links[2]!;
        Assert.Equal("application/vnd.openstack.image", (string?)alternate["type"]);
        Assert.EndsWith(":9292/images/155d900f-4e14-4e4c-a73d-069cbf4541e6", (string?)alternate["href"], StringComparison.Ordinal);
        var list = await f.SendAsync(HttpMethod.Get, "v2.1/images/detail", token: "u:p");
        Assert.All(list.Json!["images"]!.AsArray(), i => Assert.Equal(3, i!["links"]!.AsArray().Count));
    }
}
