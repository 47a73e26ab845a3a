using System.Net;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Placement;
using Ferry.Core.Domain;
using Ferry.Core.Volumes;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Volumes;

/// <summary>
/// Boot from volume end to end on fake hosts: the API reserves an existing root volume (or the host makes one from the
/// image at build), the host connects it as /dev/vda before the guest starts, no root disk is claimed in placement, and
/// every move carries the root volume's attachment to the host that runs the guest.
/// </summary>
public sealed class BootFromVolumeTests(FerryFixture fixture) : VolumeFlowTest(fixture)
{
    [Fact]
    public async Task Boot_ExistingVolume_RootVolumeInUseOnItsHostAndNoRootDiskClaimed()
    {
        var volumeId = await VolumeRequests.CreateAsync(Fixture.Ferry, Ferry.Host.Seed.TestImageId);

        var id = await BootFromVolumeAsync("compute1", volumeId);

        await AssertAttachedOnAsync(id, volumeId, "compute1");
        var mapping = Instances.Get(id).BlockDevices.Single();
        Assert.Equal((VolumeDevices.Root, 0, Ferry.Host.Seed.TestImageId), (mapping.DeviceName, mapping.BootIndex, mapping.ImageId));
        Assert.Equal(VolumeDevices.Root, Connections("compute1", id).Single().DeviceName);
        Assert.True(Instances.Get(id).VolumeBacked);
        var server = (await Admin.GetAsync($"servers/{id}")).Body!["server"]!;
        Assert.Equal("", (string?)server["image"]);
        Assert.Equal(volumeId, (string?)server["os-extended-volumes:volumes_attached"]![0]!["id"]);
        var claimed = (await Fixture.Ferry.Services.GetRequiredService<IPlacementService>().GetAllocationsAsync(id, CancellationToken.None)).Allocations.Values.Single();
        Assert.Equal(0, claimed.GetValueOrDefault(ResourceClasses.DiskGb));   // m1.tiny's only disk is its root

        Assert.Equal(HttpStatusCode.NoContent, (await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}")).Status);

        await WaitForVolumeAsync(volumeId, VolumeStatus.Available);
        Assert.Empty(await AttachmentsAsync(volumeId));
    }

    [Fact]
    public async Task Boot_NewVolumeFromImageWithDeleteOnTermination_MadeAtBuildAndDeletedWithTheServer()
    {
        var id = await BootFromVolumeAsync("compute2", volumeSize: 2, deleteOnTermination: true);

        var volumeId = RootVolumeOf(id);
        await AssertAttachedOnAsync(id, volumeId, "compute2");
        var volume = (await Volumes.GetVolumeAsync(volumeId, CancellationToken.None))!;
        Assert.Equal((2, true, Ferry.Host.Seed.TestImageId, ""), (volume.SizeGb, volume.Bootable, volume.ImageId, volume.Name));

        Assert.Equal(HttpStatusCode.NoContent, (await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}")).Status);

        await WaitUntilAsync(async () => await Volumes.GetVolumeAsync(volumeId, CancellationToken.None) is null, "the root volume is deleted");
    }

    [Fact]
    public async Task Boot_RootVolumeOfAnImageWithProperties_ServerKeepsTheImagesPropertiesAndTheGuestItsVifModel()
    {
        // Nova reads them from the volume's volume_image_metadata; Ferry's volumes keep only image_id, so the image's record.
        var catalog = Fixture.Ferry.Services.GetRequiredService<ControlPlane.Persistence.CatalogStore>();
        var image = (await catalog.FindImageAsync(Ferry.Host.Seed.TestImageId, CancellationToken.None))!;
        await catalog.SaveImageAsync(image with { Properties = new() { ["hw_vif_model"] = "e1000" } }, CancellationToken.None);
        string fromVolume, fromImage;
        try
        {
            var volumeId = await VolumeRequests.CreateAsync(Fixture.Ferry, Ferry.Host.Seed.TestImageId);
            fromVolume = await BootFromVolumeAsync("compute1", volumeId);
            fromImage = await BootFromVolumeAsync("compute2", volumeSize: 1, deleteOnTermination: true);
        }
        finally
        {
            await catalog.SaveImageAsync(image, CancellationToken.None);
        }

        Assert.Equal("e1000", Instances.Get(fromVolume).SystemMetadata["image_hw_vif_model"]);
        Assert.Equal("e1000", Instances.Get(fromImage).SystemMetadata["image_hw_vif_model"]);
        Assert.Equal("e1000", Driver("compute2").State.Guests[fromImage].Spec.VifModel);
        Assert.Equal(HttpStatusCode.NoContent, (await Admin.SendAsync(HttpMethod.Delete, $"servers/{fromVolume}")).Status);
        Assert.Equal(HttpStatusCode.NoContent, (await Admin.SendAsync(HttpMethod.Delete, $"servers/{fromImage}")).Status);
    }

    [Fact]
    public async Task Boot_ImageWithABlankDataVolume_MadeAtBuildAsVdbAndKeptAfterDelete()
    {
        var request = JsonNode.Parse("""
            {"server": {"name": "blank", "imageRef": "ferry-test-guest", "flavorRef": "m1.tiny", "networks": "none", "availability_zone": "nova:compute1",
              "block_device_mapping_v2": [{"source_type": "blank", "destination_type": "volume", "volume_size": 1, "boot_index": -1}]}}
            """)!.AsObject();
        var (status, body) = await Admin.PostAsync("servers", request);
        Assert.True(status == HttpStatusCode.Accepted, body?.ToJsonString());
        var id = body!["server"]!["id"]!.GetValue<string>();
        var instance = await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE");

        Assert.False(instance.VolumeBacked);
        var mapping = instance.BlockDevices.Single();
        Assert.Equal(("/dev/vdb", (int?)null), (mapping.DeviceName, mapping.BootIndex));
        await AssertAttachedOnAsync(id, mapping.VolumeId, "compute1");
        var volume = (await Volumes.GetVolumeAsync(mapping.VolumeId, CancellationToken.None))!;
        Assert.Equal(($"{id}-blank-vol", false), (volume.Name, volume.Bootable));

        Assert.Equal(HttpStatusCode.NoContent, (await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}")).Status);
        await WaitForVolumeAsync(mapping.VolumeId, VolumeStatus.Available);
    }

    [Fact]
    public async Task Build_TheVolumeCannotBeMade_ServerErrorAndNothingLeft()
    {
        var volumesBefore = (await Volumes.ListVolumesAsync(null, CancellationToken.None)).Count;

        // More than the project's 1000 GiB of volume quota: the block storage service refuses to make it at build.
        var (status, body) = await Admin.PostAsync("servers", BootFromVolumeRequest("compute1", null, volumeSize: 2000, deleteOnTermination: true));
        Assert.True(status == HttpStatusCode.Accepted, body?.ToJsonString());
        var id = body!["server"]!["id"]!.GetValue<string>();

        var instance = await WaitForAsync(id, i => i.VmState == VmState.Error && i.TaskState is null, "ERROR");
        Assert.Empty(instance.BlockDevices);
        Assert.Equal(volumesBefore, (await Volumes.ListVolumesAsync(null, CancellationToken.None)).Count);
        Assert.Empty(await Volumes.ListAttachmentsAsync(new Ferry.ControlPlane.Persistence.AttachmentQuery { InstanceUuid = id }, CancellationToken.None));
        Assert.Equal(HttpStatusCode.NoContent, (await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}")).Status);
    }

    [Theory]
    [InlineData(null)]
    [InlineData(true)]
    [InlineData(false)]
    public async Task LiveMigrate_BootFromVolumeWithConfigDrive_EveryModeMovesTheAttachmentAndCopiesNoDisk(bool? blockMigration)
    {
        // Seed 004's guest: Nova refused it both ways; here the root volume is shared and the config drive is written again.
        var volumeId = await VolumeRequests.CreateAsync(Fixture.Ferry, Ferry.Host.Seed.TestImageId);
        var id = await BootFromVolumeAsync("compute1", volumeId, configDrive: true);

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2", blockMigration));
        var end = await WaitForMoveEndAsync(id);

        AssertMoveEnded(id, end, MigrationStatus.Completed, "compute2");
        Assert.True(end.Migration.DiskTotal is null or 0, $"copied {end.Migration.DiskTotal} disk bytes");
        await AssertAttachedOnAsync(id, volumeId, "compute2");
        Assert.Empty(Connections("compute1", id));
    }

    [Fact]
    public async Task ColdMigrateConfirm_ThenResizeRevert_TheRootVolumeFollowsTheServer()
    {
        var id = await BootFromVolumeAsync("compute1", volumeSize: 1, deleteOnTermination: true);
        var volumeId = RootVolumeOf(id);

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"migrate": {"host": "compute2"}}""")!)).Status);
        await WaitForAsync(id, i => i is { VmState: VmState.Resized, TaskState: null }, "VERIFY_RESIZE");
        await AssertAttachedOnAsync(id, volumeId, "compute2");
        Assert.Equal(HttpStatusCode.NoContent, (await Admin.ActionAsync(id, JsonNode.Parse("""{"confirmResize": null}""")!)).Status);
        await WaitForMoveEndAsync(id);
        await AssertAttachedOnAsync(id, volumeId, "compute2");

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"resize": {"flavorRef": "2"}}""")!)).Status);
        var resized = await WaitForAsync(id, i => i is { VmState: VmState.Resized, TaskState: null }, "VERIFY_RESIZE after resize");
        Assert.NotEqual("compute2", resized.Host);
        await AssertAttachedOnAsync(id, volumeId, resized.Host!);
        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"revertResize": null}""")!)).Status);
        await WaitForAsync(id, i => i is { VmState: VmState.Active, TaskState: null }, "ACTIVE after revert");

        await AssertAttachedOnAsync(id, volumeId, "compute2");
        Assert.Empty(Connections(resized.Host!, id));
    }

    [Fact]
    public async Task Evacuate_BootFromVolume_TheRootVolumeIsAttachedOnTheNewHost()
    {
        var volumeId = await VolumeRequests.CreateAsync(Fixture.Ferry, Ferry.Host.Seed.TestImageId);
        var id = await BootFromVolumeAsync("compute3", volumeId);
        await Fixture.Ferry.Computes["compute3"].StopAsync();
        var service = (await Admin.GetAsync("os-services?host=compute3&binary=nova-compute")).Body!["services"]![0]!["id"]!.GetValue<string>();
        await Admin.SendAsync(HttpMethod.Put, $"os-services/{service}", new JsonObject { ["forced_down"] = true });
        try
        {
            var (status, body) = await Admin.ActionAsync(id, JsonNode.Parse("""{"evacuate": {}}""")!);
            Assert.True(status == HttpStatusCode.OK, body?.ToJsonString());
            var end = await WaitForMoveEndAsync(id);

            Assert.True(end.Migration.Status == MigrationStatus.Done && end.Instance.Host != "compute3", $"{end.Migration.Status} on {end.Instance.Host}: {LastFault(id)}");
            await AssertAttachedOnAsync(id, volumeId, end.Instance.Host!);
        }
        finally
        {
            await Fixture.Ferry.StartComputeAsync("compute3", CancellationToken.None);
            await Admin.SendAsync(HttpMethod.Put, $"os-services/{service}", new JsonObject { ["forced_down"] = false });
        }
    }

    [Fact]
    public async Task Delete_HostDown_TheApiDeletesTheDeleteOnTerminationRootVolume()
    {
        var id = await BootFromVolumeAsync("compute2", volumeSize: 1, deleteOnTermination: true);
        var volumeId = RootVolumeOf(id);
        await Fixture.Ferry.Computes["compute2"].StopAsync();
        var service = (await Admin.GetAsync("os-services?host=compute2&binary=nova-compute")).Body!["services"]![0]!["id"]!.GetValue<string>();
        await Admin.SendAsync(HttpMethod.Put, $"os-services/{service}", new JsonObject { ["forced_down"] = true });
        try
        {
            Assert.Equal(HttpStatusCode.NoContent, (await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}")).Status);

            Assert.Null(await Volumes.GetVolumeAsync(volumeId, CancellationToken.None));
            Assert.Empty(await AttachmentsAsync(volumeId));
        }
        finally
        {
            await Fixture.Ferry.StartComputeAsync("compute2", CancellationToken.None);
            await Admin.SendAsync(HttpMethod.Put, $"os-services/{service}", new JsonObject { ["forced_down"] = false });
        }
    }

    [Theory]
    [InlineData("""[{"boot_index": 0, "uuid": "{missing}", "source_type": "volume", "destination_type": "volume"}]""", "Block Device Mapping is Invalid: failed to get volume {missing}.")]
    [InlineData("""[{"boot_index": 0, "uuid": "{image}", "source_type": "image", "destination_type": "volume"}]""", "Images with destination_type 'volume' need to have a non-zero size specified")]
    [InlineData("""[{"boot_index": 0, "uuid": "{image}", "source_type": "image", "destination_type": "volume", "volume_size": 0}]""", "0 is less than the minimum of 1")]
    [InlineData("""[{"boot_index": 0, "uuid": "{image}", "source_type": "image", "destination_type": "volume", "volume_size": "one"}]""", "does not match")]
    [InlineData("""[{"boot_index": 0, "uuid": "{missing}", "source_type": "image", "destination_type": "volume", "volume_size": 1}]""", "Block Device Mapping is Invalid: failed to get image {missing}.")]
    [InlineData("""[{"boot_index": "abc", "uuid": "{image}", "source_type": "image", "destination_type": "volume", "volume_size": 1}]""", "'abc' does not match '^-?[0-9]+$'")]
    [InlineData("""[{"boot_index": 0, "uuid": "{image}", "source_type": "floppy", "destination_type": "volume", "volume_size": 1}]""", "'floppy' is not one of")]
    [InlineData("""[{"boot_index": 0, "source_type": "volume", "destination_type": "volume"}]""", "Block Device Mapping is Invalid: Missing device UUID.")]
    [InlineData("""[{"boot_index": 0, "uuid": "{image}", "source_type": "image", "destination_type": "volume", "volume_size": 1}, {"boot_index": 0, "uuid": "{image}", "source_type": "image", "destination_type": "volume", "volume_size": 1}]""", "Boot sequence for the instance and image/block device mapping combination is not valid.")]
    [InlineData("""[{"boot_index": 1, "uuid": "{image}", "source_type": "image", "destination_type": "local"}]""", "Mapping image to local is not supported.")]
    public async Task Boot_BadBlockDeviceMapping_400AndNothingChanges(string mappings, string fault)
    {
        var missing = Guid.NewGuid().ToString();
        string Fill(string text) => text.Replace("{missing}", missing, StringComparison.Ordinal).Replace("{image}", Ferry.Host.Seed.TestImageId, StringComparison.Ordinal);
        var request = BootFromVolumeRequest("compute1", Guid.NewGuid().ToString());
        request["server"]!["block_device_mapping_v2"] = JsonNode.Parse(Fill(mappings));
        var before = (Instances.List(includeDeleted: true).Count, (await Volumes.ListVolumesAsync(null, CancellationToken.None)).Count);

        var (status, body) = await Admin.PostAsync("servers", request);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(Fill(fault), (string?)body!["badRequest"]!["message"]);
        Assert.Equal(before, (Instances.List(includeDeleted: true).Count, (await Volumes.ListVolumesAsync(null, CancellationToken.None)).Count));
    }

    [Fact]
    public async Task Boot_VolumeNotBootableInUseOrInError_400AndTheVolumeUnchanged()
    {
        var blank = await VolumeRequests.CreateAsync(Fixture.Ferry);
        var used = await VolumeRequests.CreateAsync(Fixture.Ferry, Ferry.Host.Seed.TestImageId);
        var owner = await BootFromVolumeAsync("compute1", used);
        var broken = await VolumeRequests.CreateAsync(Fixture.Ferry, Ferry.Host.Seed.TestImageId);
        await Volumes.UpdateVolumeAsync(broken, v => v with { Status = VolumeStatus.Error }, CancellationToken.None);
        var before = Instances.List(includeDeleted: true).Count;

        foreach (var (volumeId, fault) in new[]
        {
            (blank, $"Block Device {blank} is not bootable."),
            (used, $"Invalid volume: Invalid input received: Invalid volume: Volume {used} status must be available or downloading to reserve, but the current status is in-use."),
            (broken, "Invalid volume: Invalid input received: Invalid volume: Volume attachments can not be created if the volume is in an error state."),
        })
        {
            var (status, body) = await Admin.PostAsync("servers", BootFromVolumeRequest("compute2", volumeId));
            Assert.True(status == HttpStatusCode.BadRequest, body?.ToJsonString());
            Assert.Contains(fault, (string?)body!["badRequest"]!["message"]);
        }

        Assert.Equal(before, Instances.List(includeDeleted: true).Count);
        Assert.Equal(VolumeStatus.Available, (await Volumes.GetVolumeAsync(blank, CancellationToken.None))!.Status);
        await AssertAttachedOnAsync(owner, used, "compute1");
        Assert.Empty(await AttachmentsAsync(broken));
        await Volumes.UpdateVolumeAsync(broken, v => v with { Status = VolumeStatus.Available }, CancellationToken.None);
    }

    [Fact]
    public async Task Boot_OneVolumeForTwoServers_400()
    {
        var volumeId = await VolumeRequests.CreateAsync(Fixture.Ferry, Ferry.Host.Seed.TestImageId);
        var request = BootFromVolumeRequest(null, volumeId);
        request["server"]!["max_count"] = 2;

        var (status, body) = await Admin.PostAsync("servers", request);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("Cannot attach one or more volumes to multiple instances", (string?)body!["badRequest"]!["message"]);
        Assert.Equal(VolumeStatus.Available, (await Volumes.GetVolumeAsync(volumeId, CancellationToken.None))!.Status);
    }
}
