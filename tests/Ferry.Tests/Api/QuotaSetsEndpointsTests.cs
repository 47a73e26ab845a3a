using System.Text.Json.Nodes;
using Ferry.Core.Domain;

namespace Ferry.Tests.Api;

[Collection(ComputeApiCollection.Name)]
public sealed class QuotaSetsEndpointsTests(ComputeApiFixture f)
{
    private static string NewProject() => $"q{Guid.NewGuid():N}"[..12];

    private static readonly string[] s_all =
    [
        "cores", "fixed_ips", "floating_ips", "injected_file_content_bytes", "injected_file_path_bytes", "injected_files",
        "instances", "key_pairs", "metadata_items", "ram", "security_group_rules", "security_groups", "server_group_members", "server_groups",
    ];

    private static readonly string[] s_network = ["fixed_ips", "floating_ips", "security_group_rules", "security_groups"];
    private static readonly string[] s_injected = ["injected_file_content_bytes", "injected_file_path_bytes", "injected_files"];

    /// <summary>Nova's show/defaults/detail schemas: every key below 2.36, no network keys from 2.36, no injected_file* from 2.57.</summary>
    [Theory]
    [InlineData("2.1", "show")]
    [InlineData("2.35", "show")]
    [InlineData("2.36", "show")]
    [InlineData("2.56", "show")]
    [InlineData("2.57", "show")]
    [InlineData("2.95", "show")]
    [InlineData("2.35", "defaults")]
    [InlineData("2.36", "defaults")]
    [InlineData("2.57", "defaults")]
    [InlineData("2.35", "detail")]
    [InlineData("2.36", "detail")]
    [InlineData("2.57", "detail")]
    public async Task Show_EachMicroversion_ReturnsExactlyNovaKeys(string version, string view)
    {
        var project = NewProject();
        var path = view == "show" ? $"v2.1/os-quota-sets/{project}" : $"v2.1/os-quota-sets/{project}/{view}";

        var r = await f.SendAsync(HttpMethod.Get, path, version: version);

        Assert.Equal(200, r.Status);
        var minor = int.Parse(version[2..], System.Globalization.CultureInfo.InvariantCulture);
        var expected = s_all.Where(k => !(minor >= 36 && s_network.Contains(k)) && !(minor >= 57 && s_injected.Contains(k))).Append("id");
        var set = r.Json!["quota_set"]!.AsObject();
        Assert.Equal(expected.Order(StringComparer.Ordinal), set.Select(p => p.Key).Order(StringComparer.Ordinal));
        Assert.Equal(project, set["id"]!.GetValue<string>());
        if (view == "detail")
        {
            Assert.Equal(["in_use", "limit", "reserved"], set["cores"]!.AsObject().Select(p => p.Key).Order(StringComparer.Ordinal));
        }
    }

    [Fact]
    public async Task Show_NewProject_ReturnsNovaDefaults()
    {
        var r = await f.SendAsync(HttpMethod.Get, $"v2.1/os-quota-sets/{NewProject()}", version: "2.1");

        var set = r.Json!["quota_set"]!;
        Assert.Equal(
            (10L, 20L, 51200L, 128L, 100L, 10L, 10L, 5L, 10240L, 255L, -1L),
            (set["instances"]!.GetValue<long>(), set["cores"]!.GetValue<long>(), set["ram"]!.GetValue<long>(), set["metadata_items"]!.GetValue<long>(),
             set["key_pairs"]!.GetValue<long>(), set["server_groups"]!.GetValue<long>(), set["server_group_members"]!.GetValue<long>(),
             set["injected_files"]!.GetValue<long>(), set["injected_file_content_bytes"]!.GetValue<long>(), set["injected_file_path_bytes"]!.GetValue<long>(),
             set["floating_ips"]!.GetValue<long>()));
    }

    [Fact]
    public async Task Update_AsAdmin_PersistsAndAnswersWithoutId()
    {
        var project = NewProject();

        var r = await f.SendAsync(HttpMethod.Put, $"v2.1/os-quota-sets/{project}", new JsonObject { ["quota_set"] = new JsonObject { ["cores"] = 4, ["instances"] = "3" } });

        Assert.Equal(200, r.Status);
        Assert.False(r.Json!["quota_set"]!.AsObject().ContainsKey("id"));
        Assert.Equal(4, r.Json!["quota_set"]!["cores"]!.GetValue<int>());
        var show = await f.SendAsync(HttpMethod.Get, $"v2.1/os-quota-sets/{project}", token: $"u:{project}");
        Assert.Equal((4, 3, 51200), (show.Json!["quota_set"]!["cores"]!.GetValue<int>(), show.Json!["quota_set"]!["instances"]!.GetValue<int>(), show.Json!["quota_set"]!["ram"]!.GetValue<int>()));
    }

    [Theory]
    [InlineData("""{"quota_set": {"cores": -2}}""", "Invalid input for field/attribute quota_set/cores. Value: -2. -2 is less than the minimum of -1")]
    [InlineData("""{"quota_set": {"cores": "abc"}}""", "Invalid input for field/attribute quota_set/cores. Value: \"abc\". 'abc' does not match '^-?[0-9]+$'")]
    [InlineData("""{"quota_set": {"cores": null}}""", "Invalid input for field/attribute quota_set/cores. Value: None. None is not of type 'integer', 'string'")]
    [InlineData("""{"quota_set": {"cores": 2147483648}}""", "Invalid input for field/attribute quota_set/cores. Value: 2147483648. 2147483648 is greater than the maximum of 2147483647")]
    [InlineData("""{"quota_set": {"bogus": 1}}""", "Additional properties are not allowed ('bogus' was unexpected)")]
    [InlineData("""{"quota_set": {"floating_ips": 1}}""", "Additional properties are not allowed ('floating_ips' was unexpected)")]
    [InlineData("""{"quota_set": {"cores": 1, "force": "maybe"}}""", "is not of type 'boolean', 'string'")]
    public async Task Update_InvalidBody_Returns400AndChangesNothing(string body, string message)
    {
        var project = NewProject();

        var r = await f.SendAsync(HttpMethod.Put, $"v2.1/os-quota-sets/{project}", body, version: "2.57");

        Assert.Equal(400, r.Status);
        Assert.Contains(message, r.FaultMessage, StringComparison.Ordinal);
        var show = await f.SendAsync(HttpMethod.Get, $"v2.1/os-quota-sets/{project}");
        Assert.Equal(20, show.Json!["quota_set"]!["cores"]!.GetValue<int>());
    }

    [Fact]
    public async Task Update_BelowUsage_Returns400UnlessForced()
    {
        var project = NewProject();
        AddServer(project, "u");
        AddServer(project, "u");

        var r = await f.SendAsync(HttpMethod.Put, $"v2.1/os-quota-sets/{project}", """{"quota_set": {"instances": 1}}""");
        Assert.Equal(400, r.Status);
        Assert.Equal("Quota limit 1 for instances must be greater than or equal to already used and reserved 2.", r.FaultMessage);

        var forced = await f.SendAsync(HttpMethod.Put, $"v2.1/os-quota-sets/{project}", """{"quota_set": {"instances": 1, "force": true}}""");
        Assert.Equal(200, forced.Status);
        Assert.Equal(1, forced.Json!["quota_set"]!["instances"]!.GetValue<int>());
    }

    [Fact]
    public async Task Update_UserAboveProjectRemainder_Returns400()
    {
        var project = NewProject();
        await f.SendAsync(HttpMethod.Put, $"v2.1/os-quota-sets/{project}", """{"quota_set": {"cores": 10}}""");
        Assert.Equal(200, (await f.SendAsync(HttpMethod.Put, $"v2.1/os-quota-sets/{project}?user_id=bob", """{"quota_set": {"cores": 6}}""")).Status);

        var r = await f.SendAsync(HttpMethod.Put, $"v2.1/os-quota-sets/{project}?user_id=carol", """{"quota_set": {"cores": 5}}""");

        Assert.Equal(400, r.Status);
        Assert.Equal("Quota limit 5 for cores must be less than or equal to 4.", r.FaultMessage);
        var bob = await f.SendAsync(HttpMethod.Get, $"v2.1/os-quota-sets/{project}?user_id=bob");
        Assert.Equal(6, bob.Json!["quota_set"]!["cores"]!.GetValue<int>());
        // The project limit cannot go under what its users hold.
        var under = await f.SendAsync(HttpMethod.Put, $"v2.1/os-quota-sets/{project}", """{"quota_set": {"cores": 5}}""");
        Assert.Equal("Quota limit 5 for cores must be greater than or equal to already used and reserved 6.", under.FaultMessage);
    }

    [Fact]
    public async Task Delete_AsAdmin_RevertsToDefaults()
    {
        var project = NewProject();
        await f.SendAsync(HttpMethod.Put, $"v2.1/os-quota-sets/{project}", """{"quota_set": {"cores": 4}}""");

        var r = await f.SendAsync(HttpMethod.Delete, $"v2.1/os-quota-sets/{project}");

        Assert.Equal(202, r.Status);
        var show = await f.SendAsync(HttpMethod.Get, $"v2.1/os-quota-sets/{project}");
        Assert.Equal(20, show.Json!["quota_set"]!["cores"]!.GetValue<int>());
    }

    [Theory]
    [InlineData("PUT", "os-quota-sets/{p}", 403)]
    [InlineData("DELETE", "os-quota-sets/{p}", 403)]
    [InlineData("GET", "os-quota-sets/other", 403)]
    [InlineData("GET", "os-quota-sets/other/detail", 403)]
    [InlineData("GET", "os-quota-sets/other/defaults", 200)]
    [InlineData("GET", "os-quota-sets/{p}", 200)]
    [InlineData("GET", "os-quota-class-sets/default", 403)]
    [InlineData("PUT", "os-quota-class-sets/default", 403)]
    [InlineData("GET", "limits?tenant_id=other", 403)]
    public async Task Policy_NonAdmin_GetsNovaDefaultPolicy(string method, string path, int status)
    {
        var project = NewProject();

        var r = await f.SendAsync(new HttpMethod(method), "v2.1/" + path.Replace("{p}", project, StringComparison.Ordinal),
            method == "PUT" ? path.Contains("class", StringComparison.Ordinal) ? """{"quota_class_set": {"cores": 1}}""" : """{"quota_set": {"cores": 1}}""" : null,
            token: $"u:{project}");

        Assert.Equal(status, r.Status);
        var defaults = await f.SendAsync(HttpMethod.Get, "v2.1/os-quota-class-sets/default");
        Assert.Equal(20, defaults.Json!["quota_class_set"]!["cores"]!.GetValue<int>());
        Assert.Equal(20, (await f.SendAsync(HttpMethod.Get, $"v2.1/os-quota-sets/{project}")).Json!["quota_set"]!["cores"]!.GetValue<int>());
    }

    [Theory]
    [InlineData("2.1", false, true, true)]
    [InlineData("2.49", false, true, true)]
    [InlineData("2.50", true, false, true)]
    [InlineData("2.56", true, false, true)]
    [InlineData("2.57", true, false, false)]
    public async Task QuotaClassShow_EachMicroversion_ReturnsExactlyNovaKeys(string version, bool groups, bool network, bool injected)
    {
        var r = await f.SendAsync(HttpMethod.Get, "v2.1/os-quota-class-sets/default", version: version);

        Assert.Equal(200, r.Status);
        var expected = s_all
            .Where(k => groups || k is not ("server_groups" or "server_group_members"))
            .Where(k => network || !s_network.Contains(k))
            .Where(k => injected || !s_injected.Contains(k))
            .Append("id");
        Assert.Equal(expected.Order(StringComparer.Ordinal), r.Json!["quota_class_set"]!.AsObject().Select(p => p.Key).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task QuotaClassUpdate_UnknownClass_StoresItWithoutChangingProjects()
    {
        var r = await f.SendAsync(HttpMethod.Put, "v2.1/os-quota-class-sets/gold", """{"quota_class_set": {"cores": 64}}""", version: "2.50");

        Assert.Equal(200, r.Status);
        Assert.False(r.Json!["quota_class_set"]!.AsObject().ContainsKey("id"));
        Assert.Equal(64, r.Json!["quota_class_set"]!["cores"]!.GetValue<int>());
        Assert.Equal(64, (await f.SendAsync(HttpMethod.Get, "v2.1/os-quota-class-sets/gold")).Json!["quota_class_set"]!["cores"]!.GetValue<int>());
        Assert.Equal(20, (await f.SendAsync(HttpMethod.Get, $"v2.1/os-quota-sets/{NewProject()}")).Json!["quota_set"]!["cores"]!.GetValue<int>());
        var groupsBefore250 = await f.SendAsync(HttpMethod.Put, "v2.1/os-quota-class-sets/gold", """{"quota_class_set": {"server_groups": 3}}""", version: "2.49");
        Assert.Equal(400, groupsBefore250.Status);
    }

    /// <summary>Nova's limits view: maxImageMeta goes at 2.39, network limits at 2.36, personality at 2.57.</summary>
    [Theory]
    [InlineData("2.1")]
    [InlineData("2.35")]
    [InlineData("2.36")]
    [InlineData("2.38")]
    [InlineData("2.39")]
    [InlineData("2.56")]
    [InlineData("2.57")]
    public async Task Limits_EachMicroversion_ReturnsExactlyNovaKeys(string version)
    {
        var minor = int.Parse(version[2..], System.Globalization.CultureInfo.InvariantCulture);
        var expected = new List<string>
        {
            "maxServerMeta", "maxTotalCores", "maxTotalInstances", "maxTotalKeypairs", "maxTotalRAMSize", "maxServerGroups",
            "maxServerGroupMembers", "totalCoresUsed", "totalInstancesUsed", "totalRAMUsed", "totalServerGroupsUsed",
        };
        if (minor < 36)
        {
            expected.AddRange(["maxSecurityGroups", "maxSecurityGroupRules", "maxTotalFloatingIps", "totalFloatingIpsUsed", "totalSecurityGroupsUsed"]);
        }
        if (minor < 39)
        {
            expected.Add("maxImageMeta");
        }
        if (minor < 57)
        {
            expected.AddRange(["maxPersonality", "maxPersonalitySize"]);
        }

        var r = await f.SendAsync(HttpMethod.Get, "v2.1/limits", token: $"u:{NewProject()}", version: version);

        Assert.Equal(200, r.Status);
        Assert.Equal(expected.Order(StringComparer.Ordinal), r.Json!["limits"]!["absolute"]!.AsObject().Select(p => p.Key).Order(StringComparer.Ordinal));
        Assert.Empty(r.Json!["limits"]!["rate"]!.AsArray());
    }

    [Fact]
    public async Task Limits_WithServersAndQuota_ReportsLimitsAndUsage()
    {
        var project = NewProject();
        await f.SendAsync(HttpMethod.Put, $"v2.1/os-quota-sets/{project}", """{"quota_set": {"cores": 7, "ram": 4096}}""");
        AddServer(project, "u", flavorId: "2");
        AddServer(project, "u");
        f.Groups.Create("g", "affinity", null, project, "u");

        var r = await f.SendAsync(HttpMethod.Get, "v2.1/limits", token: $"u:{project}");

        var a = r.Json!["limits"]!["absolute"]!;
        Assert.Equal((7, 4096, 10, 2, 2, 2560, 1),
            (a["maxTotalCores"]!.GetValue<int>(), a["maxTotalRAMSize"]!.GetValue<int>(), a["maxTotalInstances"]!.GetValue<int>(),
             a["totalInstancesUsed"]!.GetValue<int>(), a["totalCoresUsed"]!.GetValue<int>(), a["totalRAMUsed"]!.GetValue<int>(), a["totalServerGroupsUsed"]!.GetValue<int>()));
        var other = await f.SendAsync(HttpMethod.Get, $"v2.1/limits?tenant_id={project}");
        Assert.Equal(2, other.Json!["limits"]!["absolute"]!["totalInstancesUsed"]!.GetValue<int>());
        var detail = await f.SendAsync(HttpMethod.Get, $"v2.1/os-quota-sets/{project}/detail", token: $"u:{project}");
        Assert.Equal(2560, detail.Json!["quota_set"]!["ram"]!["in_use"]!.GetValue<int>());
    }

    [Fact]
    public async Task CreateServer_OverCoresQuota_Returns403InNovasWordsAndCreatesNothing()
    {
        var project = NewProject();
        await f.SendAsync(HttpMethod.Put, $"v2.1/os-quota-sets/{project}", """{"quota_set": {"cores": 2, "instances": 5}}""");
        AddServer(project, "u");
        AddServer(project, "u");

        var r = await f.SendAsync(HttpMethod.Post, "v2.1/servers", CreateBody(), token: $"u:{project}");

        Assert.Equal(403, r.Status);
        Assert.Equal("forbidden", r.FaultName);
        Assert.Equal("Quota exceeded for cores: Requested 1, but already used 2 of 2 cores", r.FaultMessage);
        Assert.Equal(2, f.Instances.List(project).Count);
    }

    [Fact]
    public async Task CreateServer_MinMaxCount_BuildsWhatFitsOrRefusesBelowMin()
    {
        var project = NewProject();
        await f.SendAsync(HttpMethod.Put, $"v2.1/os-quota-sets/{project}", """{"quota_set": {"instances": 3}}""");

        var over = await f.SendAsync(HttpMethod.Post, "v2.1/servers", CreateBody(min: 4, max: 5), token: $"u:{project}");
        Assert.Equal(403, over.Status);
        Assert.Equal("Quota exceeded for instances: Requested 4-5, but already used 0 of 3 instances", over.FaultMessage);
        Assert.Empty(f.Instances.List(project));

        var r = await f.SendAsync(HttpMethod.Post, "v2.1/servers", CreateBody(min: 2, max: 5), token: $"u:{project}");

        Assert.Equal(202, r.Status);
        var built = f.Instances.List(project);
        Assert.Equal(["vm-1", "vm-2", "vm-3"], built.Select(i => i.DisplayName).Order(StringComparer.Ordinal));
        Assert.Contains(built, i => i.Uuid == r.Json!["server"]!["id"]!.GetValue<string>());
        var none = await f.SendAsync(HttpMethod.Post, "v2.1/servers", CreateBody(), token: $"u:{project}");
        Assert.Equal("Quota exceeded for instances: Requested 1, but already used 3 of 3 instances", none.FaultMessage);
    }

    [Theory]
    [InlineData("""{"min_count": 0}""", "0 is less than the minimum of 1")]
    [InlineData("""{"min_count": "x"}""", "'x' does not match '^[0-9]*$'")]
    [InlineData("""{"min_count": 3, "max_count": 2}""", "min_count must be <= max_count")]
    public async Task CreateServer_BadCounts_Returns400(string counts, string message)
    {
        var project = NewProject();
        var body = CreateBody();
        foreach (var (k, v) in JsonNode.Parse(counts)!.AsObject())
        {
            body["server"]![k] = v?.DeepClone();
        }

        var r = await f.SendAsync(HttpMethod.Post, "v2.1/servers", body, token: $"u:{project}");

        Assert.Equal(400, r.Status);
        Assert.Contains(message, r.FaultMessage, StringComparison.Ordinal);
        Assert.Empty(f.Instances.List(project));
    }

    [Fact]
    public async Task CreateServer_UserQuota_AppliesToThatUserOnly()
    {
        var project = NewProject();
        await f.SendAsync(HttpMethod.Put, $"v2.1/os-quota-sets/{project}?user_id=bob", """{"quota_set": {"instances": 1}}""");
        AddServer(project, "bob");

        var bob = await f.SendAsync(HttpMethod.Post, "v2.1/servers", CreateBody(), token: $"bob:{project}");
        var alice = await f.SendAsync(HttpMethod.Post, "v2.1/servers", CreateBody(), token: $"alice:{project}");

        Assert.Equal(403, bob.Status);
        Assert.Equal("Quota exceeded for instances: Requested 1, but already used 1 of 1 instances", bob.FaultMessage);
        Assert.Equal(202, alice.Status);
    }

    [Fact]
    public async Task CreateServer_TooManyMetadataItems_Returns403()
    {
        var project = NewProject();
        await f.SendAsync(HttpMethod.Put, $"v2.1/os-quota-sets/{project}", """{"quota_set": {"metadata_items": 1}}""");
        var body = CreateBody();
        body["server"]!["metadata"] = new JsonObject { ["a"] = "1", ["b"] = "2" };

        var r = await f.SendAsync(HttpMethod.Post, "v2.1/servers", body, token: $"u:{project}");

        Assert.Equal(403, r.Status);
        Assert.Equal("Maximum number of metadata items exceeds 1", r.FaultMessage);
        Assert.Empty(f.Instances.List(project));
    }

    [Fact]
    public async Task Resize_UpsizeOverQuota_Returns403AndLeavesServerAlone()
    {
        var host = f.AddHost();
        var project = NewProject();
        await f.SendAsync(HttpMethod.Put, $"v2.1/os-quota-sets/{project}", """{"quota_set": {"ram": 1024}}""");
        var vm = AddServer(project, "u", host);

        var r = await f.SendAsync(HttpMethod.Post, $"v2.1/servers/{vm.Uuid}/action", """{"resize": {"flavorRef": "2"}}""", token: $"u:{project}");

        Assert.Equal(403, r.Status);
        Assert.Equal("Quota exceeded for ram: Requested 1536, but already used 512 of 1024 ram", r.FaultMessage);
        Assert.Null(f.Instances.Get(vm.Uuid).TaskState);
        Assert.Empty(f.Actions.ListActions(vm.Uuid));
    }

    [Fact]
    public async Task RevertResize_OfADownsizeOverQuota_Returns403AndLeavesMigrationFinished()
    {
        var source = f.AddHost();
        var dest = f.AddHost();
        var project = NewProject();
        await f.SendAsync(HttpMethod.Put, $"v2.1/os-quota-sets/{project}", """{"quota_set": {"ram": 1024}}""");
        // Resized down from m1.small (2048 MB) to m1.tiny (512 MB): going back needs 1536 MB more.
        var small = f.Catalog.FindFlavor("2")!;
        var vm = AddServer(project, "u", dest);
        vm = f.Instances.Update(new Ferry.Core.Rpc.Conductor.InstanceUpdateRequest
        {
            Uuid = vm.Uuid, VmState = VmState.Resized, SetOldFlavor = true, OldFlavor = small,
        });
        var migration = f.AddMigration(vm with { Host = source }, MigrationType.Resize, MigrationStatus.Finished, dest);

        var r = await f.SendAsync(HttpMethod.Post, $"v2.1/servers/{vm.Uuid}/action", """{"revertResize": null}""", token: $"u:{project}");

        Assert.Equal(403, r.Status);
        Assert.Equal("Quota exceeded for ram: Requested 1536, but already used 512 of 1024 ram", r.FaultMessage);
        Assert.Equal(MigrationStatus.Finished, f.Migrations.Get(migration.Uuid).Status);
        Assert.Null(f.Instances.Get(vm.Uuid).TaskState);
    }

    [Fact]
    public async Task CreateKeypairAndServerGroup_OverQuota_Return403()
    {
        var project = NewProject();
        await f.SendAsync(HttpMethod.Put, $"v2.1/os-quota-sets/{project}", """{"quota_set": {"key_pairs": 0, "server_groups": 0}}""");

        var key = await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs",
            """{"keypair": {"name": "k", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBwMkDs5fT7eGQyCt+SWBQ5NpZk4ZmrWxGTWmDBQCxkl a@b"}}""",
            token: $"kq-{project}:{project}");
        var group = await f.SendAsync(HttpMethod.Post, "v2.1/os-server-groups", """{"server_group": {"name": "g", "policy": "affinity"}}""", token: $"u:{project}");

        Assert.Equal((403, "Quota exceeded, too many key pairs."), (key.Status, key.FaultMessage));
        Assert.Equal((403, "Quota exceeded, too many server groups."), (group.Status, group.FaultMessage));
        Assert.Empty(f.Groups.List(project));
    }

    [Fact]
    public async Task CreateServer_ConcurrentRequests_NeverExceedTheQuota()
    {
        var project = NewProject();
        await f.SendAsync(HttpMethod.Put, $"v2.1/os-quota-sets/{project}", """{"quota_set": {"instances": 3}}""");

        var results = await Task.WhenAll(Enumerable.Range(0, 12).Select(_ => f.SendAsync(HttpMethod.Post, "v2.1/servers", CreateBody(), token: $"u:{project}")));

        Assert.Equal(3, results.Count(r => r.Status == 202));
        Assert.All(results.Where(r => r.Status != 202), r => Assert.Equal(403, r.Status));
        Assert.Equal(3, f.Instances.List(project).Count);
    }

    [Theory]
    [InlineData("os-quota-sets/{p}?bogus=1")]
    [InlineData("os-quota-sets/{p}/detail?bogus=1")]
    [InlineData("limits?bogus=1")]
    public async Task Query_UnknownParameterFrom275_Returns400(string path)
    {
        var url = "v2.1/" + path.Replace("{p}", NewProject(), StringComparison.Ordinal);

        var at275 = await f.SendAsync(HttpMethod.Get, url, version: "2.75");
        var at274 = await f.SendAsync(HttpMethod.Get, url, version: "2.74");

        Assert.Equal((400, "Additional properties are not allowed ('bogus' was unexpected)"), (at275.Status, at275.FaultMessage));
        Assert.Equal(200, at274.Status);
    }

    private static JsonObject CreateBody(int? min = null, int? max = null)
    {
        var server = new JsonObject { ["name"] = "vm", ["imageRef"] = "cirros", ["flavorRef"] = "1", ["networks"] = "none" };
        if (min is { } mn)
        {
            server["min_count"] = mn;
        }
        if (max is { } mx)
        {
            server["max_count"] = mx;
        }
        return new JsonObject { ["server"] = server };
    }

    /// <summary>Adds a running server straight to the store (no quota check): the usage a test starts from.</summary>
    private Instance AddServer(string project, string user, string? host = null, string flavorId = "1")
    {
        var flavor = f.Catalog.FindFlavor(flavorId)!;
        var now = f.Time.GetUtcNow();
        return f.Instances.Create(id => new Instance
        {
            Id = id, Uuid = Guid.NewGuid().ToString(), DisplayName = $"vm-{id}", ProjectId = project, UserId = user,
            Host = host, Node = host, Flavor = flavor, ImageRef = "155d900f-4e14-4e4c-a73d-069cbf4541e6",
            VmState = VmState.Active, PowerState = PowerState.Running, CreatedAt = now, UpdatedAt = now, LaunchedAt = now,
        });
    }
}
