using Ferry.Core.Domain;
using Ferry.Core.Volumes;

namespace Ferry.Tests.Api;

[Collection(ComputeApiCollection.Name)]
public sealed class ServersEndpointsTests(ComputeApiFixture f)
{
    [Fact]
    public async Task Create_ValidBody_Returns202AndCastsBuildInstance()
    {
        var r = await f.SendAsync(HttpMethod.Post, "v2.1/servers", """
            {"server": {"name": "demo-a", "imageRef": "cirros", "flavorRef": "m1.tiny", "networks": "none",
                        "metadata": {"k": "v"}},
             "os:scheduler_hints": {"different_host": ["9734ff7a-5414-49c3-9482-bce51b8fd722"]}}
            """, token: "alice:p1");
        Assert.Equal(202, r.Status);
        var server = r.Json!["server"]!;
        var id = server["id"]!.GetValue<string>();
        Assert.Equal("MANUAL", server["OS-DCF:diskConfig"]!.GetValue<string>());
        Assert.False(string.IsNullOrEmpty(server["adminPass"]!.GetValue<string>()));
        Assert.Equal("default", server["security_groups"]![0]!["name"]!.GetValue<string>());
        var row = f.Instances.Get(id);
        Assert.Equal((VmState.Building, TaskState.Scheduling, PowerState.NoState, "p1", "m1.tiny"), (row.VmState, row.TaskState, row.PowerState, row.ProjectId, row.Flavor.Name));
        var cast = await f.WaitForCastAsync("build_instance", c => c.Payload["instance_uuid"]!.GetValue<string>() == id);
        Assert.Equal("9734ff7a-5414-49c3-9482-bce51b8fd722", cast.Payload["request_spec"]!["scheduler_hints"]!["different_host"]![0]!.GetValue<string>());
        Assert.Equal("create", Assert.Single(f.Actions.ListActions(id)).Action);
    }

    [Fact]
    public async Task Create_SameHostHint_CastsTheHintedInstancesHostsForTheScheduler()
    {
        var host = f.AddHost();
        var anchor = f.AddInstance(host);

        var r = await f.SendAsync(HttpMethod.Post, "v2.1/servers", $$$"""
            {"server": {"name": "next-to", "imageRef": "cirros", "flavorRef": "m1.tiny", "networks": "none"},
             "os:scheduler_hints": {"same_host": ["{{{anchor.Uuid}}}", "9734ff7a-5414-49c3-9482-bce51b8fd722"]}}
            """);

        Assert.Equal(202, r.Status);
        var id = r.Json!["server"]!["id"]!.GetValue<string>();
        var cast = await f.WaitForCastAsync("build_instance", c => c.Payload["instance_uuid"]!.GetValue<string>() == id);
        var hosts = cast.Payload["request_spec"]!["hinted_hosts"]!["same_host"]!.AsArray();
        Assert.Equal(host, Assert.Single(hosts)!.GetValue<string>());
    }

    [Fact]
    public async Task Show_AdminAt295_ReturnsNovaDetailKeysWithoutSecurityGroups()
    {
        var vm = f.AddInstance(f.AddHost());

        var r = await f.SendAsync(HttpMethod.Get, $"v2.1/servers/{vm.Uuid}");

        Assert.Equal(200, r.Status);
        // The keys of Nova 2.9x's server show for an admin when the server has no ports (nova-cli-session.txt):
        // security_groups comes from the ports, so it is absent.
        string[] expected =
        [
            "OS-DCF:diskConfig", "OS-EXT-AZ:availability_zone", "OS-EXT-SRV-ATTR:host", "OS-EXT-SRV-ATTR:hostname",
            "OS-EXT-SRV-ATTR:hypervisor_hostname", "OS-EXT-SRV-ATTR:instance_name", "OS-EXT-SRV-ATTR:kernel_id",
            "OS-EXT-SRV-ATTR:launch_index", "OS-EXT-SRV-ATTR:ramdisk_id", "OS-EXT-SRV-ATTR:reservation_id",
            "OS-EXT-SRV-ATTR:root_device_name", "OS-EXT-SRV-ATTR:user_data", "OS-EXT-STS:power_state", "OS-EXT-STS:task_state",
            "OS-EXT-STS:vm_state", "OS-SRV-USG:launched_at", "OS-SRV-USG:terminated_at", "accessIPv4", "accessIPv6", "addresses",
            "config_drive", "created", "description", "flavor", "hostId", "host_status", "id", "image", "key_name", "links", "locked",
            "locked_reason", "metadata", "name", "os-extended-volumes:volumes_attached", "progress", "server_groups", "status", "tags",
            "tenant_id", "trusted_image_certificates", "updated", "user_id",
        ];
        Assert.Equal(expected.Order(StringComparer.Ordinal), r.Json!["server"]!.AsObject().Select(p => p.Key).Order(StringComparer.Ordinal));
        var list = await f.SendAsync(HttpMethod.Get, "v2.1/servers/detail");
        Assert.All(list.Json!["servers"]!.AsArray(), s => Assert.False(s!.AsObject().ContainsKey("security_groups")));
    }

    [Fact]
    public async Task Create_ForcedHostAndGroup_PassesRequestedHostAndGroupPolicy()
    {
        var host = f.AddHost();
        var group = f.Groups.Create("g", "anti-affinity", null, "admin", "admin");
        var member = f.AddInstance(host);
        f.Groups.AddMember(group.Uuid, member.Uuid);
        var r = await f.SendAsync(HttpMethod.Post, "v2.1/servers", $$$"""
            {"server": {"name": "g1", "imageRef": "155d900f-4e14-4e4c-a73d-069cbf4541e6", "flavorRef": "1", "availability_zone": "nova:{{{host}}}"},
             "os:scheduler_hints": {"group": "{{{group.Uuid}}}"}}
            """);
        Assert.Equal(202, r.Status);
        var id = r.Json!["server"]!["id"]!.GetValue<string>();
        var cast = await f.WaitForCastAsync("build_instance", c => c.Payload["instance_uuid"]!.GetValue<string>() == id);
        var spec = cast.Payload["request_spec"]!;
        Assert.Equal(host, spec["requested_host"]!.GetValue<string>());
        Assert.Equal("anti-affinity", spec["group"]!["policy"]!.GetValue<string>());
        Assert.Equal(host, spec["group"]!["member_hosts"]![0]!.GetValue<string>());
        Assert.Contains(id, f.Groups.Find(group.Uuid)!.Members);
    }

    [Theory]
    [InlineData("""{"server": {"name": "x", "imageRef": "cirros"}}""", 400)]
    [InlineData("""{"server": {"name": "x", "imageRef": "cirros", "flavorRef": "nope"}}""", 400)]
    [InlineData("""{"server": {"name": "x", "imageRef": "nope", "flavorRef": "1"}}""", 400)]
    [InlineData("""{"server": {"name": "", "imageRef": "cirros", "flavorRef": "1"}}""", 400)]
    [InlineData("""{"server": {"name": "x", "imageRef": "cirros", "flavorRef": "1", "networks": 5}}""", 400)]
    [InlineData("""{"server": {"name": "x", "imageRef": "cirros", "flavorRef": "1", "availability_zone": "nova:somehost"}}""", 403)]
    [InlineData("""{"servers": {}}""", 400)]
    [InlineData("""{"server": {"name": "x", "imageRef": "cirros", "flavorRef": "1", "user_data": "not base64!"}}""", 400)]
    [InlineData("""{"server": {"name": "x", "imageRef": "cirros", "flavorRef": "1", "user_data": 5}}""", 400)]
    public async Task Create_InvalidRequest_ReturnsErrorAndCreatesNothing(string body, int status)
    {
        var before = f.Instances.List(includeDeleted: true).Count;
        var r = await f.SendAsync(HttpMethod.Post, "v2.1/servers", body, token: "alice:p1");
        Assert.Equal(status, r.Status);
        Assert.Equal(before, f.Instances.List(includeDeleted: true).Count);
    }

    [Fact]
    public async Task Create_KnownKeyName_KeepsKeyDataOnInstanceAfterKeypairIsDeleted()
    {
        var user = $"k{Guid.NewGuid():N}"[..12];
        var imported = await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs", $$$"""
            {"keypair": {"name": "k1", "public_key": "{{{KeypairsEndpointsTests.RsaKey.TrimEnd()}}}"}}
            """, token: $"{user}:p1");
        Assert.Equal(201, imported.Status);

        var r = await f.SendAsync(HttpMethod.Post, "v2.1/servers", """
            {"server": {"name": "keyed", "imageRef": "cirros", "flavorRef": "1", "networks": "none", "key_name": "k1"}}
            """, token: $"{user}:p1");
        Assert.Equal(202, r.Status);
        var id = r.Json!["server"]!["id"]!.GetValue<string>();
        Assert.Equal(204, (await f.SendAsync(HttpMethod.Delete, "v2.1/os-keypairs/k1", token: $"{user}:p1")).Status);

        var row = f.Instances.Get(id);
        Assert.Equal(("k1", KeypairsEndpointsTests.RsaKey.TrimEnd(), "ssh"), (row.KeyName, row.KeyData, row.KeyType));
        var shown = await f.SendAsync(HttpMethod.Get, $"v2.1/servers/{id}", token: $"{user}:p1");
        Assert.Equal("k1", shown.Json!["server"]!["key_name"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("nope")]
    [InlineData("owned-by-someone-else")]
    public async Task Create_UnknownKeyNameForUser_Returns400AndCreatesNothing(string keyName)
    {
        await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs", $$$"""
            {"keypair": {"name": "owned-by-someone-else", "public_key": "{{{KeypairsEndpointsTests.RsaKey.TrimEnd()}}}"}}
            """, token: "someone-else:p1");
        var before = f.Instances.List(includeDeleted: true).Count;

        var r = await f.SendAsync(HttpMethod.Post, "v2.1/servers", $$$"""
            {"server": {"name": "keyed", "imageRef": "cirros", "flavorRef": "1", "networks": "none", "key_name": "{{{keyName}}}"}}
            """, token: "alice:p1");

        Assert.Equal((400, "Invalid key_name provided."), (r.Status, r.FaultMessage));
        Assert.Equal(before, f.Instances.List(includeDeleted: true).Count);
    }

    [Fact]
    public async Task Create_UserData_KeptEncodedAndShownToAdminFrom23()
    {
        var userData = Convert.ToBase64String("#cloud-config\nhostname: web\n"u8.ToArray());
        var r = await f.SendAsync(HttpMethod.Post, "v2.1/servers", $$$"""
            {"server": {"name": "ud", "imageRef": "cirros", "flavorRef": "1", "networks": "none", "config_drive": true, "user_data": "{{{userData}}}"}}
            """);
        Assert.Equal(202, r.Status);
        var id = r.Json!["server"]!["id"]!.GetValue<string>();

        Assert.Equal(userData, f.Instances.Get(id).UserData);
        var shown = await f.SendAsync(HttpMethod.Get, $"v2.1/servers/{id}", version: "2.3");
        Assert.Equal(userData, shown.Json!["server"]!["OS-EXT-SRV-ATTR:user_data"]!.GetValue<string>());
        var old = await f.SendAsync(HttpMethod.Get, $"v2.1/servers/{id}", version: "2.1");
        Assert.False(old.Json!["server"]!.AsObject().ContainsKey("OS-EXT-SRV-ATTR:user_data"));
    }

    [Fact]
    public async Task Create_UserDataOver65535Characters_RefusedWithNovasMessage()
    {
        var before = f.Instances.List(includeDeleted: true).Count;
        var r = await f.SendAsync(HttpMethod.Post, "v2.1/servers", $$$"""
            {"server": {"name": "ud", "imageRef": "cirros", "flavorRef": "1", "networks": "none", "user_data": "{{{new string('A', 65536)}}}"}}
            """);

        Assert.Equal(400, r.Status);
        Assert.Contains("Invalid input for field/attribute user_data", r.Json!["badRequest"]!["message"]!.GetValue<string>());
        Assert.Equal(before, f.Instances.List(includeDeleted: true).Count);
    }

    [Fact]
    public async Task Create_BootFromVolumeWithoutImage_VolumeBackedWithItsRootVolumeReserved()
    {
        var volumes = f.Volumes;
        var volumeId = Guid.NewGuid().ToString();
        await volumes.CreateVolumeAsync(new Volume { Id = volumeId, ProjectId = "admin", SizeGb = 1, Status = VolumeStatus.Available, Bootable = true }, CancellationToken.None);

        var r = await f.SendAsync(HttpMethod.Post, "v2.1/servers", $$$"""
            {"server": {"name": "bfv", "flavorRef": "1", "imageRef": "", "block_device_mapping_v2": [
              {"boot_index": 0, "uuid": "{{{volumeId}}}", "source_type": "volume", "destination_type": "volume"}]}}
            """);

        Assert.Equal(202, r.Status);
        var instance = f.Instances.Get(r.Json!["server"]!["id"]!.GetValue<string>());
        Assert.True(instance.VolumeBacked);
        var mapping = Assert.Single(instance.BlockDevices);
        Assert.Equal((volumeId, "/dev/vda", 0), (mapping.VolumeId, mapping.DeviceName, mapping.BootIndex));
        Assert.Equal(VolumeStatus.Reserved, (await volumes.GetVolumeAsync(volumeId, CancellationToken.None))!.Status);
    }

    [Fact]
    public async Task Delete_HostedServer_Returns204AndCastsTerminate()
    {
        var host = f.AddHost();
        var vm = f.AddInstance(host);
        var r = await f.SendAsync(HttpMethod.Delete, $"v2.1/servers/{vm.Uuid}");
        Assert.Equal(204, r.Status);
        Assert.Equal(TaskState.Deleting, f.Instances.Get(vm.Uuid).TaskState);
        var cast = await f.WaitForCastAsync("terminate_instance", c => c.Payload["instance"]!["uuid"]!.GetValue<string>() == vm.Uuid);
        Assert.Equal($"compute.{host}", cast.Topic);
    }

    [Fact]
    public async Task Delete_NeverScheduled_DeletesRowDirectly()
    {
        var vm = f.AddInstance(null, vm: VmState.Error);
        var r = await f.SendAsync(HttpMethod.Delete, $"v2.1/servers/{vm.Uuid}");
        Assert.Equal(204, r.Status);
        Assert.Null(f.Instances.Find(vm.Uuid));
        Assert.Equal(404, (await f.SendAsync(HttpMethod.Get, $"v2.1/servers/{vm.Uuid}")).Status);
    }

    [Fact]
    public async Task Delete_WhileMigrating_Returns409()
    {
        var vm = f.AddInstance(f.AddHost(), task: TaskState.Migrating);
        var r = await f.SendAsync(HttpMethod.Delete, $"v2.1/servers/{vm.Uuid}");
        Assert.Equal(409, r.Status);
        Assert.Equal($"Cannot 'delete' instance {vm.Uuid} while it is in task_state migrating", r.FaultMessage);
    }

    [Fact]
    public async Task Show_Admin_HasNovaFieldNames()
    {
        var host = f.AddHost();
        var vm = f.AddInstance(host);
        var r = await f.SendAsync(HttpMethod.Get, $"v2.1/servers/{vm.Uuid}");
        Assert.Equal(200, r.Status);
        var s = r.Json!["server"]!;
        Assert.Equal(host, s["OS-EXT-SRV-ATTR:host"]!.GetValue<string>());
        Assert.Equal(host, s["OS-EXT-SRV-ATTR:hypervisor_hostname"]!.GetValue<string>());
        Assert.Equal($"instance-{vm.Id:x8}", s["OS-EXT-SRV-ATTR:instance_name"]!.GetValue<string>());
        Assert.Equal("active", s["OS-EXT-STS:vm_state"]!.GetValue<string>());
        Assert.Null(s["OS-EXT-STS:task_state"]);
        Assert.True(s.AsObject().ContainsKey("OS-EXT-STS:task_state"));
        Assert.Equal(1, s["OS-EXT-STS:power_state"]!.GetValue<int>());
        Assert.Equal("nova", s["OS-EXT-AZ:availability_zone"]!.GetValue<string>());
        Assert.Equal("ACTIVE", s["status"]!.GetValue<string>());
        Assert.Equal("UP", s["host_status"]!.GetValue<string>());
        Assert.Equal(0, s["progress"]!.GetValue<int>());
        Assert.False(s["locked"]!.GetValue<bool>());
        Assert.True(s.AsObject().ContainsKey("locked_reason"));
        Assert.Equal("m1.tiny", s["flavor"]!["original_name"]!.GetValue<string>());
        Assert.Equal(512, s["flavor"]!["ram"]!.GetValue<int>());
        Assert.Equal("155d900f-4e14-4e4c-a73d-069cbf4541e6", s["image"]!["id"]!.GetValue<string>());
        Assert.Equal("2026-11-22T10:00:00Z", s["created"]!.GetValue<string>());
        Assert.Equal("2026-11-22T10:00:00.000000", s["OS-SRV-USG:launched_at"]!.GetValue<string>());
        Assert.Empty(s["addresses"]!.AsObject());
    }

    [Fact]
    public async Task Show_Version21_HasFlavorLinkAndNoHostStatus()
    {
        var vm = f.AddInstance(f.AddHost());
        var s = (await f.SendAsync(HttpMethod.Get, $"v2.1/servers/{vm.Uuid}", version: "2.1")).Json!["server"]!.AsObject();
        Assert.Equal("1", s["flavor"]!["id"]!.GetValue<string>());
        Assert.False(s.ContainsKey("host_status"));
        Assert.False(s.ContainsKey("locked"));
    }

    [Fact]
    public async Task Show_NonAdmin_HidesHostAttributes()
    {
        var vm = f.AddInstance(f.AddHost(), project: "p9");
        var s = (await f.SendAsync(HttpMethod.Get, $"v2.1/servers/{vm.Uuid}", token: "u:p9")).Json!["server"]!.AsObject();
        Assert.False(s.ContainsKey("OS-EXT-SRV-ATTR:host"));
        Assert.False(s.ContainsKey("host_status"));
    }

    [Fact]
    public async Task Show_ErrorServer_IncludesFault()
    {
        var vm = f.AddInstance(f.AddHost(), vm: VmState.Error);
        f.Actions.AddFault(vm.Uuid, 500, "No valid host was found.", "h", "trace");
        var s = (await f.SendAsync(HttpMethod.Get, $"v2.1/servers/{vm.Uuid}")).Json!["server"]!;
        Assert.Equal("ERROR", s["status"]!.GetValue<string>());
        Assert.Equal("No valid host was found.", s["fault"]!["message"]!.GetValue<string>());
        Assert.Equal(500, s["fault"]!["code"]!.GetValue<int>());
    }

    [Fact]
    public async Task List_NonAdmin_SeesOnlyOwnProjectAndAllTenantsIs403()
    {
        var host = f.AddHost();
        var mine = f.AddInstance(host, project: "px");
        var theirs = f.AddInstance(host, project: "py");
        var r = await f.SendAsync(HttpMethod.Get, "v2.1/servers", token: "u:px");
        var ids = r.Json!["servers"]!.AsArray().Select(s => s!["id"]!.GetValue<string>()).ToList();
        Assert.Contains(mine.Uuid, ids);
        Assert.DoesNotContain(theirs.Uuid, ids);
        Assert.Equal(403, (await f.SendAsync(HttpMethod.Get, "v2.1/servers?all_tenants=1", token: "u:px")).Status);
        var all = await f.SendAsync(HttpMethod.Get, $"v2.1/servers/detail?all_tenants=1&host={host}");
        Assert.Equal(2, all.Json!["servers"]!.AsArray().Count);
    }

    [Fact]
    public async Task List_StatusNameAndPaging_Filter()
    {
        var host = f.AddHost();
        f.AddInstance(host, project: "pl");
        f.AddInstance(host, project: "pl", vm: VmState.Stopped);
        f.AddInstance(host, project: "pl");
        var shutoff = await f.SendAsync(HttpMethod.Get, "v2.1/servers/detail?status=SHUTOFF", token: "u:pl");
        Assert.Single(shutoff.Json!["servers"]!.AsArray());
        var page = await f.SendAsync(HttpMethod.Get, "v2.1/servers?limit=2", token: "u:pl");
        Assert.Equal(2, page.Json!["servers"]!.AsArray().Count);
        Assert.NotNull(page.Json["servers_links"]);
        var marker = page.Json["servers"]![1]!["id"]!.GetValue<string>();
        var rest = await f.SendAsync(HttpMethod.Get, $"v2.1/servers?marker={marker}", token: "u:pl");
        Assert.Single(rest.Json!["servers"]!.AsArray());
        Assert.Equal(400, (await f.SendAsync(HttpMethod.Get, "v2.1/servers?marker=nope", token: "u:pl")).Status);
        Assert.Equal(400, (await f.SendAsync(HttpMethod.Get, "v2.1/servers?status=BOGUS", token: "u:pl")).Status);
    }
}
