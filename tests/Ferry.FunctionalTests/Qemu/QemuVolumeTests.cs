using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Core.Volumes;
using Ferry.Virt.Qemu;
using Ferry.Virt.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Qemu;

/// <summary>
/// Volumes on real QEMU hosts: the volume service's qemu-storage-daemon exports the volume over NBD, the guest's QEMU
/// opens it hot-plugged, and a live migration with block migration of the local disks moves the guest while both QEMUs
/// open the one export: what the source wrote, the destination reads, and only the destination's attachment is left.
/// </summary>
[Collection("qemu")]
[Trait("Requires", "qemu")]
public sealed class QemuVolumeTests(QemuFerryFixture fixture) : QemuFlowTest<QemuFerryFixture>(fixture)
{
    private VolumeStore Volumes => Fixture.Ferry.Services.GetRequiredService<VolumeStore>();

    [Fact]
    public async Task AttachWriteLiveMigrate_DestinationReadsWhatTheSourceWrote()
    {
        Assert.IsType<QemuStorageDaemonBackend>(Fixture.Ferry.Services.GetRequiredService<IVolumeBackend>());
        var id = await BootGuestAsync("compute1", dirtyMiBps: 1);
        var before = await WaitForCounterAsync(id, 0);
        var volumeId = await Ferry.FunctionalTests.Volumes.VolumeRequests.CreateAsync(Fixture.Ferry);
        var (status, body) = await Admin.SendAsync(HttpMethod.Post, $"servers/{id}/os-volume_attachments",
            new JsonObject { ["volumeAttachment"] = new JsonObject { ["volumeId"] = volumeId } });
        Assert.True(status == HttpStatusCode.OK, $"{(int)status} {body?.ToJsonString()}");
        await WaitUntilAsync(async () => (await Volumes.GetVolumeAsync(volumeId, CancellationToken.None))?.Status == VolumeStatus.InUse, "volume in-use");
        Assert.Equal(["vol-vdb"], await Qemu("compute1").OpenVolumeNodesAsync(id, CancellationToken.None));
        // Written through the export while the source's QEMU has the volume open (its disk device holds the node's write
        // permission, so a second writer inside that QEMU is refused).
        var connection = (await Volumes.ListAttachmentsAsync(new AttachmentQuery { VolumeIds = [volumeId] }, CancellationToken.None)).Single().ConnectionInfo!;
        var wrote = await RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0xc7 1M 64k", $"nbd://{connection.Host}:{connection.Port}/{connection.Export}");
        Assert.Contains("wrote 65536/65536 bytes", wrote, StringComparison.Ordinal);

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal((MigrationStatus.Completed, "compute2"), (migration.Status, instance.Host));
        await WaitForCounterAsync(id, before + 50, movedAtCounter: 0);
        AssertRunsOnlyOn(id, "compute2");
        Assert.Equal(["vol-vdb"], await Qemu("compute2").OpenVolumeNodesAsync(id, CancellationToken.None));
        var read = await QemuIoAsync("compute2", id, "read -P 0xc7 1M 64k");
        Assert.True(read.Contains("read 65536/65536 bytes", StringComparison.Ordinal) && !read.Contains("Pattern verification failed", StringComparison.Ordinal), read);
        var attachment = Assert.Single(await Volumes.ListAttachmentsAsync(new AttachmentQuery { VolumeIds = [volumeId] }, CancellationToken.None));
        Assert.Equal(("compute2", VolumeAttachStatus.Attached), (attachment.AttachedHost, attachment.AttachStatus));

        (status, _) = await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}/os-volume_attachments/{volumeId}");
        Assert.Equal(HttpStatusCode.Accepted, status);
        await WaitUntilAsync(async () => (await Volumes.GetVolumeAsync(volumeId, CancellationToken.None))?.Status == VolumeStatus.Available, "volume available");
        Assert.Empty(await Qemu("compute2").OpenVolumeNodesAsync(id, CancellationToken.None));
    }

    /// <summary>
    /// Seed 004's guest: booted from a volume (the root disk is the storage daemon's export, /dev/vda) with a config drive.
    /// It live-migrates without a block migration (auto picks it: the root volume is shared, the config drive is written
    /// again on the destination) and back with one; no disk byte is copied, what was written to the root volume is read
    /// on each destination, the guest's memory counter carries on, and the attachment is always the running host's.
    /// </summary>
    [Fact]
    public async Task BootFromVolumeWithConfigDrive_LiveMigratesBothWays_TheRootVolumeIsSharedAndIntact()
    {
        var (id, volumeId) = await BootFromVolumeAsync("seed-004", configDrive: true);
        var before = await WaitForCounterAsync(id, 0);
        Assert.Equal(["vol-vda"], await Qemu("compute1").OpenVolumeNodesAsync(id, CancellationToken.None));
        Assert.False(File.Exists(Path.Combine(Qemu("compute1").InstanceDirectory(id), "disk")), "no local root disk");
        var connection = (await Volumes.ListAttachmentsAsync(new AttachmentQuery { VolumeIds = [volumeId] }, CancellationToken.None)).Single().ConnectionInfo!;
        var wrote = await RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x5e 2M 64k", $"nbd://{connection.Host}:{connection.Port}/{connection.Export}");
        Assert.Contains("wrote 65536/65536 bytes", wrote, StringComparison.Ordinal);

        foreach (var (to, blockMigration) in new[] { ("compute2", (object?)null), ("compute1", true) })
        {
            Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, to, blockMigration));
            var end = await WaitForMoveEndAsync(id);

            AssertMoveEnded(id, end, MigrationStatus.Completed, to);
            Assert.True(end.Migration.DiskTotal is null or 0, $"copied {end.Migration.DiskTotal} disk bytes");
            AssertRunsOnlyOn(id, to);
            Assert.Equal(["vol-vda"], await Qemu(to).OpenVolumeNodesAsync(id, CancellationToken.None));
            Assert.True(File.Exists(Path.Combine(Qemu(to).InstanceDirectory(id), "disk.config")), "the config drive is on the destination");
            var read = await QemuIoAsync(to, id, "read -P 0x5e 2M 64k", "vol-vda");
            Assert.True(read.Contains("read 65536/65536 bytes", StringComparison.Ordinal) && !read.Contains("Pattern verification failed", StringComparison.Ordinal), read);
            var attachment = Assert.Single(await Volumes.ListAttachmentsAsync(new AttachmentQuery { VolumeIds = [volumeId] }, CancellationToken.None));
            Assert.Equal((to, VolumeAttachStatus.Attached), (attachment.AttachedHost, attachment.AttachStatus));
            before = await WaitForCounterAsync(id, before + 20, movedAtCounter: 0);
        }
    }

    [Fact]
    public async Task BootFromVolume_ColdMigrateAndConfirm_TheDestinationBootsTheSameVolume()
    {
        var (id, volumeId) = await BootFromVolumeAsync("bfv-cold", configDrive: false);
        await WaitForCounterAsync(id, 0);

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"migrate": {"host": "compute2"}}""")!)).Status);
        var (resized, migration) = await WaitForMoveEndAsync(id);
        Assert.Equal(("compute2", VmState.Resized, MigrationStatus.Finished), (resized.Host, resized.VmState, migration.Status));
        Assert.Equal(HttpStatusCode.NoContent, (await Admin.ActionAsync(id, JsonNode.Parse("""{"confirmResize": null}""")!)).Status);
        await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after confirm");

        await WaitForCounterAsync(id, 0);
        AssertRunsOnlyOn(id, "compute2");
        Assert.Equal(["vol-vda"], await Qemu("compute2").OpenVolumeNodesAsync(id, CancellationToken.None));
        Assert.False(File.Exists(Path.Combine(Qemu("compute2").InstanceDirectory(id), "disk")), "no local root disk");
        var attachment = Assert.Single(await Volumes.ListAttachmentsAsync(new AttachmentQuery { VolumeIds = [volumeId] }, CancellationToken.None));
        Assert.Equal(("compute2", VolumeAttachStatus.Attached), (attachment.AttachedHost, attachment.AttachStatus));
    }

    /// <summary>Boots the test guest on compute1 from a new volume made from the test image (/dev/vda), with or without a config drive.</summary>
    private async Task<(string Id, string VolumeId)> BootFromVolumeAsync(string name, bool configDrive)
    {
        var volumeId = await Ferry.FunctionalTests.Volumes.VolumeRequests.CreateAsync(Fixture.Ferry, Ferry.Host.Seed.TestImageId);
        var request = JsonNode.Parse($$$"""
            {"server": {"name": "{{{name}}}", "imageRef": "", "flavorRef": "m1.nano", "networks": "none", "config_drive": {{{(configDrive ? "true" : "false")}}},
              "availability_zone": "nova:compute1", "metadata": {"{{{QemuTestGuest.DirtyRateMetadataKey}}}": "1"},
              "block_device_mapping_v2": [{"boot_index": 0, "uuid": "{{{volumeId}}}", "source_type": "volume", "destination_type": "volume"}]}}
            """)!;
        var (status, body) = await Admin.PostAsync("servers", request);
        Assert.True(status == HttpStatusCode.Accepted, $"{(int)status} {body?.ToJsonString()}");
        var id = (string)body!["server"]!["id"]!;
        Track(id);
        await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE");
        return (id, volumeId);
    }

    /// <summary>qemu-io on one of the guest's volume nodes (HMP); its output goes to the guest's qemu.log, read from where it stood.</summary>
    private async Task<string> QemuIoAsync(string host, string id, string command, string node = "vol-vdb")
    {
        var log = Path.Combine(Qemu(host).InstanceDirectory(id), "qemu.log");
        var start = File.Exists(log) ? new FileInfo(log).Length : 0;
        var monitor = (await Qemu(host).ExecuteQmpAsync(id, "human-monitor-command",
            new JsonObject { ["command-line"] = $"qemu-io {node} \"{command}\"" }, CancellationToken.None)).GetString() ?? "";
        await Task.Delay(300);
        await using var stream = new FileStream(log, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        stream.Seek(start, SeekOrigin.Begin);
        return monitor + await new StreamReader(stream).ReadToEndAsync();
    }

    private static async Task<string> RunAsync(string file, params string[] arguments)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        var errors = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return output + errors;
    }

    private async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        var started = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(started.Elapsed < WaitLimit, $"waited {WaitLimit.TotalSeconds:0} s for: {what}");
            await Task.Delay(50);
        }
    }
}
