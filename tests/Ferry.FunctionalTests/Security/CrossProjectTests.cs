using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Security;

/// <summary>What another project, or a reader, must not reach: private images and flavors, and image data by another spelling of its id.</summary>
public sealed class CrossProjectTests(SecurityFixture fixture) : IClassFixture<SecurityFixture>
{
    private CatalogStore Catalog => fixture.Ferry.Services.GetRequiredService<CatalogStore>();

    private async Task<string> CreateImageAsync(Caller caller, string json)
    {
        var (status, body, _) = await fixture.SendAsync(caller, Service.Image, HttpMethod.Post, "/images", json);
        Assert.True(status == 201, $"{status} {body?.ToJsonString()}");
        return (string)body!["id"]!;
    }

    private async Task UploadAsync(Caller caller, string id, byte[] data, int expected = 204)
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, $"{fixture.BaseUrl(Service.Image)}/images/{id}/file") { Content = new ByteArrayContent(data) };
        request.Headers.Add("X-Auth-Token", fixture.Token(caller));
        request.Content.Headers.ContentType = new("application/octet-stream");
        using var http = new HttpClient();
        using var response = await http.SendAsync(request);
        Assert.Equal(expected, (int)response.StatusCode);
    }

    private static string Boot(string image, string flavor) =>
        new JsonObject { ["server"] = new JsonObject { ["name"] = "x", ["imageRef"] = image, ["flavorRef"] = flavor, ["networks"] = "none" } }.ToJsonString();

    [Fact]
    public async Task PrivateImage_OtherProject_CannotBootOrSee()
    {
        var image = await CreateImageAsync(Caller.Member, """{"name": "demo-private", "disk_format": "raw", "container_format": "bare", "visibility": "private"}""");
        var before = Catalog.ListImages().Count;

        var boot = await fixture.SendAsync(Caller.OtherMember, Service.Compute, HttpMethod.Post, "/servers", Boot(image, "m1.tiny"));
        Assert.Equal(400, boot.Status);
        Assert.Equal("Can not find requested image", (string?)boot.Body!["badRequest"]!["message"]);
        Assert.Equal(404, (await fixture.SendAsync(Caller.OtherMember, Service.Compute, HttpMethod.Get, $"/images/{image}")).Status);
        Assert.Equal(404, (await fixture.SendAsync(Caller.OtherMember, Service.Image, HttpMethod.Get, $"/images/{image}")).Status);
        var listed = (await fixture.SendAsync(Caller.OtherMember, Service.Compute, HttpMethod.Get, "/images")).Body!["images"]!.AsArray();
        Assert.DoesNotContain(listed, i => (string?)i!["id"] == image);
        Assert.Equal(before, Catalog.ListImages().Count);
        Assert.Empty(fixture.Ferry.Services.GetRequiredService<InstanceStore>().List(fixture.OtherProjectId, null));

        Assert.Equal(200, (await fixture.SendAsync(Caller.Member, Service.Compute, HttpMethod.Get, $"/images/{image}")).Status);
    }

    [Fact]
    public async Task PrivateFlavor_NonAdmin_CannotBootOrSee()
    {
        var created = await fixture.SendAsync(Caller.Admin, Service.Compute, HttpMethod.Post, "/flavors",
            """{"flavor": {"name": "secret", "ram": 64, "vcpus": 1, "disk": 1, "os-flavor-access:is_public": false}}""");
        Assert.Equal(200, created.Status);
        var flavor = (string)created.Body!["flavor"]!["id"]!;

        var boot = await fixture.SendAsync(Caller.OtherMember, Service.Compute, HttpMethod.Post, "/servers", Boot("ferry-test-guest", flavor));
        Assert.Equal(400, boot.Status);
        Assert.Equal("Invalid flavorRef provided.", (string?)boot.Body!["badRequest"]!["message"]);
        var show = await fixture.SendAsync(Caller.OtherMember, Service.Compute, HttpMethod.Get, $"/flavors/{flavor}");
        Assert.Equal(404, show.Status);
        Assert.Equal($"Flavor {flavor} could not be found.", (string?)show.Body!["itemNotFound"]!["message"]);
        Assert.Equal(404, (await fixture.SendAsync(Caller.OtherMember, Service.Compute, HttpMethod.Get, $"/flavors/{flavor}/os-extra_specs")).Status);
        Assert.Empty(fixture.Ferry.Services.GetRequiredService<InstanceStore>().List(fixture.OtherProjectId, null));

        Assert.Equal(200, (await fixture.SendAsync(Caller.Admin, Service.Compute, HttpMethod.Get, $"/flavors/{flavor}")).Status);
    }

    [Fact]
    public async Task Reader_CannotCreateOrPatchImages()
    {
        var before = Catalog.ListImages().Count;
        var create = await fixture.SendAsync(Caller.Reader, Service.Image, HttpMethod.Post, "/images", """{"name": "by-reader"}""");
        Assert.Equal(403, create.Status);
        Assert.Equal("You are not authorized to complete add_image action.", (string?)create.Body!["message"]);
        Assert.Equal(before, Catalog.ListImages().Count);

        var image = await CreateImageAsync(Caller.OtherMember, """{"name": "other-private", "visibility": "private"}""");
        foreach (var caller in new[] { Caller.Reader, Caller.Member })
        {
            var patch = await fixture.SendAsync(caller, Service.Image, HttpMethod.Patch, $"/images/{image}",
                """[{"op": "replace", "path": "/name", "value": "pwned"}]""", "application/openstack-images-v2.1-json-patch");
            Assert.Equal(404, patch.Status);
        }
        // A reader of the owning project sees the image but may not change it.
        var own = await CreateImageAsync(Caller.Member, """{"name": "demo-own", "visibility": "private"}""");
        var readerPatch = await fixture.SendAsync(Caller.Reader, Service.Image, HttpMethod.Patch, $"/images/{own}",
            """[{"op": "replace", "path": "/name", "value": "pwned"}]""", "application/openstack-images-v2.1-json-patch");
        Assert.Equal(403, readerPatch.Status);
        Assert.Equal("You are not authorized to complete modify_image action.", (string?)readerPatch.Body!["message"]);
        Assert.Equal("other-private", Catalog.GetImage(image)!.Name);
        Assert.Equal("demo-own", Catalog.GetImage(own)!.Name);
    }

    [Fact]
    public async Task CreateImage_UpperCaseIdOfExisting_ConflictsAndVictimDataKept()
    {
        var victim = await CreateImageAsync(Caller.Admin, """{"name": "victim", "disk_format": "raw", "container_format": "bare", "visibility": "public"}""");
        var data = "victim data"u8.ToArray();
        await UploadAsync(Caller.Admin, victim, data);

        var twin = await fixture.SendAsync(Caller.OtherMember, Service.Image, HttpMethod.Post, "/images",
            $$"""{"id": "{{victim.ToUpperInvariant()}}", "name": "twin", "disk_format": "raw", "container_format": "bare"}""");
        Assert.Equal(409, twin.Status);
        Assert.Equal($"Image with identifier {victim} already exists!", (string?)twin.Body!["message"]);
        Assert.Equal(403, (await fixture.SendAsync(Caller.OtherMember, Service.Image, HttpMethod.Delete, $"/images/{victim.ToUpperInvariant()}")).Status);

        var fresh = Guid.NewGuid().ToString().ToUpperInvariant();
        Assert.Equal(fresh.ToLowerInvariant(), await CreateImageAsync(Caller.OtherMember, $$"""{"id": "{{fresh}}", "name": "upper"}"""));
        Assert.Equal(409, (await fixture.SendAsync(Caller.OtherMember, Service.Image, HttpMethod.Post, "/images", $$"""{"id": "{{fresh.ToLowerInvariant()}}"}""")).Status);

        Assert.Equal(data, await File.ReadAllBytesAsync(Path.Combine(fixture.DataDirectory, "images", victim)));
        Assert.Equal("victim", Catalog.GetImage(victim)!.Name);
    }
}
