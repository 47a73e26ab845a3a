using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Core.Volumes;
using Ferry.Virt.Fake;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Volumes;

/// <summary>What the volume flow tests read: the volume service's store and each fake host's volume connections.</summary>
public abstract class VolumeFlowTest(FerryFixture fixture) : FlowTest<FerryFixture>(fixture)
{
    protected VolumeStore Volumes => Fixture.Ferry.Services.GetRequiredService<VolumeStore>();

    /// <summary>
    /// Boots a server from a volume as <c>openstack server create --volume</c> sends it (imageRef "", the volume at boot
    /// index 0), or, with <paramref name="volumeSize"/>, from a new volume made from the test image as <c>--image …
    /// --boot-from-volume</c> sends it; waits for ACTIVE.
    /// </summary>
    protected async Task<string> BootFromVolumeAsync(string host, string? volumeId = null, int? volumeSize = null, bool deleteOnTermination = false,
        bool configDrive = false, string flavor = "m1.tiny")
    {
        var (status, body) = await Admin.PostAsync("servers", BootFromVolumeRequest(host, volumeId, volumeSize, deleteOnTermination, configDrive, flavor));
        Assert.True(status == HttpStatusCode.Accepted, $"boot: {(int)status} {body?.ToJsonString()}");
        var id = body!["server"]!["id"]!.GetValue<string>();
        await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after boot");
        return id;
    }

    protected static JsonObject BootFromVolumeRequest(string? host, string? volumeId, int? volumeSize = null, bool deleteOnTermination = false,
        bool configDrive = false, string flavor = "m1.tiny")
    {
        var mapping = volumeId is not null
            ? new JsonObject { ["uuid"] = volumeId, ["boot_index"] = 0, ["source_type"] = "volume", ["destination_type"] = "volume" }
            : new JsonObject
            {
                ["uuid"] = Ferry.Host.Seed.TestImageId, ["boot_index"] = 0, ["source_type"] = "image", ["destination_type"] = "volume",
                ["volume_size"] = volumeSize, ["delete_on_termination"] = deleteOnTermination,
            };
        var server = new JsonObject
        {
            ["name"] = "bfv",
            ["imageRef"] = "",
            ["flavorRef"] = flavor,
            ["networks"] = "none",
            ["config_drive"] = configDrive,
            ["block_device_mapping_v2"] = new JsonArray(mapping),
        };
        if (host is not null)
        {
            server["availability_zone"] = $"nova:{host}";
        }
        return new JsonObject { ["server"] = server };
    }

    /// <summary>The server's root volume (boot index 0).</summary>
    protected string RootVolumeOf(string server) => Instances.Get(server).BlockDevices.Single(b => b.BootIndex == 0).VolumeId;

    /// <summary>One attachment of the volume, the server's, attached from <paramref name="host"/>, whose fake driver holds the connection.</summary>
    protected async Task AssertAttachedOnAsync(string server, string volumeId, string host)
    {
        var attachment = Assert.Single(await AttachmentsAsync(volumeId));
        Assert.Equal((host, VolumeAttachStatus.Attached, server), (attachment.AttachedHost, attachment.AttachStatus, attachment.InstanceUuid));
        var instance = Instances.Get(server);
        Assert.Equal((attachment.Id, host), (instance.BlockDevices.Single(b => b.VolumeId == volumeId).AttachmentId, instance.Host));
        Assert.Contains(volumeId, Connections(host, server).Select(c => c.VolumeId));
        Assert.Equal(VolumeStatus.InUse, (await Volumes.GetVolumeAsync(volumeId, CancellationToken.None))!.Status);
    }

    protected Task<List<VolumeAttachment>> AttachmentsAsync(string volumeId) =>
        Volumes.ListAttachmentsAsync(new AttachmentQuery { VolumeIds = [volumeId] }, CancellationToken.None);

    /// <summary>The volume connections the host holds for this server (servers of other tests of the class live on).</summary>
    protected List<FakeVolumeConnection> Connections(string host, string server) => [.. Driver(host).VolumeConnections().Where(c => c.GuestUuid == server)];

    protected async Task<Volume> WaitForVolumeAsync(string id, string status)
    {
        Volume? volume = null;
        await WaitUntilAsync(async () => (volume = await Volumes.GetVolumeAsync(id, CancellationToken.None))?.Status == status, $"volume {id} {status}");
        return volume!;
    }

    protected Task WaitUntilAsync(Func<bool> condition, string what) => WaitUntilAsync(() => Task.FromResult(condition()), what);

    protected async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        var started = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(started.Elapsed < WaitLimit, $"waited {WaitLimit.TotalSeconds:0} s for: {what}");
            await Task.Delay(25);
        }
    }
}
