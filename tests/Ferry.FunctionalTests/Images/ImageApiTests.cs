using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Identity;
using Ferry.FunctionalTests.Cli;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Images;

/// <summary>The Glance v2 subset over plain HTTP in noauth2 mode.</summary>
public sealed class ImageApiTests(FerryFixture fixture) : IClassFixture<FerryFixture>
{
    private HttpClient Client(string token = "admin:admin")
    {
        var http = new HttpClient { BaseAddress = new Uri(fixture.Ferry.Options.ImageUrl + "/") };
        http.DefaultRequestHeaders.Add("X-Auth-Token", token);
        return http;
    }

    [Fact]
    public async Task Upload_download_round_trip_with_checksums()
    {
        using var http = Client();
        using var create = await http.PostAsync("v2/images", new StringContent(
            """{"name": "round-trip", "disk_format": "qcow2", "container_format": "bare", "visibility": "private", "min_ram": 64, "os_distro": "cirros"}""",
            Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Created, create.StatusCode);
        var queued = (await create.Content.ReadFromJsonAsync<JsonNode>())!;
        var id = (string)queued["id"]!;
        Assert.Equal("queued", (string?)queued["status"]);
        Assert.Equal("cirros", (string?)queued["os_distro"]);
        Assert.Null(queued["size"]);
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", (string)queued["created_at"]!);

        var bytes = RandomNumberGenerator.GetBytes(200_000);
        using var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var upload = await http.PutAsync($"v2/images/{id}/file", content);
        Assert.Equal(HttpStatusCode.NoContent, upload.StatusCode);
        Assert.True(File.Exists(Path.Combine(fixture.Ferry.Options.DataDirectory, "images", id)));

        var active = (await http.GetFromJsonAsync<JsonNode>($"v2/images/{id}"))!;
        Assert.Equal("active", (string?)active["status"]);
        Assert.Equal(bytes.Length, (long)active["size"]!);
        Assert.Equal(Convert.ToHexStringLower(MD5.HashData(bytes)), (string?)active["checksum"]);
        Assert.Equal("sha512", (string?)active["os_hash_algo"]);
        Assert.Equal(Convert.ToHexStringLower(SHA512.HashData(bytes)), (string?)active["os_hash_value"]);

        Assert.Equal(bytes, await http.GetByteArrayAsync($"v2/images/{id}/file"));

        using var again = new ByteArrayContent(bytes);
        again.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var conflict = await http.PutAsync($"v2/images/{id}/file", again);
        Assert.Equal(HttpStatusCode.Conflict, conflict.StatusCode);

        using var patch = new HttpRequestMessage(HttpMethod.Patch, $"v2/images/{id}")
        {
            Content = new StringContent("""[{"op": "replace", "path": "/name", "value": "renamed"}, {"op": "remove", "path": "/os_distro"}, {"op": "add", "path": "/hw_disk_bus", "value": "virtio"}]"""),
        };
        patch.Content.Headers.ContentType = new MediaTypeHeaderValue("application/openstack-images-v2.1-json-patch");
        using var patched = await http.SendAsync(patch);
        Assert.Equal(HttpStatusCode.OK, patched.StatusCode);
        var updated = (await patched.Content.ReadFromJsonAsync<JsonNode>())!;
        Assert.Equal("renamed", (string?)updated["name"]);
        Assert.Null(updated["os_distro"]);
        Assert.Equal("virtio", (string?)updated["hw_disk_bus"]);

        var byName = (await http.GetFromJsonAsync<JsonNode>("v2/images?name=renamed"))!["images"]!.AsArray();
        Assert.Equal(id, (string?)Assert.Single(byName)!["id"]);

        using var delete = await http.DeleteAsync($"v2/images/{id}");
        Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        Assert.False(File.Exists(Path.Combine(fixture.Ferry.Options.DataDirectory, "images", id)));
        using var gone = await http.GetAsync($"v2/images/{id}");
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
    }

    [Fact]
    public async Task Unknown_image_is_404_and_bad_input_is_400()
    {
        using var http = Client();
        using var missing = await http.GetAsync($"v2/images/{Guid.NewGuid()}");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal("Not Found", (string?)(await missing.Content.ReadFromJsonAsync<JsonNode>())!["title"]);
        using var missingFile = await http.GetAsync($"v2/images/{Guid.NewGuid()}/file");
        Assert.Equal(HttpStatusCode.NotFound, missingFile.StatusCode);
        using var badFormat = await http.PostAsync("v2/images", new StringContent("""{"name": "x", "disk_format": "floppy"}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, badFormat.StatusCode);
        using var badMarker = await http.GetAsync($"v2/images?marker={Guid.NewGuid()}");
        Assert.Equal(HttpStatusCode.BadRequest, badMarker.StatusCode);
    }

    [Fact]
    public async Task List_limit_above_api_limit_max_is_cut_to_1000_with_next()
    {
        var catalog = fixture.Ferry.Services.GetRequiredService<Ferry.ControlPlane.Persistence.CatalogStore>();
        for (var i = 0; i < 1001; i++)
        {
            catalog.SaveImage(new Ferry.Core.Domain.Image { Id = Guid.NewGuid().ToString(), Name = $"cap-{i:D4}", Status = "deactivated", CreatedAt = DateTimeOffset.UtcNow });
        }
        using var http = Client();

        var page = (await http.GetFromJsonAsync<JsonNode>("v2/images?status=deactivated&limit=5000"))!;

        Assert.Equal(1000, page["images"]!.AsArray().Count);
        Assert.StartsWith("/v2/images?", (string)page["next"]!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task List_pages_with_limit_marker_and_next()
    {
        using var http = Client();
        for (var i = 0; i < 3; i++)
        {
            using var create = await http.PostAsync("v2/images", new StringContent($$"""{"name": "page-{{i}}", "visibility": "public"}""", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.Created, create.StatusCode);
        }
        var seen = new List<string>();
        string? next = "v2/images?status=queued&sort=name:asc&limit=2";
        while (next is not null)
        {
            var page = (await http.GetFromJsonAsync<JsonNode>(next.TrimStart('/')))!;
            seen.AddRange(page["images"]!.AsArray().Select(i => (string)i!["name"]!));
            next = (string?)page["next"];
        }
        Assert.Equal(["page-0", "page-1", "page-2"], seen.Where(n => n.StartsWith("page-", StringComparison.Ordinal)));

        using var versions = await http.GetAsync("/");
        Assert.Equal(HttpStatusCode.MultipleChoices, versions.StatusCode);
        Assert.Contains((await versions.Content.ReadFromJsonAsync<JsonNode>())!["versions"]!.AsArray(), v => (string?)v!["status"] == "CURRENT");
    }
}

/// <summary>The image service behind Keystone: a live token is required beyond version discovery.</summary>
public sealed class ImageApiKeystoneTests(CliFixture fixture) : IClassFixture<CliFixture>
{
    [Fact]
    public async Task Images_need_a_keystone_token()
    {
        using var http = new HttpClient { BaseAddress = new Uri(fixture.Ferry.Options.ImageUrl + "/") };
        using var versions = await http.GetAsync("versions");
        Assert.Equal(HttpStatusCode.OK, versions.StatusCode);
        using var anonymous = await http.GetAsync("v2/images");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        using var noauthStyle = new HttpRequestMessage(HttpMethod.Get, "v2/images");
        noauthStyle.Headers.Add("X-Auth-Token", "admin:admin");
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.SendAsync(noauthStyle)).StatusCode);

        var store = fixture.Ferry.Services.GetRequiredService<IdentityStore>();
        var user = store.FindUser("demo", IdentityStore.DefaultDomainId)!;
        var project = store.FindProject("demo", IdentityStore.DefaultDomainId)!;
        var token = fixture.Ferry.Services.GetRequiredService<TokenStore>().Issue(user, project, store.RolesOf(user.Id, project.Id), ["password"], null);
        using var authorized = new HttpRequestMessage(HttpMethod.Get, "v2/images?name=ferry-test-guest");
        authorized.Headers.Add("X-Auth-Token", token.Id);
        using var listed = await http.SendAsync(authorized);
        Assert.Equal(HttpStatusCode.OK, listed.StatusCode);
        Assert.Single((await listed.Content.ReadFromJsonAsync<JsonNode>())!["images"]!.AsArray());
    }
}
