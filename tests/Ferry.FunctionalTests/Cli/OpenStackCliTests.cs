using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Identity;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Cli;

/// <summary>
/// The real <c>openstack</c> CLI (python3-openstackclient, novaclient, osc-placement) against a
/// Keystone-authenticated Ferry, asserting on its <c>-f json</c> output. Each test returns at once
/// when the binary is missing; <c>./ferry test</c> installs it.
/// </summary>
public sealed class OpenStackCliTests(CliFixture fixture) : IClassFixture<CliFixture>
{
    /// <summary>What the reference session's clouds.yaml sets; OSC otherwise speaks 2.1.</summary>
    private const string ComputeVersion = "2.latest";

    private Task<JsonNode> AdminAsync(params string[] args) => fixture.AdminJsonAsync(ComputeVersion, args);

    [Fact]
    public async Task Admin_lists_services_hypervisors_flavors_and_providers()
    {
        fixture.RequireOpenStack();
        var services = (await AdminAsync("compute", "service", "list")).AsArray();
        Assert.Equal(["compute1", "compute2", "compute3"], services.Where(s => (string?)s!["Binary"] == "nova-compute").Select(s => (string)s!["Host"]!).Order());
        Assert.All(services, s => Assert.Equal("up", (string?)s!["State"]));
        // One row per replica: one each in the all-in-one, two each from `ferry distributed` (CliShapeTests counts them).
        Assert.Equal(["nova-conductor", "nova-scheduler"], services.Where(s => (string?)s!["Zone"] == "internal").Select(s => (string)s!["Binary"]!).Distinct().Order());

        var hypervisors = (await AdminAsync("hypervisor", "list")).AsArray();
        Assert.Equal(3, hypervisors.Count);
        Assert.All(hypervisors, h => Assert.Equal("fake", (string?)h!["Hypervisor Type"]));

        var flavors = (await AdminAsync("flavor", "list")).AsArray();
        Assert.Contains(flavors, f => (string?)f!["Name"] == "m1.tiny" && (int)f["RAM"]! == 512);

        var providers = (await fixture.JsonAsync(fixture.AdminEnv, "resource", "provider", "list")).AsArray();
        Assert.Equal(["compute1", "compute2", "compute3"], providers.Select(p => (string)p!["name"]!).Order());
        Assert.All(providers, p => Assert.Equal((string?)p!["uuid"], (string?)p["root_provider_uuid"]));
    }

    [Fact]
    public async Task Admin_boots_live_migrates_cold_migrates_and_confirms()
    {
        fixture.RequireOpenStack();
        var created = await AdminAsync("server", "create", "--flavor", "m1.tiny", "--image", "ferry-test-guest", "--nic", "none",
            "--availability-zone", "nova:compute1", "--wait", "cli-a");
        Assert.Equal("ACTIVE", (string?)created["status"]);
        var id = (string)created["id"]!;

        var shown = await AdminAsync("server", "show", id);
        Assert.Equal("compute1", (string?)shown["OS-EXT-SRV-ATTR:host"]);
        Assert.Equal("active", (string?)shown["OS-EXT-STS:vm_state"]);
        Assert.Equal("m1.tiny", (string?)shown["flavor"]!["original_name"]);

        var live = await fixture.RunAsync(fixture.AdminEnv, "--os-compute-api-version", ComputeVersion,
            "server", "migrate", "--live-migration", "--host", "compute2", "--wait", id);
        Assert.True(live.ExitCode == 0, live.ToString());
        Assert.Equal("compute2", (string?)(await AdminAsync("server", "show", id))["OS-EXT-SRV-ATTR:host"]);

        var migrations = (await AdminAsync("server", "migration", "list", "--server", id)).AsArray();
        var liveMigration = Assert.Single(migrations);
        Assert.Equal("completed", (string?)liveMigration!["Status"]);
        Assert.Equal("live-migration", (string?)liveMigration["Type"]);
        Assert.Equal("compute1", (string?)liveMigration["Source Compute"]);
        Assert.Equal("compute2", (string?)liveMigration["Dest Compute"]);

        var cold = await fixture.RunAsync(fixture.AdminEnv, "--os-compute-api-version", ComputeVersion,
            "server", "migrate", "--host", "compute3", "--wait", id);
        Assert.True(cold.ExitCode == 0, cold.ToString());
        var resized = await AdminAsync("server", "show", id);
        Assert.Equal("VERIFY_RESIZE", (string?)resized["status"]);
        Assert.Equal("compute3", (string?)resized["OS-EXT-SRV-ATTR:host"]);

        var confirm = await fixture.RunAsync(fixture.AdminEnv, "--os-compute-api-version", ComputeVersion, "server", "resize", "confirm", id);
        Assert.True(confirm.ExitCode == 0, confirm.ToString());
        var confirmed = await AdminAsync("server", "show", id);
        Assert.Equal("ACTIVE", (string?)confirmed["status"]);
        Assert.Equal("compute3", (string?)confirmed["OS-EXT-SRV-ATTR:host"]);
    }

    [Fact]
    public async Task Admin_reads_the_console_block_migrates_and_deletes()
    {
        fixture.RequireOpenStack();
        var id = await fixture.BootAsync("cli-block", "compute1");

        var console = await fixture.AdminRunAsync(ComputeVersion, "console", "log", "show", "--lines", "5", id);
        Assert.Contains("spawned on compute1", console.Stdout);

        await fixture.AdminRunAsync(ComputeVersion, "server", "migrate", "--live-migration", "--block-migration", "--host", "compute2", "--wait", id);
        Assert.Equal("compute2", (string?)(await AdminAsync("server", "show", id))["OS-EXT-SRV-ATTR:host"]);
        var migration = Assert.Single((await AdminAsync("server", "migration", "list", "--server", id)).AsArray());
        Assert.Equal(("completed", "live-migration"), ((string?)migration!["Status"], (string?)migration["Type"]));

        await fixture.AdminRunAsync(ComputeVersion, "server", "delete", "--wait", id);
        var gone = await fixture.RunAsync(fixture.AdminEnv, "--os-compute-api-version", ComputeVersion, "server", "show", id);
        Assert.True(gone.ExitCode != 0, gone.ToString());
        Assert.Contains($"No server with a name or ID of '{id}' exists.", gone.Stderr);
        Assert.DoesNotContain((await AdminAsync("server", "list")).AsArray(), s => (string?)s!["ID"] == id);
    }

    [Fact]
    public async Task Demo_user_may_boot_but_not_live_migrate_or_list_services()
    {
        fixture.RequireOpenStack();
        var created = await fixture.JsonAsync(fixture.DemoEnv, "--os-compute-api-version", ComputeVersion,
            "server", "create", "--flavor", "m1.tiny", "--image", "ferry-test-guest", "--nic", "none", "--wait", "cli-demo");
        var id = (string)created["id"]!;

        var migrate = await fixture.RunAsync(fixture.DemoEnv, "--os-compute-api-version", ComputeVersion,
            "server", "migrate", "--live-migration", "--host", "compute2", id);
        Assert.NotEqual(0, migrate.ExitCode);
        Assert.Contains("(HTTP 403)", migrate.Stderr, StringComparison.Ordinal);

        // OSC 6 lists services through openstacksdk, which words the same 403 differently.
        var services = await fixture.RunAsync(fixture.DemoEnv, "compute", "service", "list");
        Assert.NotEqual(0, services.ExitCode);
        Assert.Contains("403", services.Stderr, StringComparison.Ordinal);
        Assert.Contains("Policy doesn't allow", services.Stderr, StringComparison.Ordinal);

        var listed = (await fixture.JsonAsync(fixture.DemoEnv, "server", "list")).AsArray();
        Assert.Equal([id], listed.Select(s => (string)s!["ID"]!));
    }

    [Fact]
    public async Task Images_list_create_upload_show_and_boot_by_name()
    {
        fixture.RequireOpenStack();
        var images = (await fixture.JsonAsync(fixture.AdminEnv, "image", "list")).AsArray();
        Assert.Contains(images, i => (string?)i!["Name"] == "ferry-test-guest" && (string?)i["Status"] == "active");

        var file = Path.Combine(fixture.DataDirectory, "cli-image.raw");
        var bytes = Enumerable.Range(0, 4096).Select(i => (byte)(i * 7)).ToArray();
        await File.WriteAllBytesAsync(file, bytes);
        var created = await fixture.JsonAsync(fixture.AdminEnv, "image", "create", "--file", file, "--disk-format", "raw", "--container-format", "bare",
            "--property", "hw_architecture=x86_64", "cli-image");
        var imageId = (string)created["id"]!;

        var shown = await fixture.JsonAsync(fixture.AdminEnv, "image", "show", "cli-image");
        Assert.Equal(imageId, (string?)shown["id"]);
        Assert.Equal("active", (string?)shown["status"]);
        Assert.Equal(4096, (long)shown["size"]!);
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.MD5.HashData(bytes)), (string?)shown["checksum"]);
        Assert.Equal("raw", (string?)shown["disk_format"]);

        var set = await fixture.RunAsync(fixture.AdminEnv, "image", "set", "--name", "cli-image-2", "--property", "ferry_note=hello", imageId);
        Assert.True(set.ExitCode == 0, set.ToString());
        var renamed = await fixture.JsonAsync(fixture.AdminEnv, "image", "show", imageId);
        Assert.Equal("cli-image-2", (string?)renamed["name"]);
        Assert.Contains("ferry_note", renamed["properties"]?.ToJsonString() ?? renamed.ToJsonString(), StringComparison.Ordinal);

        var server = await AdminAsync("server", "create", "--flavor", "m1.tiny", "--image", "ferry-test-guest", "--nic", "none", "--wait", "cli-by-name");
        Assert.Equal("ACTIVE", (string?)server["status"]);
        var listed = (await AdminAsync("server", "list")).AsArray();
        Assert.Contains(listed, s => (string?)s!["ID"] == (string?)server["id"] && (string?)s["Image"] == "ferry-test-guest");

        var deleted = await fixture.RunAsync(fixture.AdminEnv, "image", "delete", imageId);
        Assert.True(deleted.ExitCode == 0, deleted.ToString());
        var gone = await fixture.RunAsync(fixture.AdminEnv, "image", "show", imageId);
        Assert.NotEqual(0, gone.ExitCode);
    }

    [Fact]
    public async Task Image_property_hw_vif_model_set_by_image_create_and_set_picks_the_nic_or_fails_the_build()
    {
        fixture.RequireOpenStack();
        var file = Path.Combine(fixture.DataDirectory, "vif-image.raw");
        await File.WriteAllBytesAsync(file, new byte[4096]);
        var created = await fixture.JsonAsync(fixture.AdminEnv, "image", "create", "--file", file, "--disk-format", "raw", "--container-format", "bare",
            "--property", "hw_vif_model=e1000", "cli-vif-image");
        var imageId = (string)created["id"]!;
        var shown = await fixture.JsonAsync(fixture.AdminEnv, "image", "show", imageId);
        Assert.Equal("e1000", (string?)(shown["properties"] ?? shown)["hw_vif_model"]);

        var good = await AdminAsync("server", "create", "--flavor", "m1.tiny", "--image", imageId, "--nic", "none", "--wait", "cli-e1000");
        Assert.Equal("ACTIVE", (string?)good["status"]);

        var set = await fixture.RunAsync(fixture.AdminEnv, "image", "set", "--property", "hw_vif_model=bogus", imageId);
        Assert.True(set.ExitCode == 0, set.ToString());
        var bad = await fixture.RunAsync(fixture.AdminEnv, "--os-compute-api-version", ComputeVersion,
            "server", "create", "--flavor", "m1.tiny", "--image", imageId, "--nic", "none", "--wait", "cli-bogus");
        Assert.Contains("Error creating server: cli-bogus", bad.Stderr, StringComparison.Ordinal);   // OSC 6 still exits 0 for it
        var failed = await AdminAsync("server", "show", "cli-bogus");
        Assert.Equal("ERROR", (string?)failed["status"]);
        Assert.Equal("Requested hardware 'bogus' is not supported by the 'qemu' virt driver", (string?)failed["fault"]!["message"]);

        foreach (var server in new[] { (string)good["id"]!, (string)failed["id"]! })
        {
            var deleted = await fixture.RunAsync(fixture.AdminEnv, "--os-compute-api-version", ComputeVersion, "server", "delete", "--wait", server);
            Assert.True(deleted.ExitCode == 0, deleted.ToString());
        }
        Assert.Equal(0, (await fixture.RunAsync(fixture.AdminEnv, "image", "delete", imageId)).ExitCode);
    }

    [Fact]
    public async Task Wrong_password_is_a_one_line_401()
    {
        fixture.RequireOpenStack();
        var env = fixture.DemoEnv.Select(v => v.Key == "OS_PASSWORD" ? KeyValuePair.Create(v.Key, "wrong") : v).ToList();
        var result = await fixture.RunAsync(env, "token", "issue");
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("The request you have made requires authentication. (HTTP 401)", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Token_issue_and_validate_round_trip()
    {
        fixture.RequireOpenStack();
        var token = await fixture.JsonAsync(fixture.AdminEnv, "token", "issue");
        var id = (string)token["id"]!;
        Assert.NotNull(token["expires"]);

        var authUrl = fixture.AdminEnv.Single(v => v.Key == "OS_AUTH_URL").Value;
        using var http = new HttpClient();
        using var validate = new HttpRequestMessage(HttpMethod.Get, $"{authUrl}/auth/tokens");
        validate.Headers.Add("X-Auth-Token", id);
        validate.Headers.Add("X-Subject-Token", id);
        using var response = await http.SendAsync(validate);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = (await response.Content.ReadFromJsonAsync<JsonNode>())!["token"]!;
        Assert.Equal(id, response.Headers.GetValues("X-Subject-Token").Single());
        Assert.Equal("admin", (string?)body["user"]!["name"]);
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", (string)body["expires_at"]!);
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", (string)body["issued_at"]!);
        Assert.Contains(body["roles"]!.AsArray(), r => (string?)r!["name"] == "admin");
        Assert.All(body["catalog"]!.AsArray().SelectMany(s => s!["endpoints"]!.AsArray()), e => Assert.Equal("RegionOne", (string?)e!["region_id"]));
    }

    [Fact]
    public async Task Garbled_token_is_a_one_line_401()
    {
        fixture.RequireOpenStack();
        var env = fixture.AdminEnv.Where(v => v.Key is "OS_AUTH_URL" or "OS_PROJECT_NAME" or "OS_PROJECT_DOMAIN_NAME" or "OS_IDENTITY_API_VERSION" or "OS_REGION_NAME")
            .Append(KeyValuePair.Create("OS_AUTH_TYPE", "token")).Append(KeyValuePair.Create("OS_TOKEN", "garbled")).ToList();
        var result = await fixture.RunAsync(env, "server", "list");
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("The request you have made requires authentication. (HTTP 401)", result.Stderr, StringComparison.Ordinal);
    }

    /// <summary>Plain HTTP, so these run without the CLI too.</summary>
    [Fact]
    public async Task Apis_answer_401_for_garbled_or_expired_tokens_and_placement_is_admin_only()
    {
        var options = fixture.Ferry.Options;
        using var http = new HttpClient();
        async Task<HttpStatusCode> GetAsync(string url, string? token)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            if (token is not null)
            {
                request.Headers.Add("X-Auth-Token", token);
            }
            using var response = await http.SendAsync(request);
            return response.StatusCode;
        }
        var store = fixture.Ferry.Services.GetRequiredService<IdentityStore>();
        var tokens = fixture.Ferry.Services.GetRequiredService<TokenStore>();
        IdentityToken Issue(string name, DateTimeOffset? expires = null)
        {
            var user = store.FindUser(name, IdentityStore.DefaultDomainId)!;
            var project = store.FindProject(name, IdentityStore.DefaultDomainId)!;
            return tokens.Issue(user, project, store.RolesOf(user.Id, project.Id), ["password"], expires);
        }
        var admin = Issue("admin").Id;
        var demo = Issue("demo").Id;
        var expired = Issue("admin", DateTimeOffset.UtcNow.AddSeconds(-1)).Id;

        Assert.Equal(HttpStatusCode.OK, await GetAsync($"{options.ComputeApiUrl}/v2.1/servers", admin));
        Assert.Equal(HttpStatusCode.OK, await GetAsync($"{options.ComputeApiUrl}/v2.1/servers", demo));
        Assert.Equal(HttpStatusCode.Unauthorized, await GetAsync($"{options.ComputeApiUrl}/v2.1/servers", "garbled"));
        Assert.Equal(HttpStatusCode.Unauthorized, await GetAsync($"{options.ComputeApiUrl}/v2.1/servers", "admin:admin"));
        Assert.Equal(HttpStatusCode.Unauthorized, await GetAsync($"{options.ComputeApiUrl}/v2.1/servers", expired));
        Assert.Equal(HttpStatusCode.Forbidden, await GetAsync($"{options.ComputeApiUrl}/v2.1/os-hypervisors", demo));

        Assert.Equal(HttpStatusCode.OK, await GetAsync($"{options.PlacementUrl}/", null));
        Assert.Equal(HttpStatusCode.OK, await GetAsync($"{options.PlacementUrl}/resource_providers", admin));
        Assert.Equal(HttpStatusCode.Forbidden, await GetAsync($"{options.PlacementUrl}/resource_providers", demo));
        Assert.Equal(HttpStatusCode.Unauthorized, await GetAsync($"{options.PlacementUrl}/resource_providers", null));
        Assert.Equal(HttpStatusCode.Unauthorized, await GetAsync($"{options.PlacementUrl}/resource_providers", expired));

        Assert.Equal(HttpStatusCode.MultipleChoices, await GetAsync($"{options.IdentityUrl}/", null));
        Assert.Equal(HttpStatusCode.OK, await GetAsync($"{options.IdentityUrl}/v3", null));

        using var wrong = await http.PostAsync($"{options.IdentityUrl}/v3/auth/tokens", new StringContent("""
            {"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"id": "default"}, "password": "nope"}}},
                      "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}
            """, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        var error = (await wrong.Content.ReadFromJsonAsync<JsonNode>())!["error"]!;
        Assert.Equal(401, (int)error["code"]!);
        Assert.Equal("Unauthorized", (string?)error["title"]);

        var adminUser = store.FindUser("admin", IdentityStore.DefaultDomainId)!;
        var adminProject = store.FindProject("admin", IdentityStore.DefaultDomainId)!;
        using var byId = await http.PostAsync($"{options.IdentityUrl}/v3/auth/tokens", new StringContent(new JsonObject
        {
            ["auth"] = new JsonObject
            {
                ["identity"] = new JsonObject
                {
                    ["methods"] = new JsonArray("password"),
                    ["password"] = new JsonObject { ["user"] = new JsonObject { ["id"] = adminUser.Id, ["password"] = "ferry-admin" } },
                },
                ["scope"] = new JsonObject { ["project"] = new JsonObject { ["id"] = adminProject.Id } },
            },
        }.ToJsonString(), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Created, byId.StatusCode);
        var subject = byId.Headers.GetValues("X-Subject-Token").Single();
        Assert.Equal(HttpStatusCode.OK, await GetAsync($"{options.ComputeApiUrl}/v2.1/os-hypervisors", subject));

        using var revoke = new HttpRequestMessage(HttpMethod.Delete, $"{options.IdentityUrl}/v3/auth/tokens");
        revoke.Headers.Add("X-Auth-Token", admin);
        revoke.Headers.Add("X-Subject-Token", subject);
        using var revoked = await http.SendAsync(revoke);
        Assert.Equal(HttpStatusCode.NoContent, revoked.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, await GetAsync($"{options.ComputeApiUrl}/v2.1/os-hypervisors", subject));
    }
}
