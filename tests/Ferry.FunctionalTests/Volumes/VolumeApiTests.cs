using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Volumes;
using Ferry.Core.Volumes;
using Ferry.Host;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Volumes;

/// <summary>
/// The Cinder v3 subset over HTTP (noauth2): version discovery and microversions, the volume lifecycle, the attachments
/// API with every status on the way, and each refusal in Cinder's code, message and body shape with nothing changed.
/// </summary>
public sealed class VolumeApiTests(FerryFixture fixture) : IClassFixture<FerryFixture>
{
    private const string Attachments = "3.44";

    private VolumeStore Store => fixture.Ferry.Services.GetRequiredService<VolumeStore>();

    private async Task<(HttpStatusCode Status, JsonNode? Body, HttpResponseMessage Response)> SendAsync(HttpMethod method, string path, string? body = null,
        string token = "admin:admin", string? version = null)
    {
        using var http = new HttpClient { BaseAddress = new Uri(fixture.Ferry.Options.VolumeUrl + "/") };
        using var request = new HttpRequestMessage(method, path.TrimStart('/'));
        request.Headers.Add("X-Auth-Token", token);
        if (version is not null)
        {
            request.Headers.Add("OpenStack-API-Version", $"volume {version}");
        }
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }
        var response = await http.SendAsync(request, CancellationToken.None);
        var text = await response.Content.ReadAsStringAsync(CancellationToken.None);
        return (response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text), response);
    }

    private async Task<JsonNode> CreateAsync(int size = 1, string name = "vol", string token = "admin:admin", string extra = "")
    {
        var (status, body, _) = await SendAsync(HttpMethod.Post, "v3/volumes", $$$"""{"volume": {"size": {{{size}}}, "name": "{{{name}}}"{{{extra}}}}}""", token);
        Assert.Equal(HttpStatusCode.Accepted, status);
        return body!["volume"]!;
    }

    private async Task<JsonNode> ShowAsync(string id, string token = "admin:admin", string? version = null) =>
        (await SendAsync(HttpMethod.Get, $"v3/volumes/{id}", token: token, version: version)).Body!["volume"]!;

    private static void AssertFault(HttpStatusCode expected, string fault, string message, (HttpStatusCode Status, JsonNode? Body, HttpResponseMessage _) answer)
    {
        Assert.Equal(expected, answer.Status);
        var body = Assert.IsType<JsonObject>(answer.Body);
        var (key, value) = Assert.Single(body);
        Assert.Equal(fault, key);
        Assert.Equal(((int)expected, message), ((int)value!["code"]!, (string)value["message"]!));
    }

    [Fact]
    public async Task Versions_RootAndV3_AdvertiseTheMicroversionRange()
    {
        using var http = new HttpClient();
        using var root = await http.GetAsync(fixture.Ferry.Options.VolumeUrl + "/", CancellationToken.None);
        using var v3 = await http.GetAsync(fixture.Ferry.Options.VolumeUrl + "/v3/", CancellationToken.None);

        Assert.Equal(HttpStatusCode.MultipleChoices, root.StatusCode);
        Assert.Equal(HttpStatusCode.OK, v3.StatusCode);
        var version = JsonNode.Parse(await v3.Content.ReadAsStringAsync(CancellationToken.None))!["versions"]![0]!;
        Assert.Equal(("v3.0", "CURRENT", "3.70", "3.0"), ((string)version["id"]!, (string)version["status"]!, (string)version["version"]!, (string)version["min_version"]!));
        Assert.EndsWith("/v3/", (string)version["links"]!.AsArray().Single(l => (string)l!["rel"]! == "self")!["href"]!, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, "volume 3.0")]
    [InlineData("latest", "volume 3.70")]
    [InlineData("3.44", "volume 3.44")]
    public async Task Microversion_Header_EchoedWithVary(string? asked, string answered)
    {
        var (status, _, response) = await SendAsync(HttpMethod.Get, "v3/volumes", version: asked);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(answered, string.Join(",", response.Headers.GetValues("OpenStack-API-Version")));
        Assert.Contains("OpenStack-API-Version", response.Headers.Vary);
    }

    [Fact]
    public async Task Microversion_OutOfRangeOrMalformed_406Or400()
    {
        AssertFault(HttpStatusCode.NotAcceptable, "computeFault", "Version 3.99 is not supported by the API. Minimum is 3.0 and maximum is 3.70.",
            await SendAsync(HttpMethod.Get, "v3/volumes", version: "3.99"));
        AssertFault(HttpStatusCode.NotAcceptable, "computeFault", "Version 2.0 is not supported by the API. Minimum is 3.0 and maximum is 3.70.",
            await SendAsync(HttpMethod.Get, "v3/volumes", version: "2.0"));
        AssertFault(HttpStatusCode.BadRequest, "badRequest", "API Version String 3.x is of invalid format. Must be of format MajorNum.MinorNum.",
            await SendAsync(HttpMethod.Get, "v3/volumes", version: "3.x"));
    }

    [Fact]
    public async Task Lifecycle_CreateListShowExtendDelete_AsTheClientsSendIt()
    {
        // Exactly what `openstack volume create --size 1 vol1` sends.
        var (created, createBody, _) = await SendAsync(HttpMethod.Post, "v3/admin/volumes",
            """{"volume":{"size":1,"consistencygroup_id":null,"snapshot_id":null,"name":"life-1","description":null,"volume_type":null,"availability_zone":null,"metadata":{},"imageRef":null,"source_volid":null,"backup_id":null}}""");
        Assert.Equal(HttpStatusCode.Accepted, created);
        var volume = createBody!["volume"]!;
        var id = (string)volume["id"]!;
        Assert.Equal(("available", 1, "false", "__DEFAULT__", "nova", false), ((string)volume["status"]!, (int)volume["size"]!, (string)volume["bootable"]!,
            (string)volume["volume_type"]!, (string)volume["availability_zone"]!, (bool)volume["multiattach"]!));
        Assert.Empty(volume["metadata"]!.AsObject());
        Assert.Empty(volume["attachments"]!.AsArray());
        Assert.True(File.Exists(Backend.PathOf(id)));
        Assert.Equal(1L << 30, new FileInfo(Backend.PathOf(id)).Length);

        var summary = (await SendAsync(HttpMethod.Get, "v3/volumes")).Body!["volumes"]!.AsArray();
        var byName = (await SendAsync(HttpMethod.Get, "v3/admin/volumes/detail?name=life-1&all_tenants=1")).Body!["volumes"]!.AsArray();
        var shown = await ShowAsync(id);
        var (extended, extendBody, _) = await SendAsync(HttpMethod.Post, $"v3/volumes/{id}/action", """{"os-extend": {"new_size": 2}}""");
        var grown = await ShowAsync(id);

        Assert.Equal(["id", "links", "name"], summary.Single(v => (string)v!["id"]! == id)!.AsObject().Select(p => p.Key).Order());
        Assert.Equal(id, (string)Assert.Single(byName)!["id"]!);
        Assert.Equal("life-1", (string)shown["name"]!);
        Assert.Equal((HttpStatusCode.Accepted, null), (extended, extendBody));
        Assert.Equal((2, "available"), ((int)grown["size"]!, (string)grown["status"]!));
        Assert.Equal(2L << 30, new FileInfo(Backend.PathOf(id)).Length);

        var (deleted, deleteBody, _) = await SendAsync(HttpMethod.Delete, $"v3/volumes/{id}");
        Assert.Equal((HttpStatusCode.Accepted, null), (deleted, deleteBody));
        AssertFault(HttpStatusCode.NotFound, "itemNotFound", $"Volume {id} could not be found.", await SendAsync(HttpMethod.Get, $"v3/volumes/{id}"));
        Assert.False(File.Exists(Backend.PathOf(id)));
    }

    private LocalFileVolumeBackend Backend => (LocalFileVolumeBackend)fixture.Ferry.Services.GetRequiredService<IVolumeBackend>();

    [Fact]
    public async Task Create_FromAnImageWithData_TheVolumeHoldsItsBytesAndIsBootable()
    {
        using var http = new HttpClient { BaseAddress = new Uri(fixture.Ferry.Options.ImageUrl + "/") };
        http.DefaultRequestHeaders.Add("X-Auth-Token", "admin:admin");
        using var made = await http.PostAsync("v2/images", new StringContent("""{"name": "vol-src", "disk_format": "raw", "container_format": "bare"}""",
            Encoding.UTF8, "application/json"), CancellationToken.None);
        var imageId = (string)JsonNode.Parse(await made.Content.ReadAsStringAsync(CancellationToken.None))!["id"]!;
        var bytes = Encoding.ASCII.GetBytes("ferry volume from image");
        using var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var upload = await http.PutAsync($"v2/images/{imageId}/file", content, CancellationToken.None);
        Assert.Equal(HttpStatusCode.NoContent, upload.StatusCode);

        var volume = await CreateAsync(name: "from-image", extra: $$$""", "imageRef": "{{{imageId}}}" """);
        var seeded = await CreateAsync(name: "from-seed", extra: $$$""", "imageRef": "{{{Seed.TestImageId}}}" """);

        Assert.Equal(("available", "true"), ((string)volume["status"]!, (string)volume["bootable"]!));
        Assert.Equal(imageId, (string)volume["volume_image_metadata"]!["image_id"]!);
        var file = Backend.PathOf((string)volume["id"]!);
        Assert.Equal(1L << 30, new FileInfo(file).Length);
        await using (var stream = File.OpenRead(file))
        {
            var head = new byte[bytes.Length];
            await stream.ReadExactlyAsync(head, CancellationToken.None);
            Assert.Equal(bytes, head);
        }
        Assert.Equal(("available", "true"), ((string)seeded["status"]!, (string)seeded["bootable"]!));
    }

    [Theory]
    [InlineData("""{"volume": {"size": 0}}""", "Invalid input for field/attribute size. Value: 0. 0 is less than the minimum of 1")]
    [InlineData("""{"volume": {"size": "abc"}}""", "Invalid input for field/attribute size. Value: abc. 'abc' does not match '^[0-9]+$'")]
    [InlineData("""{"volume": {"size": 1.5}}""", "Invalid input for field/attribute size. Value: 1.5. 1.5 is not of type 'integer', 'string'")]
    [InlineData("""{"volume": {"name": "no-size"}}""",
        "Invalid input received: Invalid volume size provided for create request: None (size argument must be an integer (or string represenation of an integer) and greater than zero).")]
    [InlineData("""{"volume": {"size": 1, "imageRef": "00000000-0000-0000-0000-000000000000"}}""",
        "Invalid input received: Invalid image identifier or unable to access requested image.")]
    [InlineData("""{"volume": {"size": 1, "availability_zone": "elsewhere"}}""", "Invalid input received: Availability zone 'elsewhere' is invalid.")]
    [InlineData("""{"volume": {"size": 1, "metadata": "x"}}""", "Invalid input for field/attribute metadata. Value: x. \"x\" is not of type 'object'")]
    [InlineData("""{"size": 1}""", "Missing required element 'volume' in request body.")]
    [InlineData("""{"volume": """, "Malformed request body")]
    public async Task Create_BadInput_400InCindersShapeAndNothingMade(string body, string message)
    {
        var before = (await Store.ListVolumesAsync(null, CancellationToken.None)).Count;

        AssertFault(HttpStatusCode.BadRequest, "badRequest", message, await SendAsync(HttpMethod.Post, "v3/volumes", body));

        Assert.Equal(before, (await Store.ListVolumesAsync(null, CancellationToken.None)).Count);
    }

    [Fact]
    public async Task Create_BeyondTheGigabytesQuota_413AndNothingMade()
    {
        AssertFault(HttpStatusCode.RequestEntityTooLarge, "overLimit",
            "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested 1001G, quota is 1000G and 0G has been consumed.",
            await SendAsync(HttpMethod.Post, "v3/volumes", """{"volume": {"size": 1001}}""", token: "quota:quota"));

        Assert.Empty(await Store.ListVolumesAsync("quota", CancellationToken.None));
    }

    [Fact]
    public async Task Create_UnknownVolumeType_404()
    {
        AssertFault(HttpStatusCode.NotFound, "itemNotFound", "Volume type with name gold could not be found.",
            await SendAsync(HttpMethod.Post, "v3/volumes", """{"volume": {"size": 1, "volume_type": "gold"}}"""));
    }

    [Fact]
    public async Task Extend_NotBiggerOrInUseBefore342_400AndNothingChanges()
    {
        var id = (string)(await CreateAsync(size: 2))["id"]!;

        AssertFault(HttpStatusCode.BadRequest, "badRequest", "Invalid input received: New size for extend must be greater than current size. (current: 2, extended: 1).",
            await SendAsync(HttpMethod.Post, $"v3/volumes/{id}/action", """{"os-extend": {"new_size": 1}}"""));
        AssertFault(HttpStatusCode.BadRequest, "badRequest", "There is no such action: os-frobnicate",
            await SendAsync(HttpMethod.Post, $"v3/volumes/{id}/action", """{"os-frobnicate": null}"""));
        var (_, _, attachmentId) = await AttachAsync(id, Guid.NewGuid().ToString());
        AssertFault(HttpStatusCode.BadRequest, "badRequest", $"Invalid volume: Volume {id} status must be '{{'status': 'available'}}' to extend, currently in-use.",
            await SendAsync(HttpMethod.Post, $"v3/volumes/{id}/action", """{"os-extend": {"new_size": 3}}"""));
        var unchanged = await ShowAsync(id);
        var (extended, _, _) = await SendAsync(HttpMethod.Post, $"v3/volumes/{id}/action", """{"os-extend": {"new_size": 3}}""", version: "3.42");

        Assert.Equal((2, "in-use"), ((int)unchanged["size"]!, (string)unchanged["status"]!));
        Assert.Equal(HttpStatusCode.Accepted, extended);
        var grown = await ShowAsync(id);
        Assert.Equal((3, "in-use"), ((int)grown["size"]!, (string)grown["status"]!));
        await SendAsync(HttpMethod.Delete, $"v3/attachments/{attachmentId}", version: Attachments);
    }

    /// <summary>Nova's attach: reserve, connect with the host's connector, complete.</summary>
    private async Task<(JsonNode Reserved, JsonNode Connected, string AttachmentId)> AttachAsync(string volumeId, string server, string host = "compute1")
    {
        var (created, reserved, _) = await SendAsync(HttpMethod.Post, "v3/attachments",
            $$$"""{"attachment": {"volume_uuid": "{{{volumeId}}}", "instance_uuid": "{{{server}}}", "connector": null}}""", version: Attachments);
        Assert.Equal(HttpStatusCode.OK, created);
        var id = (string)reserved!["attachment"]!["id"]!;
        var (updated, connected, _) = await SendAsync(HttpMethod.Put, $"v3/attachments/{id}",
            $$$$"""{"attachment": {"connector": {"host": "{{{{host}}}}", "ip": "127.0.0.1", "initiator": "iqn.x", "platform": "x86_64", "os_type": "linux", "multipath": false, "mountpoint": "/dev/vdb"}}}""",
            version: Attachments);
        Assert.Equal(HttpStatusCode.OK, updated);
        var (completed, none, _) = await SendAsync(HttpMethod.Post, $"v3/attachments/{id}/action", """{"os-complete": null}""", version: Attachments);
        Assert.Equal((HttpStatusCode.NoContent, null), (completed, none));
        return (reserved["attachment"]!, connected!["attachment"]!, id);
    }

    [Fact]
    public async Task Attachments_NovasAttachAndDetach_StatusesOnTheWay()
    {
        var volumeId = (string)(await CreateAsync(name: "attach-me"))["id"]!;
        var server = Guid.NewGuid().ToString();

        var (created, reserved, _) = await SendAsync(HttpMethod.Post, "v3/attachments",
            $$$"""{"attachment": {"volume_uuid": "{{{volumeId}}}", "instance_uuid": "{{{server}}}", "connector": null}}""", version: Attachments);
        var attachmentId = (string)reserved!["attachment"]!["id"]!;
        var whileReserved = await ShowAsync(volumeId);
        var (_, connected, _) = await SendAsync(HttpMethod.Put, $"v3/attachments/{attachmentId}",
            """{"attachment": {"connector": {"host": "compute1", "ip": "127.0.0.1", "mountpoint": "/dev/vdb"}}}""", version: Attachments);
        var whileAttaching = await ShowAsync(volumeId);
        var (completed, _, _) = await SendAsync(HttpMethod.Post, $"v3/attachments/{attachmentId}/action", """{"os-complete": null}""", version: Attachments);
        var inUse = await ShowAsync(volumeId);
        var listed = (await SendAsync(HttpMethod.Get, $"v3/attachments/detail?instance_id={server}", version: Attachments)).Body!["attachments"]!.AsArray();
        var (detaching, _, _) = await SendAsync(HttpMethod.Post, $"v3/volumes/{volumeId}/action", """{"os-begin_detaching": null}""");
        var whileDetaching = await ShowAsync(volumeId);
        await SendAsync(HttpMethod.Post, $"v3/volumes/{volumeId}/action", """{"os-roll_detaching": null}""");
        var rolledBack = await ShowAsync(volumeId);
        await SendAsync(HttpMethod.Post, $"v3/volumes/{volumeId}/action", """{"os-begin_detaching": null}""");
        var (deleted, remaining, _) = await SendAsync(HttpMethod.Delete, $"v3/attachments/{attachmentId}", version: Attachments);
        var after = await ShowAsync(volumeId);

        Assert.Equal(HttpStatusCode.OK, created);
        var r = reserved["attachment"]!;
        Assert.Equal(("reserved", server, volumeId, "", "null"), ((string)r["status"]!, (string)r["instance"]!, (string)r["volume_id"]!, (string)r["attached_at"]!, (string)r["attach_mode"]!));
        Assert.Empty(r["connection_info"]!.AsObject());
        Assert.Equal("reserved", (string)whileReserved["status"]!);
        var info = connected!["attachment"]!["connection_info"]!;
        Assert.Equal(("attaching", "nbd", 0, $"volume-{volumeId}", attachmentId, "rw"), ((string)connected["attachment"]!["status"]!, (string)info["driver_volume_type"]!,
            (int)info["port"]!, (string)info["export"]!, (string)info["attachment_id"]!, (string)info["access_mode"]!));
        Assert.Equal("attaching", (string)whileAttaching["status"]!);
        Assert.Empty(whileAttaching["attachments"]!.AsArray());
        Assert.Equal(HttpStatusCode.NoContent, completed);
        Assert.Equal("in-use", (string)inUse["status"]!);
        var shown = Assert.Single(inUse["attachments"]!.AsArray())!;
        Assert.Equal((volumeId, attachmentId, volumeId, server, "/dev/vdb", "compute1"), ((string)shown["id"]!, (string)shown["attachment_id"]!, (string)shown["volume_id"]!,
            (string)shown["server_id"]!, (string)shown["device"]!, (string)shown["host_name"]!));
        Assert.NotNull((string?)shown["attached_at"]);
        Assert.Equal(("attached", attachmentId), ((string)Assert.Single(listed)!["status"]!, (string)listed[0]!["id"]!));
        Assert.Equal(HttpStatusCode.Accepted, detaching);
        Assert.Equal("detaching", (string)whileDetaching["status"]!);
        Assert.Equal("in-use", (string)rolledBack["status"]!);
        Assert.Equal(HttpStatusCode.OK, deleted);
        Assert.Empty(remaining!["attachments"]!.AsArray());
        Assert.Equal(("available", 0), ((string)after["status"]!, after["attachments"]!.AsArray().Count));
    }

    [Fact]
    public async Task Attachments_AnotherServerRefusedTheSameServerAllowed_AsForALiveMigration()
    {
        var volumeId = (string)(await CreateAsync(name: "migrating"))["id"]!;
        var server = Guid.NewGuid().ToString();
        var (_, _, first) = await AttachAsync(volumeId, server, "compute1");

        var other = await SendAsync(HttpMethod.Post, "v3/attachments",
            $$$"""{"attachment": {"volume_uuid": "{{{volumeId}}}", "instance_uuid": "{{{Guid.NewGuid()}}}", "connector": null}}""", version: Attachments);
        var countAfterRefusal = (await Store.ListAttachmentsAsync(new AttachmentQuery { VolumeIds = [volumeId] }, CancellationToken.None)).Count;
        var (_, _, second) = await AttachAsync(volumeId, server, "compute2");
        var twoHeld = (await SendAsync(HttpMethod.Get, $"v3/attachments?volume_id={volumeId}", version: Attachments)).Body!["attachments"]!.AsArray();
        var (_, remaining, _) = await SendAsync(HttpMethod.Delete, $"v3/attachments/{first}", version: Attachments);
        var afterSource = await ShowAsync(volumeId);

        AssertFault(HttpStatusCode.BadRequest, "badRequest",
            $"Invalid volume: Volume {volumeId} status must be available or downloading to reserve, but the current status is in-use.", other);
        Assert.Equal(1, countAfterRefusal);
        Assert.Equal(2, twoHeld.Count);
        Assert.Equal(second, (string)Assert.Single(remaining!["attachments"]!.AsArray())!["id"]!);
        Assert.Equal("in-use", (string)afterSource["status"]!);
        Assert.Equal("compute2", (string)Assert.Single(afterSource["attachments"]!.AsArray())!["host_name"]!);
        await SendAsync(HttpMethod.Delete, $"v3/attachments/{second}", version: Attachments);
    }

    [Fact]
    public async Task Delete_WithAnAttachment_400WithCindersMessageAndTheVolumeStays()
    {
        var volumeId = (string)(await CreateAsync(name: "held"))["id"]!;
        var (_, reserved, _) = await SendAsync(HttpMethod.Post, "v3/attachments",
            $$$"""{"attachment": {"volume_uuid": "{{{volumeId}}}", "instance_uuid": "{{{Guid.NewGuid()}}}", "connector": null}}""", version: Attachments);

        AssertFault(HttpStatusCode.BadRequest, "badRequest", CinderException.NotDeletable().Message, await SendAsync(HttpMethod.Delete, $"v3/volumes/{volumeId}"));

        Assert.Equal("reserved", (string)(await ShowAsync(volumeId))["status"]!);
        Assert.True(File.Exists(Backend.PathOf(volumeId)));
        Assert.StartsWith("Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached",
            CinderException.NotDeletable().Message, StringComparison.Ordinal);
        await SendAsync(HttpMethod.Delete, $"v3/attachments/{(string)reserved!["attachment"]!["id"]!}", version: Attachments);
    }

    [Fact]
    public async Task Attachments_BadRequests_RefusedWithCindersCodesAndNothingChanges()
    {
        var volumeId = (string)(await CreateAsync(name: "refusals"))["id"]!;
        var broken = (string)(await CreateAsync(name: "broken"))["id"]!;
        await SendAsync(HttpMethod.Post, $"v3/volumes/{broken}/action", """{"os-reset_status": {"status": "error"}}""");
        var missing = Guid.NewGuid().ToString();

        AssertFault(HttpStatusCode.NotFound, "itemNotFound", "The resource could not be found.",
            await SendAsync(HttpMethod.Post, "v3/attachments", $$$"""{"attachment": {"volume_uuid": "{{{volumeId}}}", "instance_uuid": "{{{missing}}}"}}""", version: "3.26"));
        AssertFault(HttpStatusCode.BadRequest, "badRequest",
            $"Invalid volume: Volume attachments can not be created if the volume is in an error state. The Volume {broken} currently has a status of: error ",
            await SendAsync(HttpMethod.Post, "v3/attachments", $$$"""{"attachment": {"volume_uuid": "{{{broken}}}", "instance_uuid": "{{{missing}}}", "connector": null}}""", version: Attachments));
        AssertFault(HttpStatusCode.NotFound, "itemNotFound", $"Volume {missing} could not be found.",
            await SendAsync(HttpMethod.Post, "v3/attachments", $$$"""{"attachment": {"volume_uuid": "{{{missing}}}", "instance_uuid": "{{{missing}}}", "connector": null}}""", version: Attachments));
        var extra = await SendAsync(HttpMethod.Post, "v3/attachments",
            $$$"""{"attachment": {"volume_uuid": "{{{volumeId}}}", "instance_uuid": "{{{missing}}}", "connector": null, "color": "red"}}""", version: Attachments);
        var noVolume = await SendAsync(HttpMethod.Post, "v3/attachments", $$$"""{"attachment": {"instance_uuid": "{{{missing}}}"}}""", version: Attachments);
        AssertFault(HttpStatusCode.NotFound, "itemNotFound", $"Volume attachment could not be found with filter: attachment_id = {missing}.",
            await SendAsync(HttpMethod.Put, $"v3/attachments/{missing}", """{"attachment": {"connector": {"host": "h"}}}""", version: Attachments));
        AssertFault(HttpStatusCode.NotFound, "itemNotFound", $"Volume attachment could not be found with filter: attachment_id = {missing}.",
            await SendAsync(HttpMethod.Delete, $"v3/attachments/{missing}", version: Attachments));
        AssertFault(HttpStatusCode.BadRequest, "badRequest", "Invalid volume: Unable to detach volume. Volume status must be 'in-use' and attach_status must be 'attached' to detach.",
            await SendAsync(HttpMethod.Post, $"v3/volumes/{volumeId}/action", """{"os-begin_detaching": null}"""));

        Assert.Equal((HttpStatusCode.BadRequest, "badRequest"), (extra.Status, extra.Body!.AsObject().Single().Key));
        Assert.Contains("'color' was unexpected", (string)extra.Body["badRequest"]!["message"]!, StringComparison.Ordinal);
        Assert.Contains("'volume_uuid' is a required property", (string)noVolume.Body!["badRequest"]!["message"]!, StringComparison.Ordinal);
        Assert.Empty(await Store.ListAttachmentsAsync(new AttachmentQuery { VolumeIds = [volumeId, broken] }, CancellationToken.None));
        Assert.Equal("available", (string)(await ShowAsync(volumeId))["status"]!);
        Assert.Equal("error", (string)(await ShowAsync(broken))["status"]!);
    }

    [Fact]
    public async Task Projects_EachSeesItsOwn_AdminAllWithAllTenants()
    {
        var mine = (string)(await CreateAsync(name: "demo-owned", token: "demo:demo"))["id"]!;
        var admins = (string)(await CreateAsync(name: "admin-owned"))["id"]!;

        var demoList = (await SendAsync(HttpMethod.Get, "v3/volumes/detail?all_tenants=1", token: "demo:demo")).Body!["volumes"]!.AsArray();
        var adminOwn = (await SendAsync(HttpMethod.Get, "v3/volumes")).Body!["volumes"]!.AsArray();
        var adminAll = (await SendAsync(HttpMethod.Get, "v3/volumes?all_tenants=True")).Body!["volumes"]!.AsArray();

        Assert.Contains(demoList, v => (string)v!["id"]! == mine);
        Assert.DoesNotContain(demoList, v => (string)v!["id"]! == admins);
        Assert.DoesNotContain(adminOwn, v => (string)v!["id"]! == mine);
        Assert.Contains(adminAll, v => (string)v!["id"]! == mine);
        Assert.Null((await SendAsync(HttpMethod.Get, $"v3/volumes/{mine}", token: "demo:demo")).Body!["volume"]!["os-vol-host-attr:host"]);
        AssertFault(HttpStatusCode.NotFound, "itemNotFound", $"Volume {admins} could not be found.", await SendAsync(HttpMethod.Get, $"v3/volumes/{admins}", token: "demo:demo"));
        AssertFault(HttpStatusCode.NotFound, "itemNotFound", $"Volume {admins} could not be found.", await SendAsync(HttpMethod.Delete, $"v3/volumes/{admins}", token: "demo:demo"));
        AssertFault(HttpStatusCode.BadRequest, "badRequest", "Malformed request url", await SendAsync(HttpMethod.Get, $"v3/admin/volumes/{mine}", token: "demo:demo"));
        AssertFault(HttpStatusCode.Forbidden, "forbidden", "Policy doesn't allow volume_extension:volume_admin_actions:force_delete to be performed.",
            await SendAsync(HttpMethod.Post, $"v3/volumes/{mine}/action", """{"os-force_delete": null}""", token: "demo:demo"));
        Assert.Equal("admin-owned", (string)(await ShowAsync(admins))["name"]!);
    }

    [Fact]
    public async Task List_LimitAndMarker_PagesWithANextLink()
    {
        for (var i = 0; i < 3; i++)
        {
            await CreateAsync(name: "paged", token: "pager:pager");
        }

        var first = (await SendAsync(HttpMethod.Get, "v3/volumes/detail?limit=2", token: "pager:pager")).Body!;
        var next = new Uri((string)first["volumes_links"]![0]!["href"]!);
        var second = (await SendAsync(HttpMethod.Get, next.PathAndQuery, token: "pager:pager")).Body!;
        var badLimit = await SendAsync(HttpMethod.Get, "v3/volumes?limit=x", token: "pager:pager");

        Assert.Equal(2, first["volumes"]!.AsArray().Count);
        Assert.Single(second["volumes"]!.AsArray());
        Assert.Null(second["volumes_links"]);
        AssertFault(HttpStatusCode.BadRequest, "badRequest", "Invalid input received: limit param must be an integer", badLimit);
    }
}
