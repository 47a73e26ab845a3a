using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Volumes;
using Ferry.Virt.Fake;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Volumes;

/// <summary>
/// os-volume_attachments end to end on fake hosts: the API reserves the volume and casts attach_volume, the host connects
/// it (a Cinder attachment with its connector), the guest gets the disk and the volume goes in-use; detach and server
/// delete give it back (or delete it, with delete_on_termination).
/// </summary>
public sealed class VolumeAttachTests(FerryFixture fixture) : VolumeFlowTest(fixture)
{
    [Fact]
    public async Task AttachThenDetach_RunningServer_VolumeInUseOnItsHostThenAvailable()
    {
        var id = await BootAsync("compute1");
        var volumeId = await VolumeRequests.CreateAsync(Fixture.Ferry);

        var (status, body) = await Admin.SendAsync(HttpMethod.Post, $"servers/{id}/os-volume_attachments",
            Attach(volumeId));

        Assert.True(status == HttpStatusCode.OK, $"{(int)status} {body?.ToJsonString()}");
        Assert.Equal("/dev/vdb", (string?)body!["volumeAttachment"]!["device"]);
        Assert.Equal(id, (string?)body["volumeAttachment"]!["serverId"]);
        var volume = await WaitForVolumeAsync(volumeId, VolumeStatus.InUse);
        var attachment = Assert.Single(await Volumes.ListAttachmentsAsync(new AttachmentQuery { VolumeIds = [volumeId] }, CancellationToken.None));
        Assert.Equal(("compute1", id, VolumeAttachStatus.Attached), (attachment.AttachedHost, attachment.InstanceUuid, attachment.AttachStatus));
        Assert.Equal([new FakeVolumeConnection(id, volumeId, "/dev/vdb", "volume-" + volumeId)], Connections("compute1", id));
        Assert.Equal(attachment.Id, Instances.Get(id).BlockDevices.Single().AttachmentId);
        var list = (await Admin.GetAsync($"servers/{id}/os-volume_attachments", "2.89")).Body!["volumeAttachments"]!.AsArray();
        Assert.Equal((volumeId, attachment.Id), ((string?)list.Single()!["volumeId"], (string?)list.Single()!["attachment_id"]));
        var server = (await Admin.GetAsync($"servers/{id}")).Body!["server"]!;
        Assert.Equal(volumeId, (string?)server["os-extended-volumes:volumes_attached"]![0]!["id"]);
        Assert.Equal(VolumeAttachStatus.Attached, volume.AttachStatus);

        (status, body) = await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}/os-volume_attachments/{volumeId}");

        Assert.True(status == HttpStatusCode.Accepted, $"{(int)status} {body?.ToJsonString()}");
        await WaitForVolumeAsync(volumeId, VolumeStatus.Available);
        Assert.Empty(await Volumes.ListAttachmentsAsync(new AttachmentQuery { VolumeIds = [volumeId] }, CancellationToken.None));
        Assert.Empty(Connections("compute1", id));
        await WaitUntilAsync(() => Instances.Get(id).BlockDevices.Count == 0, "the mapping is dropped");
    }

    [Fact]
    public async Task Attach_FourVolumesAtOnce_EachGetsItsOwnDeviceAndNoneIsLost()
    {
        var id = await BootAsync("compute1");
        var volumeIds = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            volumeIds.Add(await VolumeRequests.CreateAsync(Fixture.Ferry));
        }

        var replies = await Task.WhenAll(volumeIds.Select(v => Admin.SendAsync(HttpMethod.Post, $"servers/{id}/os-volume_attachments", Attach(v))));

        Assert.All(replies, r => Assert.True(r.Status == HttpStatusCode.OK, $"{(int)r.Status} {r.Body?.ToJsonString()}"));
        Assert.Equal(4, replies.Select(r => (string?)r.Body!["volumeAttachment"]!["device"]).Distinct().Count());
        foreach (var volumeId in volumeIds)
        {
            await WaitForVolumeAsync(volumeId, VolumeStatus.InUse);
        }
        await WaitUntilAsync(() => Instances.Get(id).BlockDevices.Count(b => b.ConnectionInfo is not null) == 4, "four mappings, each connected");
        Assert.Equal(volumeIds.Order(), Connections("compute1", id).Select(c => c.VolumeId).Order());
    }

    [Fact]
    public async Task AgentRestart_AttachAndDetachCutShort_TheAttachIsUndoneAndTheDetachRolledBack()
    {
        var id = await BootAsync("compute2");
        var detaching = await AttachNewVolumeAsync(id);
        var reserved = await VolumeRequests.CreateAsync(Fixture.Ferry);
        // As the agent's death leaves them: an attach reserved and mapped that the host never connected, a detach begun.
        var attachment = await Volumes.CreateAttachmentAsync(new VolumeAttachment
        {
            Id = Guid.NewGuid().ToString(), VolumeId = reserved, InstanceUuid = id, AttachStatus = VolumeAttachStatus.Reserved,
        }, DateTimeOffset.UtcNow, CancellationToken.None);
        Instances.Update(new Ferry.Core.Rpc.Conductor.InstanceUpdateRequest
        {
            Uuid = id,
            AddBlockDevice = new Ferry.Core.Domain.BlockDeviceMapping { Uuid = Guid.NewGuid().ToString(), VolumeId = reserved, DeviceName = "/dev/vdc", AttachmentId = attachment.Id },
        });
        await Volumes.UpdateVolumeAsync(detaching, v => v with { Status = VolumeStatus.Detaching }, CancellationToken.None);

        await Fixture.Ferry.Computes["compute2"].StopAsync();
        await Fixture.Ferry.StartComputeAsync("compute2", CancellationToken.None);

        await WaitForVolumeAsync(reserved, VolumeStatus.Available);
        Assert.Empty(await AttachmentsAsync(reserved));
        await WaitForVolumeAsync(detaching, VolumeStatus.InUse);
        Assert.Equal([detaching], Instances.Get(id).BlockDevices.Select(b => b.VolumeId));
        Assert.Equal([detaching], Connections("compute2", id).Select(c => c.VolumeId));
    }

    [Fact]
    public async Task LiveMigrate_AttachedVolume_DestinationsAttachmentReplacesTheSources()
    {
        var id = await BootAsync("compute1");
        var volumeId = await AttachNewVolumeAsync(id);
        var before = Assert.Single(await AttachmentsAsync(volumeId));

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal(("completed", "compute2"), (migration.Status, instance.Host));
        var after = Assert.Single(await AttachmentsAsync(volumeId));
        Assert.NotEqual(before.Id, after.Id);
        Assert.Equal(("compute2", VolumeAttachStatus.Attached), (after.AttachedHost, after.AttachStatus));
        Assert.Equal(after.Id, Instances.Get(id).BlockDevices.Single().AttachmentId);
        Assert.Equal(VolumeStatus.InUse, (await Volumes.GetVolumeAsync(volumeId, CancellationToken.None))!.Status);
        Assert.Equal([volumeId], Connections("compute2", id).Select(c => c.VolumeId));
        Assert.Empty(Connections("compute1", id));
    }

    [Fact]
    public async Task LiveMigrate_PreLiveMigrationFails_SourceKeepsItsAttachmentAndTheDestinationNone()
    {
        var id = await BootAsync("compute1");
        var volumeId = await AttachNewVolumeAsync(id);
        var before = Assert.Single(await AttachmentsAsync(volumeId));
        Driver("compute3").Faults.FailNext(FakeSteps.PreLiveMigration);

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute3"));
        var (instance, _) = await WaitForMoveEndAsync(id);

        Assert.Equal("compute1", instance.Host);
        Assert.Equal(before, Assert.Single(await AttachmentsAsync(volumeId)));
        Assert.Equal(VolumeStatus.InUse, (await Volumes.GetVolumeAsync(volumeId, CancellationToken.None))!.Status);
        Assert.Equal([volumeId], Connections("compute1", id).Select(c => c.VolumeId));
        Assert.Empty(Connections("compute3", id));
    }

    [Fact]
    public async Task ColdMigrateConfirm_ThenResizeRevert_TheAttachmentFollowsTheServer()
    {
        var id = await BootAsync("compute1");
        var volumeId = await AttachNewVolumeAsync(id);

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"migrate": {"host": "compute2"}}""")!)).Status);
        await WaitUntilAsync(() => Instances.Get(id) is { VmState: Ferry.Core.Domain.VmState.Resized, TaskState: null }, "VERIFY_RESIZE");
        AssertAttachedOn(id, volumeId, "compute2", await AttachmentsAsync(volumeId));
        Assert.Equal(HttpStatusCode.NoContent, (await Admin.ActionAsync(id, JsonNode.Parse("""{"confirmResize": null}""")!)).Status);
        await WaitForMoveEndAsync(id);
        AssertAttachedOn(id, volumeId, "compute2", await AttachmentsAsync(volumeId));

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"resize": {"flavorRef": "2"}}""")!)).Status);
        await WaitUntilAsync(() => Instances.Get(id) is { VmState: Ferry.Core.Domain.VmState.Resized, TaskState: null }, "VERIFY_RESIZE after resize");
        var resizedOn = Instances.Get(id).Host!;
        Assert.NotEqual("compute2", resizedOn);
        AssertAttachedOn(id, volumeId, resizedOn, await AttachmentsAsync(volumeId));
        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"revertResize": null}""")!)).Status);
        await WaitUntilAsync(() => Instances.Get(id) is { VmState: Ferry.Core.Domain.VmState.Active, TaskState: null }, "ACTIVE after revert");

        AssertAttachedOn(id, volumeId, "compute2", await AttachmentsAsync(volumeId));
        Assert.Empty(Connections(resizedOn, id));
    }

    [Fact]
    public async Task Evacuate_SourceDown_TheVolumeIsAttachedOnTheNewHost()
    {
        var id = await BootAsync("compute3");
        var volumeId = await AttachNewVolumeAsync(id);
        await Fixture.Ferry.Computes["compute3"].StopAsync();
        var service = (await Admin.GetAsync("os-services?host=compute3&binary=nova-compute")).Body!["services"]![0]!["id"]!.GetValue<string>();
        await Admin.SendAsync(HttpMethod.Put, $"os-services/{service}", new JsonObject { ["forced_down"] = true });
        try
        {
            var (status, body) = await Admin.ActionAsync(id, JsonNode.Parse("""{"evacuate": {}}""")!);
            Assert.True(status == HttpStatusCode.OK, body?.ToJsonString());
            var (instance, _) = await WaitForMoveEndAsync(id);

            Assert.NotEqual("compute3", instance.Host);
            AssertAttachedOn(id, volumeId, instance.Host!, await AttachmentsAsync(volumeId));
        }
        finally
        {
            await Fixture.Ferry.StartComputeAsync("compute3", CancellationToken.None);
            await Admin.SendAsync(HttpMethod.Put, $"os-services/{service}", new JsonObject { ["forced_down"] = false });
        }
    }

    [Fact]
    public async Task Delete_HostDown_TheApiReleasesTheAttachmentItself()
    {
        var id = await BootAsync("compute2");
        var volumeId = await AttachNewVolumeAsync(id);
        await Fixture.Ferry.Computes["compute2"].StopAsync();
        var service = (await Admin.GetAsync("os-services?host=compute2&binary=nova-compute")).Body!["services"]![0]!["id"]!.GetValue<string>();
        await Admin.SendAsync(HttpMethod.Put, $"os-services/{service}", new JsonObject { ["forced_down"] = true });
        try
        {
            Assert.Equal(HttpStatusCode.NoContent, (await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}")).Status);

            await WaitForVolumeAsync(volumeId, VolumeStatus.Available);
            Assert.Empty(await AttachmentsAsync(volumeId));
        }
        finally
        {
            await Fixture.Ferry.StartComputeAsync("compute2", CancellationToken.None);
            await Admin.SendAsync(HttpMethod.Put, $"os-services/{service}", new JsonObject { ["forced_down"] = false });
        }
    }

    /// <summary>One attachment, the server's, attached from <paramref name="host"/>, whose fake driver holds the connection.</summary>
    private void AssertAttachedOn(string id, string volumeId, string host, List<VolumeAttachment> attachments)
    {
        var attachment = Assert.Single(attachments);
        Assert.Equal((host, VolumeAttachStatus.Attached), (attachment.AttachedHost, attachment.AttachStatus));
        Assert.Equal((attachment.Id, host), (Instances.Get(id).BlockDevices.Single().AttachmentId, Instances.Get(id).Host));
        Assert.Equal([volumeId], Connections(host, id).Select(c => c.VolumeId));
    }

    [Fact]
    public async Task Attach_VolumeInUseByAnotherServer_400AndNothingChanges()
    {
        var first = await BootAsync("compute1");
        var second = await BootAsync("compute2");
        var volumeId = await VolumeRequests.CreateAsync(Fixture.Ferry);
        Assert.Equal(HttpStatusCode.OK, (await Admin.SendAsync(HttpMethod.Post, $"servers/{first}/os-volume_attachments",
            Attach(volumeId))).Status);
        await WaitForVolumeAsync(volumeId, VolumeStatus.InUse);

        var (status, body) = await Admin.SendAsync(HttpMethod.Post, $"servers/{second}/os-volume_attachments",
            Attach(volumeId));

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal($"Invalid volume: volume {volumeId} is already attached to instances: {first}", (string?)body!["badRequest"]!["message"]);
        Assert.Empty(Instances.Get(second).BlockDevices);
        Assert.Single(await Volumes.ListAttachmentsAsync(new AttachmentQuery { VolumeIds = [volumeId] }, CancellationToken.None));
        Assert.Empty(Connections("compute2", second));
    }

    [Theory]
    [InlineData("{\"volumeAttachment\": {\"volumeId\": \"00000000-0000-0000-0000-000000000000\"}}", 404, "itemNotFound")]
    [InlineData("{\"volumeAttachment\": {\"volumeId\": \"not-a-uuid\"}}", 400, "badRequest")]
    [InlineData("{\"volumeAttachment\": {}}", 400, "badRequest")]
    [InlineData("{\"volumeAttachment\": {\"volumeId\": \"VOLUME\", \"device\": \"/dev/sdz\"}}", 400, "badRequest")]
    public async Task Attach_BadRequest_NovaErrorAndNothingReserved(string request, int code, string fault)
    {
        var id = await BootAsync("compute1");
        var volumeId = await VolumeRequests.CreateAsync(Fixture.Ferry);

        var (status, body) = await Admin.SendAsync(HttpMethod.Post, $"servers/{id}/os-volume_attachments", JsonNode.Parse(request.Replace("VOLUME", volumeId, StringComparison.Ordinal)));

        Assert.Equal(code, (int)status);
        Assert.NotNull(body![fault]!["message"]);
        Assert.Equal(VolumeStatus.Available, (await Volumes.GetVolumeAsync(volumeId, CancellationToken.None))!.Status);
        Assert.Empty(Instances.Get(id).BlockDevices);
    }

    [Fact]
    public async Task Detach_NotAttached_404()
    {
        var id = await BootAsync("compute1");
        var volumeId = await VolumeRequests.CreateAsync(Fixture.Ferry);

        var (status, body) = await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}/os-volume_attachments/{volumeId}");

        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Equal($"Instance {id} is not attached to volume {volumeId}", (string?)body!["itemNotFound"]!["message"]);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task DeleteServer_AttachedVolume_DeletedOnlyWithDeleteOnTermination(bool deleteOnTermination)
    {
        var id = await BootAsync("compute1");
        var volumeId = await VolumeRequests.CreateAsync(Fixture.Ferry);
        var (status, _) = await Admin.SendAsync(HttpMethod.Post, $"servers/{id}/os-volume_attachments",
            Attach(volumeId, deleteOnTermination), "2.79");
        Assert.Equal(HttpStatusCode.OK, status);
        await WaitForVolumeAsync(volumeId, VolumeStatus.InUse);

        Assert.Equal(HttpStatusCode.NoContent, (await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}")).Status);

        await WaitUntilAsync(async () => deleteOnTermination
            ? await Volumes.GetVolumeAsync(volumeId, CancellationToken.None) is null
            : (await Volumes.GetVolumeAsync(volumeId, CancellationToken.None))?.Status == VolumeStatus.Available, "the volume follows delete_on_termination");
        Assert.Empty(await Volumes.ListAttachmentsAsync(new AttachmentQuery { VolumeIds = [volumeId] }, CancellationToken.None));
        Assert.Empty(Connections("compute1", id));
    }

    private async Task<string> AttachNewVolumeAsync(string server)
    {
        var volumeId = await VolumeRequests.CreateAsync(Fixture.Ferry);
        Assert.Equal(HttpStatusCode.OK, (await Admin.SendAsync(HttpMethod.Post, $"servers/{server}/os-volume_attachments", Attach(volumeId))).Status);
        await WaitForVolumeAsync(volumeId, VolumeStatus.InUse);
        return volumeId;
    }

    private static JsonObject Attach(string volumeId, bool? deleteOnTermination = null)
    {
        var attachment = new JsonObject { ["volumeId"] = volumeId };
        if (deleteOnTermination is { } delete)
        {
            attachment["delete_on_termination"] = delete;
        }
        return new JsonObject { ["volumeAttachment"] = attachment };
    }
}
