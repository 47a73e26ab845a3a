namespace Ferry.Tests.Api;

[Collection(ComputeApiCollection.Name)]
public sealed class ReadEndpointsTests(ComputeApiFixture f)
{
    [Fact]
    public async Task Hypervisors_Detail_CountsInstancesOnHost()
    {
        var host = f.AddHost();
        f.AddInstance(host);
        f.AddInstance(host, flavorId: "2");
        var node = f.Nodes.FindByHost(host)!;
        var r = await f.SendAsync(HttpMethod.Get, $"v2.1/os-hypervisors/{node.Uuid}", version: "2.87");
        Assert.Equal(200, r.Status);
        var h = r.Json!["hypervisor"]!;
        Assert.Equal(host, h["hypervisor_hostname"]!.GetValue<string>());
        Assert.Equal("up", h["state"]!.GetValue<string>());
        Assert.Equal(2, h["running_vms"]!.GetValue<int>());
        Assert.Equal(2, h["vcpus_used"]!.GetValue<int>());
        Assert.Equal(2560, h["memory_mb_used"]!.GetValue<int>());
        Assert.Equal("fake", h["hypervisor_type"]!.GetValue<string>());
        var latest = await f.SendAsync(HttpMethod.Get, $"v2.1/os-hypervisors/{node.Uuid}");
        Assert.False(latest.Json!["hypervisor"]!.AsObject().ContainsKey("vcpus"));
        Assert.True(latest.Json["hypervisor"]!.AsObject().ContainsKey("uptime"));
        var list = await f.SendAsync(HttpMethod.Get, "v2.1/os-hypervisors/detail");
        Assert.Contains(list.Json!["hypervisors"]!.AsArray(), x => x!["id"]!.GetValue<string>() == node.Uuid);
        Assert.Equal(400, (await f.SendAsync(HttpMethod.Get, "v2.1/os-hypervisors/xyz")).Status);
        Assert.Equal(404, (await f.SendAsync(HttpMethod.Get, $"v2.1/os-hypervisors/{Guid.NewGuid()}")).Status);
    }

    [Fact]
    public async Task Flavors_ListShowCreateDelete()
    {
        var list = await f.SendAsync(HttpMethod.Get, "v2.1/flavors/detail", token: "u:p");
        Assert.Contains(list.Json!["flavors"]!.AsArray(), x => x!["name"]!.GetValue<string>() == "m1.tiny");
        var byName = await f.SendAsync(HttpMethod.Get, "v2.1/flavors/m1.small", token: "u:p");
        Assert.Equal(2048, byName.Json!["flavor"]!["ram"]!.GetValue<int>());
        Assert.Equal(403, (await f.SendAsync(HttpMethod.Post, "v2.1/flavors", """{"flavor": {"name": "x", "ram": 1, "vcpus": 1, "disk": 0}}""", token: "u:p")).Status);
        var created = await f.SendAsync(HttpMethod.Post, "v2.1/flavors", """{"flavor": {"name": "m1.big", "id": "big", "ram": 4096, "vcpus": 4, "disk": 40}}""");
        Assert.Equal(200, created.Status);
        Assert.Equal(409, (await f.SendAsync(HttpMethod.Post, "v2.1/flavors", """{"flavor": {"name": "m1.big", "ram": 1, "vcpus": 1, "disk": 0}}""")).Status);
        Assert.Equal(400, (await f.SendAsync(HttpMethod.Post, "v2.1/flavors", """{"flavor": {"name": "m1.neg", "ram": -1, "vcpus": 1, "disk": 0}}""")).Status);
        var specs = await f.SendAsync(HttpMethod.Get, "v2.1/flavors/big/os-extra_specs");
        Assert.Empty(specs.Json!["extra_specs"]!.AsObject());
        Assert.Equal(202, (await f.SendAsync(HttpMethod.Delete, "v2.1/flavors/big")).Status);
        Assert.Equal(404, (await f.SendAsync(HttpMethod.Get, "v2.1/flavors/big")).Status);
    }

    [Fact]
    public async Task ImagesGroupsZonesLimits_Respond()
    {
        var images = await f.SendAsync(HttpMethod.Get, "v2.1/images/detail", token: "u:p");
        Assert.Equal("ACTIVE", images.Json!["images"]![0]!["status"]!.GetValue<string>());
        Assert.Equal(404, (await f.SendAsync(HttpMethod.Get, "v2.1/images/nope", token: "u:p")).Status);

        var group = await f.SendAsync(HttpMethod.Post, "v2.1/os-server-groups", """{"server_group": {"name": "g", "policy": "anti-affinity", "rules": {"max_server_per_host": 2}}}""", token: "u:pg");
        Assert.Equal(200, group.Status);
        Assert.Equal(2, group.Json!["server_group"]!["rules"]!["max_server_per_host"]!.GetValue<int>());
        var id = group.Json["server_group"]!["id"]!.GetValue<string>();
        var old = await f.SendAsync(HttpMethod.Get, $"v2.1/os-server-groups/{id}", token: "u:pg", version: "2.63");
        Assert.Equal("anti-affinity", old.Json!["server_group"]!["policies"]![0]!.GetValue<string>());
        Assert.Equal(400, (await f.SendAsync(HttpMethod.Post, "v2.1/os-server-groups", """{"server_group": {"name": "g", "policies": ["anti-affinity"]}}""", token: "u:pg")).Status);
        Assert.Equal(404, (await f.SendAsync(HttpMethod.Get, $"v2.1/os-server-groups/{id}", token: "u:other")).Status);
        Assert.Equal(204, (await f.SendAsync(HttpMethod.Delete, $"v2.1/os-server-groups/{id}", token: "u:pg")).Status);

        f.AddHost();
        var zones = await f.SendAsync(HttpMethod.Get, "v2.1/os-availability-zone", token: "u:p");
        Assert.Equal("nova", zones.Json!["availabilityZoneInfo"]![0]!["zoneName"]!.GetValue<string>());
        var limits = await f.SendAsync(HttpMethod.Get, "v2.1/limits", token: "u:p");
        Assert.Equal(10, limits.Json!["limits"]!["absolute"]!["maxTotalInstances"]!.GetValue<int>());
    }
}
