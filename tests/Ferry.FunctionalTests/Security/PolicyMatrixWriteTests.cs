using System.Text.Json.Nodes;
using Ferry.ControlPlane.Identity;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Security;

/// <summary>
/// The other half of the policy matrix: every state-changing request a caller is allowed to make is sent by each
/// such caller (on a resource made for it where the request consumes one), must answer its 2xx, must have made the
/// change asked for (checked through the API), and must have changed no part of the state but the tables it names.
/// What each changed is then put back so the next caller starts from the same world.
/// </summary>
public sealed class PolicyMatrixWriteTests(PolicyMatrixFixture fixture) : IClassFixture<PolicyMatrixFixture>
{
    /// <summary>One allowed write: what to make first, the parts of the state it may change, how to see it happened, how to undo it.</summary>
    private sealed record Write(string[] Tables, Func<Ctx, Task> Verify, Func<Ctx, Task>? Prepare = null, Func<Ctx, Task>? Restore = null);

    private static readonly string[] s_build = ["instances", "instance_actions", "instance_action_events", "allocations", "consumers", "resource_providers"];
    private static readonly string[] s_action = ["instances", "instance_actions", "instance_action_events"];
    private static readonly string[] s_volume = ["volumes"];
    private static readonly string[] s_attachments = ["volumes", "volume_attachments"];

    /// <summary>Allowed writes the matrix does not send, each with the reason and the tests that do.</summary>
    private static readonly Dictionary<string, string> s_exempt = new(StringComparer.Ordinal)
    {
        ["Compute POST /servers/{server}/action {\"resize\""] = "the matrix runs one host and Nova resizes to another (allow_resize_to_same_host off): Flows/ResizeTests, Cli/ResizeCliTests",
        ["Compute POST /servers/{server}/action {\"os-migrateLive\""] = "needs a second host: Flows/LiveMigrationTests",
        ["Compute POST /servers/{server}/action {\"migrate\""] = "needs a second host: Flows/ColdMigrationTests",
        ["Compute POST /servers/{server}/action {\"evacuate\""] = "needs a second host and a failed one: Flows/EvacuationTests",
        ["Compute POST /servers/{server}/migrations/1/action"] = "needs a live migration in flight: Cli/MigrationInFlightCliTests",
        ["Compute DELETE /servers/{server}/migrations/1"] = "needs a live migration in flight: Cli/MigrationInFlightCliTests",
        ["Compute POST /servers/{server}/os-volume_attachments"] = "attaches the demo volume the volume rows delete and extend: Volumes/VolumeAttachTests (attach, detach, in-use refusal, delete_on_termination)",
        ["Compute DELETE /servers/{server}/os-volume_attachments/{volume}"] = "needs an attached volume: Volumes/VolumeAttachTests",
        ["Compute DELETE /os-services/{service}"] = "would delete the matrix's only compute host and its provider: Flows/ServiceDeleteTests",
        ["Network DELETE /networks/{network}"] = "the fixture's demo network, which the other rows read: Cli/NetworkCliTests deletes networks through the client, Persistence/NetworkStoreTests",
        ["Network DELETE /subnets/{subnet}"] = "the fixture's demo subnet, which the other rows read: Cli/NetworkCliTests, Persistence/NetworkStoreTests",
        ["Network DELETE /ports/{port}"] = "the fixture's demo port, which the binding rows use: Cli/NetworkCliTests, Networking/NetworkFlowTests",
        ["Network DELETE /ports/{port}/bindings/compute1"] = "the demo port's one active binding, which the binding rows read: Persistence/NetworkStoreTests.Bindings_LiveMigrationSequence_…, Networking/NetworkFlowTests.LiveMigrate_…",
        ["Network PUT /ports/{port}/bindings/compute1/activate"] = "already active (409 by design); activation of an inactive binding: Persistence/NetworkStoreTests.Bindings_LiveMigrationSequence_…, Networking/NetworkFlowTests.LiveMigrate_…",
        ["Image DELETE /images/2d4b7a1e-6c1f-4a3e-9a8e-f3e7c0d9b001"] = "the seeded ferry-test-guest image, whose id Glance never lets be reused: Images/ImageApiTests",
    };

    private static readonly Dictionary<string, Write> s_writes = new(StringComparer.Ordinal)
    {
        // Compute: servers and their actions, each on a server made for the caller.
        ["Compute POST /servers"] = new(s_build,
            async c =>
            {
                var id = (string)c.Response!["server"]!["id"]!;
                c.Saved["id"] = id;
                var server = await c.UntilServerAsync(id, s => (string?)s?["status"] == "ACTIVE", "ACTIVE");
                Assert.Equal(c.ProjectId, (string?)server!["tenant_id"]);
            },
            Restore: c => c.DeleteServerAsync(c.Saved["id"])),
        ["Compute DELETE /servers/{server}"] = new(s_build,
            c => c.UntilServerAsync(c.Ids["server"], s => s is null, "gone"),
            Prepare: async c => c.Ids["server"] = await c.NewServerAsync()),
        ["Compute POST /servers/{server}/action {\"os-stop\""] = new(s_action,
            c => c.UntilServerAsync(c.Ids["server"], s => (string?)s?["status"] == "SHUTOFF" && s?["OS-EXT-STS:task_state"] is null, "SHUTOFF"),
            Prepare: async c => c.Ids["server"] = await c.NewServerAsync(),
            Restore: c => c.DeleteServerAsync(c.Ids["server"])),
        ["Compute POST /servers/{server}/action {\"reboot\""] = new(s_action,
            async c =>
            {
                await c.UntilServerAsync(c.Ids["server"], s => (string?)s?["status"] == "ACTIVE" && s?["OS-EXT-STS:task_state"] is null, "ACTIVE after reboot");
                var actions = await c.SendAsync(Caller.Admin, Service.Compute, "GET", $"/servers/{c.Ids["server"]}/os-instance-actions");
                Assert.Contains(actions.Body!["instanceActions"]!.AsArray(), a => (string?)a!["action"] == "reboot");
            },
            Prepare: async c => c.Ids["server"] = await c.NewServerAsync(),
            Restore: c => c.DeleteServerAsync(c.Ids["server"])),
        ["Compute POST /servers/{server}/action {\"os-getConsoleOutput\""] = new([],
            c =>
            {
                Assert.NotNull((string?)c.Response!["output"]);
                return Task.CompletedTask;
            }),
        ["Compute POST /servers/{server}/metadata"] = new(["instances"],
            c => c.AssertMetadataAsync("""{"evil":"x","k":"v"}"""), Restore: c => c.ResetMetadataAsync()),
        ["Compute PUT /servers/{server}/metadata"] = new(["instances"],
            c => c.AssertMetadataAsync("{}"), Restore: c => c.ResetMetadataAsync()),
        ["Compute PUT /servers/{server}/metadata/k"] = new(["instances"],
            c => c.AssertMetadataAsync("""{"k":"pwned"}"""), Restore: c => c.ResetMetadataAsync()),
        ["Compute DELETE /servers/{server}/metadata/k"] = new(["instances"],
            c => c.AssertMetadataAsync("{}"), Restore: c => c.ResetMetadataAsync()),
        // Compute: flavors, quotas, services.
        ["Compute POST /flavors"] = new(["flavors"],
            async c =>
            {
                c.Saved["id"] = (string)c.Response!["flavor"]!["id"]!;
                Assert.Equal("evil", (string?)(await c.ExpectAsync(Caller.Admin, Service.Compute, "GET", $"/flavors/{c.Saved["id"]}", 200))!["flavor"]!["name"]);
            },
            Restore: c => c.ExpectAsync(Caller.Admin, Service.Compute, "DELETE", $"/flavors/{c.Saved["id"]}", 202)),
        ["Compute DELETE /flavors/{flavor}"] = new(["flavors"],
            c => c.ExpectAsync(Caller.Admin, Service.Compute, "GET", $"/flavors/{c.Ids["flavor"]}", 404),
            Prepare: async c => c.Ids["flavor"] = (string)(await c.ExpectAsync(Caller.Admin, Service.Compute, "POST", "/flavors",
                """{"flavor": {"name": "matrix-doomed", "ram": 64, "vcpus": 1, "disk": 1}}""", 200))!["flavor"]!["id"]!),
        ["Compute PUT /os-quota-sets/{demoProject}"] = new(["quotas"],
            async c => Assert.Equal(1000, (int)(await c.ExpectAsync(Caller.Admin, Service.Compute, "GET", $"/os-quota-sets/{c.Ids["demoProject"]}", 200))!["quota_set"]!["instances"]!),
            Restore: c => c.ExpectAsync(Caller.Admin, Service.Compute, "DELETE", $"/os-quota-sets/{c.Ids["demoProject"]}", 202)),
        ["Compute DELETE /os-quota-sets/{demoProject}"] = new(["quotas"],
            async c => Assert.Equal(
                (int)(await c.ExpectAsync(Caller.Admin, Service.Compute, "GET", $"/os-quota-sets/{c.Ids["demoProject"]}/defaults", 200))!["quota_set"]!["instances"]!,
                (int)(await c.ExpectAsync(Caller.Admin, Service.Compute, "GET", $"/os-quota-sets/{c.Ids["demoProject"]}", 200))!["quota_set"]!["instances"]!),
            Prepare: c => c.ExpectAsync(Caller.Admin, Service.Compute, "PUT", $"/os-quota-sets/{c.Ids["demoProject"]}", """{"quota_set": {"instances": 7}}""", 200)),
        ["Compute PUT /os-quota-class-sets/default"] = new(["quota_classes"],
            async c => Assert.Equal(1000, (int)(await c.ExpectAsync(Caller.Admin, Service.Compute, "GET", "/os-quota-class-sets/default", 200))!["quota_class_set"]!["instances"]!),
            Prepare: async c => c.Saved["instances"] = (string)(await c.ExpectAsync(Caller.Admin, Service.Compute, "GET", "/os-quota-class-sets/default", 200))!["quota_class_set"]!["instances"]!.ToJsonString(),
            Restore: c => c.ExpectAsync(Caller.Admin, Service.Compute, "PUT", "/os-quota-class-sets/default", $$"""{"quota_class_set": {"instances": {{c.Saved["instances"]}} } }""", 200)),
        ["Compute PUT /os-services/{service}"] = new(["services", "resource_providers", "traits"],
            async c => Assert.Equal("disabled", (string?)(await c.ExpectAsync(Caller.Admin, Service.Compute, "GET", "/os-services?binary=nova-compute", 200))!["services"]![0]!["status"]),
            Restore: c => c.ExpectAsync(Caller.Admin, Service.Compute, "PUT", $"/os-services/{c.Ids["service"]}", """{"status": "enabled"}""", 200)),
        // Compute: server groups and key pairs.
        ["Compute POST /os-server-groups"] = new(["server_groups"],
            async c =>
            {
                c.Saved["id"] = (string)c.Response!["server_group"]!["id"]!;
                Assert.Equal(c.ProjectId, (string?)(await c.ExpectAsync(c.Caller, Service.Compute, "GET", $"/os-server-groups/{c.Saved["id"]}", 200))!["server_group"]!["project_id"]);
            },
            Restore: c => c.ExpectAsync(c.Caller, Service.Compute, "DELETE", $"/os-server-groups/{c.Saved["id"]}", 204)),
        ["Compute DELETE /os-server-groups/{group}"] = new(["server_groups"],
            c => c.ExpectAsync(Caller.Admin, Service.Compute, "GET", $"/os-server-groups/{c.Ids["group"]}", 404),
            Prepare: async c => c.Ids["group"] = (string)(await c.ExpectAsync(Caller.Member, Service.Compute, "POST", "/os-server-groups",
                """{"server_group": {"name": "doomed", "policy": "affinity"}}""", 200))!["server_group"]!["id"]!),
        ["Compute POST /os-keypairs"] = new(["key_pairs"],
            c => c.ExpectAsync(c.Caller, Service.Compute, "GET", "/os-keypairs/x", 200),
            Restore: c => c.ExpectAsync(c.Caller, Service.Compute, "DELETE", "/os-keypairs/x", 204)),
        ["Compute DELETE /os-keypairs/demo-key"] = new(["key_pairs"],
            c => c.ExpectAsync(Caller.Member, Service.Compute, "GET", "/os-keypairs/demo-key", 404),
            Restore: c => c.ExpectAsync(Caller.Member, Service.Compute, "POST", "/os-keypairs", """{"keypair": {"name": "demo-key"}}""", 201, microversion: "2.91")),
        // Placement: each on a provider made for it.
        ["Placement POST /resource_providers"] = new(["resource_providers"],
            async c =>
            {
                c.Saved["id"] = (string)c.Response!["uuid"]!;
                Assert.Equal("evil", (string?)(await c.ExpectAsync(Caller.Admin, Service.Placement, "GET", $"/resource_providers/{c.Saved["id"]}", 200))!["name"]);
            },
            Restore: c => c.ExpectAsync(Caller.Admin, Service.Placement, "DELETE", $"/resource_providers/{c.Saved["id"]}", 204)),
        ["Placement DELETE /resource_providers/{provider}"] = new(["resource_providers"],
            c => c.ExpectAsync(Caller.Admin, Service.Placement, "GET", $"/resource_providers/{c.Ids["provider"]}", 404),
            Prepare: c => c.NewProviderAsync()),
        ["Placement DELETE /resource_providers/{provider}/inventories"] = new(["resource_providers", "inventories"],
            async c => Assert.Empty((await c.ExpectAsync(Caller.Admin, Service.Placement, "GET", $"/resource_providers/{c.Ids["provider"]}/inventories", 200))!["inventories"]!.AsObject()),
            Prepare: async c => { await c.NewProviderAsync(); await c.AddVcpuAsync(); }, Restore: c => c.DeleteProviderAsync()),
        ["Placement DELETE /allocations/{server}"] = new(["resource_providers", "allocations", "consumers"],
            async c => Assert.Empty((await c.ExpectAsync(Caller.Admin, Service.Placement, "GET", $"/allocations/{c.Ids["server"]}", 200))!["allocations"]!.AsObject()),
            Prepare: c => c.NewConsumerAsync(), Restore: c => c.DeleteProviderAsync()),
        ["Placement PUT /resource_providers/{provider}"] = new(["resource_providers"],
            async c => Assert.Equal("evil", (string?)(await c.ExpectAsync(Caller.Admin, Service.Placement, "GET", $"/resource_providers/{c.Ids["provider"]}", 200))!["name"]),
            Prepare: c => c.NewProviderAsync(), Restore: c => c.DeleteProviderAsync()),
        ["Placement PUT /resource_providers/{provider}/inventories"] = new(["resource_providers", "inventories"],
            c => c.AssertVcpuTotalAsync(1000), Prepare: c => c.NewProviderAsync(), Restore: c => c.DeleteProviderAsync()),
        ["Placement PUT /resource_providers/{provider}/inventories/VCPU"] = new(["resource_providers", "inventories"],
            c => c.AssertVcpuTotalAsync(1000), Prepare: c => c.NewProviderAsync(), Restore: c => c.DeleteProviderAsync()),
        ["Placement POST /resource_providers/{provider}/inventories"] = new(["resource_providers", "inventories"],
            async c => Assert.Equal(10, (int)(await c.ExpectAsync(Caller.Admin, Service.Placement, "GET", $"/resource_providers/{c.Ids["provider"]}/inventories/DISK_GB", 200))!["total"]!),
            Prepare: c => c.NewProviderAsync(), Restore: c => c.DeleteProviderAsync()),
        ["Placement DELETE /resource_providers/{provider}/inventories/VCPU"] = new(["resource_providers", "inventories"],
            c => c.ExpectAsync(Caller.Admin, Service.Placement, "GET", $"/resource_providers/{c.Ids["provider"]}/inventories/VCPU", 404),
            Prepare: async c => { await c.NewProviderAsync(); await c.AddVcpuAsync(); }, Restore: c => c.DeleteProviderAsync()),
        ["Placement PUT /resource_providers/{provider}/traits"] = new(["resource_providers", "traits"],
            async c => Assert.Equal(["CUSTOM_EVIL"], (await c.ExpectAsync(Caller.Admin, Service.Placement, "GET", $"/resource_providers/{c.Ids["provider"]}/traits", 200))!["traits"]!.AsArray().Select(t => (string?)t)),
            Prepare: async c => { await c.NewProviderAsync(); await c.ExpectAsync(Caller.Admin, Service.Placement, "PUT", "/traits/CUSTOM_EVIL", null, 201); },
            Restore: async c => { await c.DeleteProviderAsync(); await c.ExpectAsync(Caller.Admin, Service.Placement, "DELETE", "/traits/CUSTOM_EVIL", 204); }),
        ["Placement DELETE /resource_providers/{provider}/traits"] = new(["resource_providers", "traits"],
            async c => Assert.Empty((await c.ExpectAsync(Caller.Admin, Service.Placement, "GET", $"/resource_providers/{c.Ids["provider"]}/traits", 200))!["traits"]!.AsArray()),
            Prepare: async c =>
            {
                await c.NewProviderAsync();
                await c.ExpectAsync(Caller.Admin, Service.Placement, "PUT", $"/resource_providers/{c.Ids["provider"]}/traits", """{"resource_provider_generation": 0, "traits": ["HW_CPU_X86_AVX"]}""", 200);
            },
            Restore: c => c.DeleteProviderAsync()),
        ["Placement PUT /allocations/{server}"] = new(["resource_providers", "allocations", "consumers"],
            async c => Assert.Empty((await c.ExpectAsync(Caller.Admin, Service.Placement, "GET", $"/allocations/{c.Ids["server"]}", 200))!["allocations"]!.AsObject()),
            Prepare: c => c.NewConsumerAsync(), Restore: c => c.DeleteProviderAsync()),
        ["Placement POST /allocations"] = new(["resource_providers", "allocations", "consumers"],
            async c => Assert.Equal(1, (int)(await c.ExpectAsync(Caller.Admin, Service.Placement, "GET", $"/allocations/{c.Ids["consumer"]}", 200))!["allocations"]![c.Ids["provider"]]!["resources"]!["VCPU"]!),
            Prepare: async c => { await c.NewProviderAsync(); await c.AddVcpuAsync(); c.Ids["consumer"] = Guid.NewGuid().ToString(); },
            Restore: async c => { await c.ExpectAsync(Caller.Admin, Service.Placement, "DELETE", $"/allocations/{c.Ids["consumer"]}", 204); await c.DeleteProviderAsync(); }),
        ["Placement POST /resource_classes"] = new(["custom_resource_classes"],
            c => c.ExpectAsync(Caller.Admin, Service.Placement, "GET", "/resource_classes/CUSTOM_EVIL", 200),
            Restore: c => c.ExpectAsync(Caller.Admin, Service.Placement, "DELETE", "/resource_classes/CUSTOM_EVIL", 204)),
        ["Placement PUT /resource_classes/CUSTOM_EVIL"] = new(["custom_resource_classes"],
            c => c.ExpectAsync(Caller.Admin, Service.Placement, "GET", "/resource_classes/CUSTOM_EVIL", 200),
            Restore: c => c.ExpectAsync(Caller.Admin, Service.Placement, "DELETE", "/resource_classes/CUSTOM_EVIL", 204)),
        ["Placement DELETE /resource_classes/CUSTOM_EVIL"] = new(["custom_resource_classes"],
            c => c.ExpectAsync(Caller.Admin, Service.Placement, "GET", "/resource_classes/CUSTOM_EVIL", 404),
            Prepare: c => c.ExpectAsync(Caller.Admin, Service.Placement, "PUT", "/resource_classes/CUSTOM_EVIL", null, 201)),
        ["Placement PUT /traits/CUSTOM_EVIL"] = new(["custom_traits"],
            c => c.ExpectAsync(Caller.Admin, Service.Placement, "GET", "/traits/CUSTOM_EVIL", 204),
            Restore: c => c.ExpectAsync(Caller.Admin, Service.Placement, "DELETE", "/traits/CUSTOM_EVIL", 204)),
        ["Placement DELETE /traits/CUSTOM_EVIL"] = new(["custom_traits"],
            c => c.ExpectAsync(Caller.Admin, Service.Placement, "GET", "/traits/CUSTOM_EVIL", 404),
            Prepare: c => c.ExpectAsync(Caller.Admin, Service.Placement, "PUT", "/traits/CUSTOM_EVIL", null, 201)),
        // Identity: revoking a token of the member's (a fresh one: the caller's own stays valid).
        ["Identity DELETE /auth/tokens"] = new(["tokens"],
            c => c.ExpectAsync(Caller.Admin, Service.Identity, "GET", "/auth/tokens", 404, headers: new() { ["X-Subject-Token"] = c.Ids["memberToken"] }),
            Prepare: c =>
            {
                c.Ids["memberToken"] = c.IssueMemberToken();
                return Task.CompletedTask;
            }),
        // Image: each on an image made for it.
        ["Network POST /networks"] = new(["networks"],
            async c =>
            {
                c.Saved["id"] = (string)c.Response!["network"]!["id"]!;
                Assert.Equal(c.ProjectId, (string?)(await c.ExpectAsync(Caller.Admin, Service.Network, "GET", $"/networks/{c.Saved["id"]}", 200))!["network"]!["project_id"]);
            },
            Restore: c => c.ExpectAsync(Caller.Admin, Service.Network, "DELETE", $"/networks/{c.Saved["id"]}", 204)),
        ["Network PUT /networks/{network}"] = new(["networks"],
            async c => Assert.Equal("pwned", (string?)(await c.ExpectAsync(Caller.Admin, Service.Network, "GET", $"/networks/{c.Ids["network"]}", 200))!["network"]!["name"]),
            Restore: c => c.ExpectAsync(Caller.Admin, Service.Network, "PUT", $"/networks/{c.Ids["network"]}", """{"network": {"name": "demo-net"}}""", 200)),
        ["Network POST /subnets"] = new(["subnets"],
            async c =>
            {
                c.Saved["id"] = (string)c.Response!["subnet"]!["id"]!;
                Assert.Equal("10.56.0.0/24", (string?)(await c.ExpectAsync(Caller.Admin, Service.Network, "GET", $"/subnets/{c.Saved["id"]}", 200))!["subnet"]!["cidr"]);
            },
            Restore: c => c.ExpectAsync(Caller.Admin, Service.Network, "DELETE", $"/subnets/{c.Saved["id"]}", 204)),
        ["Network PUT /subnets/{subnet}"] = new(["subnets"],
            async c => Assert.Equal("pwned", (string?)(await c.ExpectAsync(Caller.Admin, Service.Network, "GET", $"/subnets/{c.Ids["subnet"]}", 200))!["subnet"]!["name"]),
            Restore: c => c.ExpectAsync(Caller.Admin, Service.Network, "PUT", $"/subnets/{c.Ids["subnet"]}", """{"subnet": {"name": ""}}""", 200)),
        ["Network POST /ports"] = new(["ports", "ip_allocations"],
            async c =>
            {
                c.Saved["id"] = (string)c.Response!["port"]!["id"]!;
                var port = await c.ExpectAsync(Caller.Admin, Service.Network, "GET", $"/ports/{c.Saved["id"]}", 200);
                Assert.Equal(c.ProjectId, (string?)port!["port"]!["project_id"]);
                Assert.Single(port["port"]!["fixed_ips"]!.AsArray());
            },
            Restore: c => c.ExpectAsync(Caller.Admin, Service.Network, "DELETE", $"/ports/{c.Saved["id"]}", 204)),
        ["Network PUT /ports/{port}"] = new(["ports"],
            async c => Assert.Equal("pwned", (string?)(await c.ExpectAsync(Caller.Admin, Service.Network, "GET", $"/ports/{c.Ids["port"]}", 200))!["port"]!["name"]),
            Restore: c => c.ExpectAsync(Caller.Admin, Service.Network, "PUT", $"/ports/{c.Ids["port"]}", """{"port": {"name": ""}}""", 200)),
        ["Network POST /ports/{port}/bindings"] = new(["port_bindings"],
            async c => Assert.Equal("INACTIVE", (string?)(await c.ExpectAsync(Caller.Admin, Service.Network, "GET", $"/ports/{c.Ids["port"]}/bindings/compute9", 200))!["binding"]!["status"]),
            Restore: c => c.ExpectAsync(Caller.Admin, Service.Network, "DELETE", $"/ports/{c.Ids["port"]}/bindings/compute9", 204)),
        // Volume: each on a volume (and attachment) made for it, except the rename, which is put back.
        ["Volume POST /volumes"] = new(s_volume,
            async c =>
            {
                c.Saved["id"] = (string)c.Response!["volume"]!["id"]!;
                var volume = await c.VolumeAsync(c.Saved["id"]);
                Assert.Equal((c.ProjectId, "available"), ((string?)volume["os-vol-tenant-attr:tenant_id"], (string?)volume["status"]));
            },
            Restore: c => c.DeleteVolumeAsync(c.Saved["id"])),
        ["Volume PUT /volumes/{volume}"] = new(s_volume,
            async c => Assert.Equal("pwned", (string?)(await c.VolumeAsync(c.Ids["volume"]))["name"]),
            Restore: c => c.ExpectAsync(Caller.Admin, Service.Volume, "PUT", $"/volumes/{c.Ids["volume"]}", """{"volume": {"name": "demo-vol"}}""", 200)),
        ["Volume DELETE /volumes/{volume}"] = new(s_volume,
            c => c.ExpectAsync(Caller.Admin, Service.Volume, "GET", $"/volumes/{c.Ids["volume"]}", 404),
            Prepare: c => c.NewVolumeAsync()),
        ["Volume POST /volumes/{volume}/action"] = new(s_volume,
            async c => Assert.Equal(2, (int)(await c.VolumeAsync(c.Ids["volume"]))["size"]!),
            Prepare: c => c.NewVolumeAsync(), Restore: c => c.DeleteVolumeAsync(c.Ids["volume"])),
        ["Volume POST /attachments"] = new(s_attachments,
            async c =>
            {
                c.Ids["attachment"] = (string)c.Response!["attachment"]!["id"]!;
                Assert.Equal("reserved", (string?)(await c.VolumeAsync(c.Ids["volume"]))["status"]);
            },
            Prepare: c => c.NewVolumeAsync(), Restore: c => c.DeleteAttachedVolumeAsync()),
        ["Volume PUT /attachments/{attachment}"] = new(s_attachments,
            async c => Assert.Equal("attaching", (string?)(await c.VolumeAsync(c.Ids["volume"]))["status"]),
            Prepare: c => c.NewAttachmentAsync(), Restore: c => c.DeleteAttachedVolumeAsync()),
        ["Volume POST /attachments/{attachment}/action"] = new(s_attachments,
            async c => Assert.Equal("in-use", (string?)(await c.VolumeAsync(c.Ids["volume"]))["status"]),
            Prepare: c => c.NewAttachmentAsync(connect: true), Restore: c => c.DeleteAttachedVolumeAsync()),
        ["Volume DELETE /attachments/{attachment}"] = new(s_attachments,
            async c => Assert.Equal("available", (string?)(await c.VolumeAsync(c.Ids["volume"]))["status"]),
            Prepare: c => c.NewAttachmentAsync(), Restore: c => c.DeleteVolumeAsync(c.Ids["volume"])),
        ["Image POST /images"] = new(["images"],
            async c =>
            {
                c.Saved["id"] = (string)c.Response!["id"]!;
                Assert.Equal(c.ProjectId, (string?)(await c.ExpectAsync(Caller.Admin, Service.Image, "GET", $"/images/{c.Saved["id"]}", 200))!["owner"]);
            },
            Restore: c => c.ExpectAsync(Caller.Admin, Service.Image, "DELETE", $"/images/{c.Saved["id"]}", 204)),
        ["Image PATCH /images/{image}"] = new(["images"],
            async c => Assert.Equal("pwned", (string?)(await c.ExpectAsync(Caller.Admin, Service.Image, "GET", $"/images/{c.Ids["image"]}", 200))!["name"]),
            Prepare: c => c.NewImageAsync(), Restore: c => c.DeleteImageAsync()),
        ["Image PUT /images/{image}/file"] = new(["images", "image files"],
            async c =>
            {
                var image = await c.ExpectAsync(Caller.Admin, Service.Image, "GET", $"/images/{c.Ids["image"]}", 200);
                Assert.Equal(("active", 4), ((string?)image!["status"], (int)image["size"]!));
            },
            Prepare: c => c.NewImageAsync(), Restore: c => c.DeleteImageAsync()),
        ["Image DELETE /images/{image}"] = new(["images"],
            c => c.ExpectAsync(Caller.Admin, Service.Image, "GET", $"/images/{c.Ids["image"]}", 404),
            Prepare: c => c.NewImageAsync()),
    };

    /// <summary>The key of a matrix row: service, method, path, and for server actions the action's name.</summary>
    private static string KeyOf(PolicyRoute route) =>
        route.Path == "/servers/{server}/action" ? $"{route} {route.Body![..(route.Body.IndexOf(':', StringComparison.Ordinal))]}" : route.ToString();

    private static readonly Caller[] s_callers = Enum.GetValues<Caller>();

    /// <summary>Matrix rows that some caller is allowed to send and that change state (keys).</summary>
    public static TheoryData<string> AllowedWrites()
    {
        var data = new TheoryData<string>();
        foreach (var key in WriteRoutes().Keys.Where(s_writes.ContainsKey))
        {
            data.Add(key);
        }
        return data;
    }

    private static Dictionary<string, PolicyRoute> WriteRoutes()
    {
        var routes = new Dictionary<string, PolicyRoute>(StringComparer.Ordinal);
        foreach (var row in PolicyMatrixTests.Routes())
        {
            PolicyRoute route = row;
            if (route.Method is not ("GET" or "HEAD") && s_callers.Any(c => PolicyMatrixTests.Expected(route, c) is null))
            {
                routes[KeyOf(route)] = route;
            }
        }
        return routes;
    }

    [Fact]
    public void EveryAllowedWriteOfTheMatrix_IsSentOrExemptWithAReason()
    {
        var routes = WriteRoutes();
        var missing = routes.Keys.Where(k => !s_writes.ContainsKey(k) && !s_exempt.ContainsKey(k)).ToList();
        Assert.True(missing.Count == 0, "allowed writes neither sent nor exempt:\n" + string.Join("\n", missing));
        var stale = s_writes.Keys.Concat(s_exempt.Keys).Where(k => !routes.ContainsKey(k)).ToList();
        Assert.True(stale.Count == 0, "write specs of no matrix row:\n" + string.Join("\n", stale));
    }

    [Theory]
    [MemberData(nameof(AllowedWrites))]
    public async Task AllowedWrite_EachAllowedCaller_Gets2xxAndChangesExactlyWhatItAsked(string key)
    {
        var route = WriteRoutes()[key];
        var write = s_writes[key];
        var failures = new List<string>();
        foreach (var caller in s_callers.Where(c => PolicyMatrixTests.Expected(route, c) is null))
        {
            var c = new Ctx(fixture, caller);
            if (write.Prepare is not null)
            {
                await write.Prepare(c);
            }
            var before = fixture.SnapshotSections();
            var (status, body, _) = await c.SendAsync(caller, route.Service, route.Method, route.Path, route.Body, route.ContentType, route.Microversion, route.Headers);
            if (status != route.AllowedStatus)
            {
                failures.Add($"{caller}: {status} (expected {route.AllowedStatus}) {body?.ToJsonString()}");
                continue;
            }
            c.Response = body;
            try
            {
                await write.Verify(c);
            }
            catch (Exception ex) when (ex is Xunit.Sdk.XunitException)
            {
                failures.Add($"{caller}: {ex.Message}");
            }
            var after = fixture.SnapshotSections();
            // sqlite_sequence is SQLite's own AUTOINCREMENT counter, bumped by any insert.
            var changed = after.Keys.Union(before.Keys).Where(k => k != "sqlite_sequence" && before.GetValueOrDefault(k) != after.GetValueOrDefault(k)).ToList();
            var unexpected = changed.Except(write.Tables).ToList();
            if (unexpected.Count > 0)
            {
                failures.Add($"{caller}: changed {string.Join(", ", unexpected)} beyond {string.Join(", ", write.Tables)}");
            }
            if (write.Restore is not null)
            {
                await write.Restore(c);
            }
        }
        Assert.True(failures.Count == 0, $"{key}:\n" + string.Join("\n", failures));
    }

    /// <summary>One caller's run of a write: the ids it uses (made fresh where needed), the answer, what to undo.</summary>
    private sealed class Ctx(PolicyMatrixFixture fixture, Caller caller)
    {
        private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(20);

        public Caller Caller { get; } = caller;
        public Dictionary<string, string> Ids { get; } = new(fixture.Ids);
        public Dictionary<string, string> Saved { get; } = [];
        public JsonNode? Response { get; set; }

        public string ProjectId => Caller switch
        {
            Caller.Admin => fixture.Identity.FindProject("admin", IdentityStore.DefaultDomainId)!.Id,
            Caller.OtherMember => fixture.OtherProjectId,
            _ => fixture.DemoProjectId,
        };

        public Task<(int Status, JsonNode? Body, HttpResponseMessage Response)> SendAsync(Caller who, Service service, string method, string path, string? body = null,
            string contentType = "application/json", string microversion = "2.95", Dictionary<string, string>? headers = null)
        {
            foreach (var (id, value) in Ids)
            {
                path = path.Replace("{" + id + "}", value, StringComparison.Ordinal);
            }
            foreach (var (id, value) in Ids)
            {
                body = body?.Replace("{" + id + "}", value, StringComparison.Ordinal);
            }
            var resolved = headers?.ToDictionary(h => h.Key, h => Ids.Aggregate(h.Value, (v, id) => v.Replace("{" + id.Key + "}", id.Value, StringComparison.Ordinal)));
            return fixture.SendAsync(who, service, new HttpMethod(method), path, body, contentType, microversion: microversion, headers: resolved);
        }

        /// <summary>Sends and requires <paramref name="status"/>; returns the body.</summary>
        public async Task<JsonNode?> ExpectAsync(Caller who, Service service, string method, string path, string? body, int status, string microversion = "2.95",
            Dictionary<string, string>? headers = null)
        {
            var (got, json, _) = await SendAsync(who, service, method, path, body, microversion: microversion, headers: headers);
            Assert.True(got == status, $"{who} {method} {path}: {got} (expected {status}) {json?.ToJsonString()}");
            return json;
        }

        public Task<JsonNode?> ExpectAsync(Caller who, Service service, string method, string path, int status, string microversion = "2.95",
            Dictionary<string, string>? headers = null) =>
            ExpectAsync(who, service, method, path, null, status, microversion, headers);

        /// <summary>Polls the server as admin until <paramref name="done"/> holds (null once it is gone).</summary>
        public async Task<JsonNode?> UntilServerAsync(string id, Func<JsonNode?, bool> done, string what)
        {
            var deadline = DateTime.UtcNow + s_wait;
            while (true)
            {
                var (status, body, _) = await SendAsync(Caller.Admin, Service.Compute, "GET", $"/servers/{id}");
                var server = status == 404 ? null : body?["server"];
                if (done(server))
                {
                    return server;
                }
                Assert.True(DateTime.UtcNow < deadline, $"server {id} never {what}: {server?.ToJsonString()}");
                await Task.Delay(20);
            }
        }

        /// <summary>A server of the demo project, ACTIVE.</summary>
        public async Task<string> NewServerAsync()
        {
            var body = await ExpectAsync(Caller.Member, Service.Compute, "POST", "/servers",
                """{"server": {"name": "matrix", "imageRef": "ferry-test-guest", "flavorRef": "m1.nano", "networks": "none"}}""", 202);
            var id = (string)body!["server"]!["id"]!;
            await UntilServerAsync(id, s => (string?)s?["status"] == "ACTIVE", "ACTIVE");
            return id;
        }

        public async Task DeleteServerAsync(string id)
        {
            await ExpectAsync(Caller.Admin, Service.Compute, "DELETE", $"/servers/{id}", 204);
            await UntilServerAsync(id, s => s is null, "gone");
        }

        public async Task AssertMetadataAsync(string expected)
        {
            var metadata = (await ExpectAsync(Caller.Admin, Service.Compute, "GET", $"/servers/{Ids["server"]}/metadata", 200))!["metadata"]!.AsObject();
            Assert.Equal(JsonNode.Parse(expected)!.AsObject().Select(p => $"{p.Key}={p.Value}").Order(), metadata.Select(p => $"{p.Key}={p.Value}").Order());
        }

        public Task ResetMetadataAsync() =>
            ExpectAsync(Caller.Admin, Service.Compute, "PUT", $"/servers/{Ids["server"]}/metadata", """{"metadata": {"k": "v"}}""", 200);

        public async Task NewProviderAsync() =>
            Ids["provider"] = (string)(await ExpectAsync(Caller.Admin, Service.Placement, "POST", "/resource_providers", $$"""{"name": "matrix-{{Guid.NewGuid():N}}"}""", 200))!["uuid"]!;

        public Task AddVcpuAsync() =>
            ExpectAsync(Caller.Admin, Service.Placement, "PUT", $"/resource_providers/{Ids["provider"]}/inventories",
                """{"resource_provider_generation": 0, "inventories": {"VCPU": {"total": 4}}}""", 200);

        public Task DeleteProviderAsync() => ExpectAsync(Caller.Admin, Service.Placement, "DELETE", $"/resource_providers/{Ids["provider"]}", 204);

        public async Task AssertVcpuTotalAsync(int total) =>
            Assert.Equal(total, (int)(await ExpectAsync(Caller.Admin, Service.Placement, "GET", $"/resource_providers/{Ids["provider"]}/inventories/VCPU", 200))!["total"]!);

        /// <summary>A provider with VCPU and one consumer holding 1 of it (consumer generation 1, as the matrix's PUT expects).</summary>
        public async Task NewConsumerAsync()
        {
            await NewProviderAsync();
            await AddVcpuAsync();
            Ids["server"] = Guid.NewGuid().ToString();
            await ExpectAsync(Caller.Admin, Service.Placement, "PUT", $"/allocations/{Ids["server"]}",
                $$"""{"allocations": {"{{Ids["provider"]}}": {"resources": {"VCPU": 1} } }, "project_id": "p", "user_id": "u", "consumer_generation": null}""", 204);
        }

        public async Task NewImageAsync() =>
            Ids["image"] = (string)(await ExpectAsync(Caller.Member, Service.Image, "POST", "/images",
                """{"name": "matrix", "disk_format": "raw", "container_format": "bare", "visibility": "private"}""", 201))!["id"]!;

        public Task DeleteImageAsync() => ExpectAsync(Caller.Admin, Service.Image, "DELETE", $"/images/{Ids["image"]}", 204);

        /// <summary>A volume of the demo project, available, as <c>{volume}</c>.</summary>
        public async Task NewVolumeAsync() =>
            Ids["volume"] = (string)(await ExpectAsync(Caller.Member, Service.Volume, "POST", "/volumes", """{"volume": {"size": 1, "name": "matrix"}}""", 202))!["volume"]!["id"]!;

        /// <summary>A new demo volume reserved for the demo server as <c>{attachment}</c>, connected to compute1 when asked.</summary>
        public async Task NewAttachmentAsync(bool connect = false)
        {
            await NewVolumeAsync();
            var body = await ExpectAsync(Caller.Member, Service.Volume, "POST", "/attachments",
                $$$"""{"attachment": {"volume_uuid": "{{{Ids["volume"]}}}", "instance_uuid": "{{{Ids["server"]}}}", "connector": null}}""", 200);
            Ids["attachment"] = (string)body!["attachment"]!["id"]!;
            if (connect)
            {
                await ExpectAsync(Caller.Member, Service.Volume, "PUT", $"/attachments/{Ids["attachment"]}", """{"attachment": {"connector": {"host": "compute1"}}}""", 200);
            }
        }

        public async Task<JsonNode> VolumeAsync(string id) => (await ExpectAsync(Caller.Admin, Service.Volume, "GET", $"/volumes/{id}", 200))!["volume"]!;

        public Task DeleteVolumeAsync(string id) => ExpectAsync(Caller.Admin, Service.Volume, "DELETE", $"/volumes/{id}", 202);

        /// <summary>Deletes <c>{attachment}</c> (if still there) and then <c>{volume}</c>.</summary>
        public async Task DeleteAttachedVolumeAsync()
        {
            await SendAsync(Caller.Admin, Service.Volume, "DELETE", $"/attachments/{Ids["attachment"]}");
            await DeleteVolumeAsync(Ids["volume"]);
        }

        public string IssueMemberToken()
        {
            var identity = fixture.Identity;
            var user = identity.FindUser("demo", IdentityStore.DefaultDomainId)!;
            var project = identity.FindProject("demo", IdentityStore.DefaultDomainId)!;
            return fixture.Ferry.Services.GetRequiredService<TokenStore>().Issue(user, project, identity.RolesOf(user.Id, project.Id), ["password"]).Id;
        }
    }
}
