using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Identity;
using Ferry.ControlPlane.Persistence;
using Ferry.Host;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Security;

/// <summary>How a route is guarded under Nova's, Glance's, Keystone's and Placement's default policies.</summary>
public enum Rule
{
    /// <summary>Any authenticated caller may read.</summary>
    AnyReader,
    /// <summary>Creates something in the caller's own project: a reader may not.</summary>
    AnyMember,
    /// <summary>Reads a resource of the demo project: its reader and member, and admins; another project gets 404.</summary>
    OwnedRead,
    /// <summary>Changes a resource of the demo project: its member and admins; its reader 403, another project 404.</summary>
    OwnedWrite,
    /// <summary>Admin-only on a resource of the demo project: others of the project 403, another project 404 (looked up first).</summary>
    AdminOwned,
    /// <summary>Admin-only: every non-admin 403.</summary>
    Admin,
    /// <summary>Unauthenticated by design (version discovery): every caller, anonymous included, gets the allowed status.</summary>
    Public,
}

/// <summary>A route with the identities of the resources the matrix fixture created.</summary>
public sealed record PolicyRoute(Service Service, string Method, string Path, Rule Rule, string? Body = null, string ContentType = "application/json",
    int AllowedStatus = 200, Dictionary<Caller, int>? Overrides = null, string Microversion = "2.95", bool Root = false,
    Dictionary<string, string>? Headers = null)
{
    public override string ToString() => $"{Service} {Method} {Path}";
}

/// <summary>
/// The security fixture plus one of everything the demo project owns (a server, a server group, a keypair, a private
/// image), with heartbeats far apart so that the database only changes when a request changes it.
/// </summary>
public sealed class PolicyMatrixFixture : SecurityFixture, IAsyncLifetime
{
    public Dictionary<string, string> Ids { get; } = [];

    protected override void Configure(FerryHostOptions options)
    {
        options.Hosts = 1;
        options.ReportInterval = TimeSpan.FromHours(1);
    }

    public new async Task InitializeAsync()
    {
        await base.InitializeAsync();
        var server = await SendAsync(Caller.Member, Service.Compute, HttpMethod.Post, "/servers",
            """{"server": {"name": "owned", "imageRef": "ferry-test-guest", "flavorRef": "m1.nano", "networks": "none", "metadata": {"k": "v"}}}""");
        Assert.True(server.Status == 202, server.Body?.ToJsonString());
        Ids["server"] = (string)server.Body!["server"]!["id"]!;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((string?)(await SendAsync(Caller.Member, Service.Compute, HttpMethod.Get, $"/servers/{Ids["server"]}")).Body?["server"]?["status"] != "ACTIVE")
        {
            Assert.True(DateTime.UtcNow < deadline, "the demo server did not become ACTIVE");
            await Task.Delay(50);
        }
        var group = await SendAsync(Caller.Member, Service.Compute, HttpMethod.Post, "/os-server-groups", """{"server_group": {"name": "g", "policy": "affinity"}}""");
        Ids["group"] = (string)group.Body!["server_group"]!["id"]!;
        var keypair = await SendAsync(Caller.Member, Service.Compute, HttpMethod.Post, "/os-keypairs", """{"keypair": {"name": "demo-key"}}""", microversion: "2.91");
        Assert.True(keypair.Status is 200 or 201, $"keypair: {keypair.Status}");
        var image = await SendAsync(Caller.Member, Service.Image, HttpMethod.Post, "/images", """{"name": "demo-private", "disk_format": "raw", "container_format": "bare", "visibility": "private"}""");
        Ids["image"] = (string)image.Body!["id"]!;
        var actions = await SendAsync(Caller.Admin, Service.Compute, HttpMethod.Get, $"/servers/{Ids["server"]}/os-instance-actions");
        Ids["request"] = (string)actions.Body!["instanceActions"]![0]!["request_id"]!;
        var hypervisors = await SendAsync(Caller.Admin, Service.Compute, HttpMethod.Get, "/os-hypervisors");
        Ids["hypervisor"] = (string)hypervisors.Body!["hypervisors"]![0]!["id"]!;
        Ids["hypervisorName"] = (string)hypervisors.Body!["hypervisors"]![0]!["hypervisor_hostname"]!;
        var services = await SendAsync(Caller.Admin, Service.Compute, HttpMethod.Get, "/os-services?binary=nova-compute");
        Ids["service"] = (string)services.Body!["services"]![0]!["id"]!;
        var providers = await SendAsync(Caller.Admin, Service.Placement, HttpMethod.Get, "/resource_providers");
        Ids["provider"] = (string)providers.Body!["resource_providers"]![0]!["uuid"]!;
        Ids["demoUser"] = Identity.FindUser("demo", IdentityStore.DefaultDomainId)!.Id;
        Ids["demoProject"] = DemoProjectId;
        Ids["flavor"] = "m1.tiny";
        Ids["memberToken"] = Token(Caller.Member)!;
        var network = await SendAsync(Caller.Member, Service.Network, HttpMethod.Post, "/networks", """{"network": {"name": "demo-net"}}""");
        Ids["network"] = (string)network.Body!["network"]!["id"]!;
        var subnet = await SendAsync(Caller.Member, Service.Network, HttpMethod.Post, "/subnets",
            $$$"""{"subnet": {"network_id": "{{{Ids["network"]}}}", "cidr": "10.55.0.0/24", "ip_version": 4}}""");
        Ids["subnet"] = (string)subnet.Body!["subnet"]!["id"]!;
        var port = await SendAsync(Caller.Member, Service.Network, HttpMethod.Post, "/ports",
            $$$"""{"port": {"network_id": "{{{Ids["network"]}}}", "device_owner": "compute:nova"}}""");
        Ids["port"] = (string)port.Body!["port"]!["id"]!;
        // Bound to the host, so the binding routes have a binding to show, delete and activate.
        var bound = await SendAsync(Caller.Admin, Service.Network, HttpMethod.Put, $"/ports/{Ids["port"]}", """{"port": {"binding:host_id": "compute1"}}""");
        Assert.True(bound.Status == 200, bound.Body?.ToJsonString());
        var volume = await SendAsync(Caller.Member, Service.Volume, HttpMethod.Post, "/volumes", """{"volume": {"size": 1, "name": "demo-vol"}}""");
        Assert.True(volume.Status == 202, volume.Body?.ToJsonString());
        Ids["volume"] = (string)volume.Body!["volume"]!["id"]!;
        var held = await SendAsync(Caller.Member, Service.Volume, HttpMethod.Post, "/volumes", """{"volume": {"size": 1, "name": "demo-held"}}""");
        Ids["heldVolume"] = (string)held.Body!["volume"]!["id"]!;
        var attachment = await SendAsync(Caller.Member, Service.Volume, HttpMethod.Post, "/attachments",
            $$$"""{"attachment": {"volume_uuid": "{{{Ids["heldVolume"]}}}", "instance_uuid": "{{{Ids["server"]}}}", "connector": null}}""");
        Assert.True(attachment.Status == 200, attachment.Body?.ToJsonString());
        Ids["attachment"] = (string)attachment.Body!["attachment"]!["id"]!;
    }

    /// <summary>The service's URL without its API version prefix (version discovery).</summary>
    public string RootUrl(Service service) => service switch
    {
        Service.Compute => Ferry.Options.ComputeApiUrl,
        Service.Placement => Ferry.Options.PlacementUrl,
        Service.Identity => Ferry.Options.IdentityUrl,
        Service.Network => Ferry.Options.NetworkUrl,
        Service.Volume => Ferry.Options.VolumeUrl,
        _ => Ferry.Options.ImageUrl,
    };

    /// <summary>Everything a refused request could have changed: every row of every table, the image files, the identity file in memory.</summary>
    public string Snapshot() => string.Concat(SnapshotSections().Select(s => $"## {s.Key}\n{s.Value}"));

    /// <summary>The snapshot by part: one per table, then <c>image files</c> and <c>identity</c>.</summary>
    public SortedDictionary<string, string> SnapshotSections()
    {
        var sections = new SortedDictionary<string, string>(StringComparer.Ordinal);
        Ferry.Services.GetRequiredService<FerryDatabase>().Read(connection =>
        {
            using var tables = connection.CreateCommand();
            tables.CommandText = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name";
            var names = new List<string>();
            using (var reader = tables.ExecuteReader())
            {
                while (reader.Read())
                {
                    names.Add(reader.GetString(0));
                }
            }
            foreach (var name in names)
            {
                using var rows = connection.CreateCommand();
                rows.CommandText = $"SELECT * FROM \"{name}\" ORDER BY 1";
                using var reader = rows.ExecuteReader();
                var text = new StringBuilder();
                while (reader.Read())
                {
                    for (var i = 0; i < reader.FieldCount; i++)
                    {
                        text.Append(reader.IsDBNull(i) ? "null" : Convert.ToString(reader.GetValue(i), System.Globalization.CultureInfo.InvariantCulture)).Append('|');
                    }
                    text.Append('\n');
                }
                sections[name] = text.ToString();
            }
            return 0;
        });
        var files = new StringBuilder();
        var images = Path.Combine(DataDirectory, "images");
        if (Directory.Exists(images))
        {
            foreach (var file in Directory.EnumerateFiles(images).Order())
            {
                files.Append(file).Append(' ').Append(new FileInfo(file).Length).Append('\n');
            }
        }
        sections["image files"] = files.ToString();
        sections["identity"] = JsonSerializer.Serialize(Identity.Config.Users.Select(u => u.Id + u.Name + u.Enabled)) + JsonSerializer.Serialize(Identity.Config.Assignments);
        return sections;
    }
}

/// <summary>
/// Every route × every kind of caller: the status the services' default policies give, and for every refused
/// request, that nothing changed. Requests a caller is allowed to make that change state are sent by
/// <see cref="PolicyMatrixWriteTests"/>.
/// </summary>
public sealed class PolicyMatrixTests(PolicyMatrixFixture fixture) : IClassFixture<PolicyMatrixFixture>
{
    private static readonly Caller[] s_callers = Enum.GetValues<Caller>();

    private static PolicyRoute R(Service service, string method, string path, Rule rule, string? body = null, int allowed = 200,
        Dictionary<Caller, int>? overrides = null, string contentType = "application/json", string microversion = "2.95", bool root = false,
        Dictionary<string, string>? headers = null) =>
        new(service, method, path, rule, body, contentType, allowed, overrides, microversion, root, headers);

    public static TheoryData<PolicyRoute> Routes() =>
    [
        // Compute (Nova): servers.
        R(Service.Compute, "GET", "/servers", Rule.AnyReader),
        R(Service.Compute, "GET", "/servers/detail", Rule.AnyReader),
        R(Service.Compute, "POST", "/servers", Rule.AnyMember, """{"server": {"name": "x", "imageRef": "ferry-test-guest", "flavorRef": "m1.nano", "networks": "none"}}""", 202),
        R(Service.Compute, "GET", "/servers/{server}", Rule.OwnedRead),
        R(Service.Compute, "DELETE", "/servers/{server}", Rule.OwnedWrite, allowed: 204),
        R(Service.Compute, "POST", "/servers/{server}/action", Rule.OwnedWrite, """{"os-stop": null}""", 202),
        R(Service.Compute, "POST", "/servers/{server}/action", Rule.OwnedWrite, """{"reboot": {"type": "HARD"}}""", 202),
        R(Service.Compute, "POST", "/servers/{server}/action", Rule.OwnedWrite, """{"resize": {"flavorRef": "m1.tiny"}}""", 202),
        R(Service.Compute, "POST", "/servers/{server}/action", Rule.OwnedWrite, """{"os-getConsoleOutput": {"length": 5}}"""),
        R(Service.Compute, "POST", "/servers/{server}/action", Rule.AdminOwned, """{"os-migrateLive": {"host": null, "block_migration": "auto"}}""", 202),
        R(Service.Compute, "POST", "/servers/{server}/action", Rule.AdminOwned, """{"migrate": null}""", 202),
        R(Service.Compute, "POST", "/servers/{server}/action", Rule.AdminOwned, """{"evacuate": {}}""", 200),
        R(Service.Compute, "GET", "/servers/{server}/migrations", Rule.AdminOwned),
        R(Service.Compute, "GET", "/servers/{server}/migrations/1", Rule.AdminOwned, overrides: new() { [Caller.Admin] = 404 }),
        R(Service.Compute, "POST", "/servers/{server}/migrations/1/action", Rule.AdminOwned, """{"force_complete": null}""", 202),
        R(Service.Compute, "DELETE", "/servers/{server}/migrations/1", Rule.AdminOwned, allowed: 202),
        R(Service.Compute, "GET", "/servers/{server}/os-instance-actions", Rule.OwnedRead),
        R(Service.Compute, "GET", "/servers/{server}/os-instance-actions/{request}", Rule.OwnedRead),
        R(Service.Compute, "GET", "/servers/{server}/metadata", Rule.OwnedRead),
        R(Service.Compute, "GET", "/servers/{server}/metadata/k", Rule.OwnedRead),
        R(Service.Compute, "POST", "/servers/{server}/metadata", Rule.OwnedWrite, """{"metadata": {"evil": "x"}}"""),
        R(Service.Compute, "PUT", "/servers/{server}/metadata", Rule.OwnedWrite, """{"metadata": {}}"""),
        R(Service.Compute, "PUT", "/servers/{server}/metadata/k", Rule.OwnedWrite, """{"meta": {"k": "pwned"}}"""),
        R(Service.Compute, "DELETE", "/servers/{server}/metadata/k", Rule.OwnedWrite, allowed: 204),
        R(Service.Compute, "GET", "/servers/{server}/os-volume_attachments", Rule.OwnedRead),
        R(Service.Compute, "GET", "/servers/{server}/os-volume_attachments/{volume}", Rule.OwnedRead, allowed: 404),
        // An unknown volume: the policy check comes first, and the server's owner gets the volume's 404.
        R(Service.Compute, "POST", "/servers/{server}/os-volume_attachments", Rule.OwnedWrite,
            """{"volumeAttachment": {"volumeId": "00000000-0000-4000-8000-000000000000"}}""", 404),
        R(Service.Compute, "DELETE", "/servers/{server}/os-volume_attachments/{volume}", Rule.OwnedWrite, allowed: 404),
        R(Service.Compute, "GET", "/servers/{server}/ips", Rule.OwnedRead),
        R(Service.Compute, "GET", "/servers/{server}/ips/private", Rule.OwnedRead, allowed: 404),
        // Compute: flavors, images, limits, zones.
        R(Service.Compute, "GET", "/flavors", Rule.AnyReader),
        R(Service.Compute, "GET", "/flavors/detail", Rule.AnyReader),
        R(Service.Compute, "GET", "/flavors/m1.tiny", Rule.AnyReader),
        R(Service.Compute, "GET", "/flavors/m1.tiny/os-extra_specs", Rule.AnyReader),
        R(Service.Compute, "GET", "/flavors/m1.tiny/os-extra_specs/hw:cpu_policy", Rule.AnyReader, allowed: 404),
        R(Service.Compute, "POST", "/flavors", Rule.Admin, """{"flavor": {"name": "evil", "ram": 64, "vcpus": 1, "disk": 1}}"""),
        R(Service.Compute, "DELETE", "/flavors/{flavor}", Rule.Admin, allowed: 202),
        R(Service.Compute, "GET", "/images", Rule.AnyReader),
        R(Service.Compute, "GET", "/images/detail", Rule.AnyReader),
        R(Service.Compute, "GET", "/images/{image}", Rule.OwnedRead),
        R(Service.Compute, "GET", "/limits", Rule.AnyReader),
        R(Service.Compute, "GET", "/os-availability-zone", Rule.AnyReader),
        R(Service.Compute, "GET", "/os-availability-zone/detail", Rule.Admin),
        // Compute: version discovery (outside the authenticated pipeline in Nova's api-paste).
        R(Service.Compute, "GET", "/", Rule.Public),
        R(Service.Compute, "GET", "/", Rule.Public, root: true),
        // Compute: quotas. A project's reader sees its own quotas; another project is refused by policy (403, not 404).
        R(Service.Compute, "GET", "/os-quota-sets/{demoProject}", Rule.OwnedRead, overrides: new() { [Caller.OtherMember] = 403 }),
        R(Service.Compute, "GET", "/os-quota-sets/{demoProject}/detail", Rule.OwnedRead, overrides: new() { [Caller.OtherMember] = 403 }),
        R(Service.Compute, "GET", "/os-quota-sets/{demoProject}/defaults", Rule.AnyReader),
        R(Service.Compute, "PUT", "/os-quota-sets/{demoProject}", Rule.Admin, """{"quota_set": {"instances": 1000}}"""),
        R(Service.Compute, "DELETE", "/os-quota-sets/{demoProject}", Rule.Admin, allowed: 202),
        R(Service.Compute, "GET", "/os-quota-class-sets/default", Rule.Admin),
        R(Service.Compute, "PUT", "/os-quota-class-sets/default", Rule.Admin, """{"quota_class_set": {"instances": 1000}}"""),
        // Compute: admin APIs.
        R(Service.Compute, "GET", "/os-hypervisors", Rule.Admin),
        R(Service.Compute, "GET", "/os-hypervisors/statistics", Rule.Admin, microversion: "2.87"),
        R(Service.Compute, "GET", "/os-hypervisors/{hypervisor}/uptime", Rule.Admin, microversion: "2.87"),
        R(Service.Compute, "GET", "/os-hypervisors/{hypervisorName}/search", Rule.Admin, microversion: "2.52"),
        R(Service.Compute, "GET", "/os-hypervisors/{hypervisorName}/servers", Rule.Admin, microversion: "2.52"),
        R(Service.Compute, "GET", "/os-hypervisors/detail", Rule.Admin),
        R(Service.Compute, "GET", "/os-hypervisors/{hypervisor}", Rule.Admin),
        R(Service.Compute, "GET", "/os-services", Rule.Admin),
        R(Service.Compute, "PUT", "/os-services/{service}", Rule.Admin, """{"status": "disabled"}"""),
        R(Service.Compute, "DELETE", "/os-services/{service}", Rule.Admin, allowed: 204),
        R(Service.Compute, "GET", "/os-migrations", Rule.Admin),
        R(Service.Compute, "GET", "/os-aggregates", Rule.Admin),
        // Compute: server groups (project-owned) and keypairs (user-owned: another user, admin included, does not see them by name).
        R(Service.Compute, "GET", "/os-server-groups", Rule.AnyReader),
        R(Service.Compute, "POST", "/os-server-groups", Rule.AnyMember, """{"server_group": {"name": "x", "policy": "affinity"}}"""),
        R(Service.Compute, "GET", "/os-server-groups/{group}", Rule.OwnedRead),
        R(Service.Compute, "DELETE", "/os-server-groups/{group}", Rule.OwnedWrite, allowed: 204),
        R(Service.Compute, "GET", "/os-keypairs", Rule.AnyReader),
        R(Service.Compute, "POST", "/os-keypairs", Rule.AnyMember, """{"keypair": {"name": "x", "type": "ssh", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPBp8oT2a7CS6ReJ0CDBJlJW3T1l0tCH3ZQxQ8rFz7Jk x"}}""", 201),
        R(Service.Compute, "GET", "/os-keypairs/demo-key", Rule.OwnedRead, overrides: new() { [Caller.Reader] = 404, [Caller.Admin] = 404 }),
        R(Service.Compute, "DELETE", "/os-keypairs/demo-key", Rule.OwnedWrite, allowed: 204, overrides: new() { [Caller.Admin] = 404 }),
        // Placement: admin-only throughout.
        R(Service.Placement, "GET", "/resource_providers", Rule.Admin),
        R(Service.Placement, "GET", "/resource_providers/{provider}", Rule.Admin),
        R(Service.Placement, "GET", "/resource_providers/{provider}/inventories", Rule.Admin),
        R(Service.Placement, "GET", "/resource_providers/{provider}/usages", Rule.Admin),
        R(Service.Placement, "POST", "/resource_providers", Rule.Admin, """{"name": "evil"}""", 200),
        R(Service.Placement, "DELETE", "/resource_providers/{provider}", Rule.Admin, allowed: 204),
        R(Service.Placement, "DELETE", "/resource_providers/{provider}/inventories", Rule.Admin, allowed: 204),
        R(Service.Placement, "GET", "/allocations/{server}", Rule.Admin),
        R(Service.Placement, "DELETE", "/allocations/{server}", Rule.Admin, allowed: 204),
        R(Service.Placement, "GET", "/usages?project_id={demoProject}", Rule.Admin),
        R(Service.Placement, "GET", "/allocation_candidates?resources=VCPU:1", Rule.Admin),
        R(Service.Placement, "GET", "/", Rule.Public, root: true),
        R(Service.Placement, "PUT", "/resource_providers/{provider}", Rule.Admin, """{"name": "evil"}"""),
        R(Service.Placement, "GET", "/resource_providers/{provider}/allocations", Rule.Admin),
        R(Service.Placement, "PUT", "/resource_providers/{provider}/inventories", Rule.Admin,
            """{"resource_provider_generation": 0, "inventories": {"VCPU": {"total": 1000}}}"""),
        R(Service.Placement, "GET", "/resource_providers/{provider}/inventories/VCPU", Rule.Admin),
        R(Service.Placement, "POST", "/resource_providers/{provider}/inventories", Rule.Admin, """{"resource_class": "DISK_GB", "total": 10}""", 201),
        R(Service.Placement, "PUT", "/resource_providers/{provider}/inventories/VCPU", Rule.Admin,
            """{"resource_provider_generation": 0, "total": 1000}"""),
        R(Service.Placement, "DELETE", "/resource_providers/{provider}/inventories/VCPU", Rule.Admin, allowed: 204),
        R(Service.Placement, "GET", "/resource_providers/{provider}/traits", Rule.Admin),
        R(Service.Placement, "PUT", "/resource_providers/{provider}/traits", Rule.Admin,
            """{"resource_provider_generation": 0, "traits": ["CUSTOM_EVIL"]}"""),
        R(Service.Placement, "DELETE", "/resource_providers/{provider}/traits", Rule.Admin, allowed: 204),
        R(Service.Placement, "PUT", "/allocations/{server}", Rule.Admin,
            """{"allocations": {}, "project_id": "p", "user_id": "u", "consumer_generation": 1}""", 204),
        R(Service.Placement, "POST", "/allocations", Rule.Admin,
            """{"{consumer}": {"allocations": {"{provider}": {"resources": {"VCPU": 1}}}, "project_id": "p", "user_id": "u", "consumer_generation": null}}""", 204),
        R(Service.Placement, "GET", "/resource_classes", Rule.Admin),
        R(Service.Placement, "GET", "/resource_classes/VCPU", Rule.Admin),
        R(Service.Placement, "POST", "/resource_classes", Rule.Admin, """{"name": "CUSTOM_EVIL"}""", 201),
        R(Service.Placement, "PUT", "/resource_classes/CUSTOM_EVIL", Rule.Admin, allowed: 201),
        R(Service.Placement, "DELETE", "/resource_classes/CUSTOM_EVIL", Rule.Admin, allowed: 204),
        R(Service.Placement, "GET", "/traits", Rule.Admin),
        R(Service.Placement, "GET", "/traits/HW_CPU_X86_AVX", Rule.Admin, allowed: 204),
        R(Service.Placement, "PUT", "/traits/CUSTOM_EVIL", Rule.Admin, allowed: 201),
        R(Service.Placement, "DELETE", "/traits/CUSTOM_EVIL", Rule.Admin, allowed: 204),
        // Identity (Keystone).
        R(Service.Identity, "GET", "/", Rule.Public),
        R(Service.Identity, "GET", "/", Rule.Public, allowed: 300, root: true),
        // Tokens: identity:validate_token (and check, revoke) is admin or the subject token's own user.
        R(Service.Identity, "GET", "/auth/tokens", Rule.OwnedRead, overrides: new() { [Caller.Reader] = 403, [Caller.OtherMember] = 403 },
            headers: new() { ["X-Subject-Token"] = "{memberToken}" }),
        R(Service.Identity, "HEAD", "/auth/tokens", Rule.OwnedRead, overrides: new() { [Caller.Reader] = 403, [Caller.OtherMember] = 403 },
            headers: new() { ["X-Subject-Token"] = "{memberToken}" }),
        R(Service.Identity, "DELETE", "/auth/tokens", Rule.OwnedWrite, allowed: 204, overrides: new() { [Caller.OtherMember] = 403 },
            headers: new() { ["X-Subject-Token"] = "{memberToken}" }),
        R(Service.Identity, "GET", "/auth/catalog", Rule.AnyReader),
        R(Service.Identity, "GET", "/auth/projects", Rule.AnyReader),
        R(Service.Identity, "GET", "/users", Rule.Admin),
        R(Service.Identity, "GET", "/projects", Rule.Admin),
        R(Service.Identity, "GET", "/roles", Rule.Admin),
        R(Service.Identity, "GET", "/users/{demoUser}", Rule.OwnedRead, overrides: new() { [Caller.Reader] = 403, [Caller.OtherMember] = 403 }),
        R(Service.Identity, "GET", "/projects/{demoProject}", Rule.OwnedRead, overrides: new() { [Caller.OtherMember] = 403 }),
        // Image (Glance): version discovery is public; the schemas need a token but no role.
        R(Service.Image, "GET", "/", Rule.Public, allowed: 300, root: true),
        R(Service.Image, "GET", "/versions", Rule.Public, root: true),
        R(Service.Image, "GET", "/schemas/image", Rule.AnyReader),
        R(Service.Image, "GET", "/schemas/images", Rule.AnyReader),
        R(Service.Image, "GET", "/images", Rule.AnyReader),
        R(Service.Image, "POST", "/images", Rule.AnyMember, """{"name": "x"}""", 201),
        R(Service.Image, "GET", "/images/{image}", Rule.OwnedRead),
        R(Service.Image, "GET", "/images/{image}/file", Rule.OwnedRead, allowed: 204),
        R(Service.Image, "PATCH", "/images/{image}", Rule.OwnedWrite, """[{"op": "replace", "path": "/name", "value": "pwned"}]""",
            contentType: "application/openstack-images-v2.1-json-patch"),
        R(Service.Image, "PUT", "/images/{image}/file", Rule.OwnedWrite, "data", 204, contentType: "application/octet-stream"),
        R(Service.Image, "DELETE", "/images/{image}", Rule.OwnedWrite, allowed: 204),
        R(Service.Image, "DELETE", "/images/2d4b7a1e-6c1f-4a3e-9a8e-f3e7c0d9b001", Rule.Admin, allowed: 204,
            overrides: new() { [Caller.Reader] = 403, [Caller.Member] = 403, [Caller.OtherMember] = 403 }),

        // Neutron's defaults: a project's own networks, subnets and ports; shared networks readable by all; bindings the admin's.
        R(Service.Network, "GET", "/", Rule.Public, root: true),
        R(Service.Network, "GET", "/", Rule.AnyReader),
        R(Service.Network, "GET", "/extensions", Rule.AnyReader),
        R(Service.Network, "GET", "/extensions/binding", Rule.AnyReader),
        R(Service.Network, "GET", "/security-groups", Rule.AnyReader),
        R(Service.Network, "GET", "/quotas/{demoProject}", Rule.OwnedRead, overrides: new() { [Caller.OtherMember] = 403 }),
        R(Service.Network, "GET", "/networks", Rule.AnyReader),
        R(Service.Network, "POST", "/networks", Rule.AnyMember, """{"network": {"name": "x"}}""", 201),
        R(Service.Network, "GET", "/networks/{network}", Rule.OwnedRead),
        R(Service.Network, "PUT", "/networks/{network}", Rule.OwnedWrite, """{"network": {"name": "pwned"}}"""),
        R(Service.Network, "DELETE", "/networks/{network}", Rule.OwnedWrite, allowed: 204),
        R(Service.Network, "GET", "/subnets", Rule.AnyReader),
        R(Service.Network, "POST", "/subnets", Rule.Admin,
            """{"subnet": {"network_id": "7c1f0b6e-3a51-4c39-9d0e-5b2f8e6a0001", "cidr": "10.56.0.0/24", "ip_version": 4}}""", 201),
        R(Service.Network, "GET", "/subnets/{subnet}", Rule.OwnedRead),
        R(Service.Network, "PUT", "/subnets/{subnet}", Rule.OwnedWrite, """{"subnet": {"name": "pwned"}}"""),
        R(Service.Network, "DELETE", "/subnets/{subnet}", Rule.OwnedWrite, allowed: 204),
        R(Service.Network, "GET", "/ports", Rule.AnyReader),
        R(Service.Network, "POST", "/ports", Rule.AnyMember, """{"port": {"network_id": "7c1f0b6e-3a51-4c39-9d0e-5b2f8e6a0001"}}""", 201),
        R(Service.Network, "GET", "/ports/{port}", Rule.OwnedRead),
        R(Service.Network, "PUT", "/ports/{port}", Rule.OwnedWrite, """{"port": {"name": "pwned"}}"""),
        R(Service.Network, "DELETE", "/ports/{port}", Rule.OwnedWrite, allowed: 204),
        R(Service.Network, "GET", "/ports/{port}/bindings", Rule.AdminOwned),
        R(Service.Network, "POST", "/ports/{port}/bindings", Rule.AdminOwned, """{"binding": {"host": "compute9"}}""", 201),
        R(Service.Network, "GET", "/ports/{port}/bindings/compute1", Rule.AdminOwned),
        R(Service.Network, "DELETE", "/ports/{port}/bindings/compute1", Rule.AdminOwned, allowed: 204),
        R(Service.Network, "PUT", "/ports/{port}/bindings/compute1/activate", Rule.AdminOwned),
        // Volume (Cinder): version discovery is public; a project's volumes and attachments are its own, an admin's to see and change.
        R(Service.Volume, "GET", "/", Rule.Public, allowed: 300, root: true),
        R(Service.Volume, "GET", "/", Rule.Public),
        R(Service.Volume, "GET", "/volumes", Rule.AnyReader),
        R(Service.Volume, "GET", "/volumes/detail?all_tenants=1", Rule.AnyReader),
        R(Service.Volume, "POST", "/volumes", Rule.AnyMember, """{"volume": {"size": 1, "name": "matrix"}}""", 202),
        R(Service.Volume, "GET", "/volumes/{volume}", Rule.OwnedRead),
        R(Service.Volume, "PUT", "/volumes/{volume}", Rule.OwnedWrite, """{"volume": {"name": "pwned"}}"""),
        R(Service.Volume, "DELETE", "/volumes/{volume}", Rule.OwnedWrite, allowed: 202),
        R(Service.Volume, "POST", "/volumes/{volume}/action", Rule.OwnedWrite, """{"os-extend": {"new_size": 2}}""", 202),
        R(Service.Volume, "GET", "/os-quota-sets/{demoProject}", Rule.OwnedRead, overrides: new() { [Caller.OtherMember] = 403 }),
        R(Service.Volume, "GET", "/os-quota-sets/{demoProject}?usage=True", Rule.OwnedRead, overrides: new() { [Caller.OtherMember] = 403 }),
        R(Service.Volume, "GET", "/os-quota-sets/{demoProject}/defaults", Rule.AnyReader),
        R(Service.Volume, "GET", "/limits", Rule.AnyReader),
        R(Service.Volume, "GET", "/attachments", Rule.AnyReader),
        R(Service.Volume, "GET", "/attachments/detail", Rule.AnyReader),
        R(Service.Volume, "POST", "/attachments", Rule.OwnedWrite,
            """{"attachment": {"volume_uuid": "{volume}", "instance_uuid": "{server}", "connector": null}}"""),
        R(Service.Volume, "GET", "/attachments/{attachment}", Rule.OwnedRead),
        R(Service.Volume, "PUT", "/attachments/{attachment}", Rule.OwnedWrite,
            """{"attachment": {"connector": {"host": "compute1", "ip": "127.0.0.1", "mountpoint": "/dev/vdb"}}}"""),
        R(Service.Volume, "POST", "/attachments/{attachment}/action", Rule.OwnedWrite, """{"os-complete": null}""", 204),
        R(Service.Volume, "DELETE", "/attachments/{attachment}", Rule.OwnedWrite),
    ];

    /// <summary>The status a caller gets; null when the caller is allowed to change state (not sent).</summary>
    internal static int? Expected(PolicyRoute route, Caller caller)
    {
        if (route.Overrides?.TryGetValue(caller, out var forced) == true)
        {
            return forced;
        }
        var write = route.Method is not ("GET" or "HEAD");
        var allowed = write ? (int?)null : route.AllowedStatus;
        return (caller, route.Rule) switch
        {
            (_, Rule.Public) => route.AllowedStatus,
            (Caller.Anonymous or Caller.BadToken or Caller.ExpiredToken, _) => 401,
            (Caller.Admin, _) => allowed,
            (_, Rule.Admin) => 403,
            (_, Rule.AnyReader) => route.AllowedStatus,
            (Caller.Reader, Rule.AnyMember or Rule.OwnedWrite or Rule.AdminOwned) => 403,
            (_, Rule.AnyMember) => null,
            (Caller.OtherMember, _) => 404,
            (_, Rule.OwnedRead) => route.AllowedStatus,
            (_, Rule.OwnedWrite) => null,
            (_, Rule.AdminOwned) => 403,
            _ => throw new InvalidOperationException($"{route} {caller}"),
        };
    }

    [Theory]
    [MemberData(nameof(Routes))]
    public async Task Route_EveryCaller_GetsDefaultPolicyStatusAndRefusalsChangeNothing(PolicyRoute route)
    {
        var path = route.Path;
        foreach (var (key, value) in fixture.Ids)
        {
            path = path.Replace("{" + key + "}", value, StringComparison.Ordinal);
        }
        var headers = route.Headers?.ToDictionary(h => h.Key, h => fixture.Ids.Aggregate(h.Value, (v, id) => v.Replace("{" + id.Key + "}", id.Value, StringComparison.Ordinal)));
        var failures = new List<string>();
        foreach (var caller in s_callers)
        {
            if (Expected(route, caller) is not { } expected)
            {
                continue;
            }
            var before = fixture.Snapshot();
            // Ids in a body too: a refusal must come from the policy, not from a placeholder the handler cannot parse.
            var requestBody = route.Body is null ? null : fixture.Ids.Aggregate(route.Body, (b, id) => b.Replace("{" + id.Key + "}", id.Value, StringComparison.Ordinal));
            var (status, body, _) = await fixture.SendAsync(caller, route.Service, new HttpMethod(route.Method), path, requestBody, route.ContentType,
                baseUrl: route.Root ? fixture.RootUrl(route.Service) : null, microversion: route.Microversion, headers: headers);
            if (status != expected)
            {
                failures.Add($"{caller}: {status} (expected {expected}) {body?.ToJsonString()}");
            }
            if (status >= 400 && fixture.Snapshot() is var after && after != before)
            {
                var changed = after.Split('\n').Except(before.Split('\n')).Concat(before.Split('\n').Except(after.Split('\n')).Select(l => "- " + l));
                failures.Add($"{caller}: refused with {status} but the state changed: {string.Join(" / ", changed.Take(6))}");
            }
        }
        Assert.True(failures.Count == 0, $"{route.Method} {path}:\n" + string.Join("\n", failures));
    }
}
