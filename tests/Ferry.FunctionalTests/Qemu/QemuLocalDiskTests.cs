using System.Net;
using System.Text.Json.Nodes;
using Ferry.Core.Domain;

namespace Ferry.FunctionalTests.Qemu;

/// <summary>Moves of real QEMU guests between two hosts, each with its own local instances directory.</summary>
[Collection("qemu")]
[Trait("Requires", "qemu")]
public sealed class QemuLocalDiskTests(QemuFerryFixture fixture) : QemuFlowTest<QemuFerryFixture>(fixture)
{
    /// <summary>The check after every QEMU test sees a QEMU host's files: a directory or definition the database does not account for fails it.</summary>
    [Fact]
    public void Invariants_StrayDirectoryOrDefinitionOnAQemuHost_CheckFails()
    {
        var stray = Guid.NewGuid().ToString();
        var directory = Qemu("compute2").InstanceDirectory(stray);
        var definition = Qemu("compute2").RuntimeDirectory(stray);
        try
        {
            Directory.CreateDirectory(directory);
            var files = Assert.ThrowsAny<Exception>(() => Invariants.AssertFilesMatch(Fixture.Ferry));
            Assert.Contains($"not in the database [{stray}]", files.Message);
            Directory.Delete(directory);
            Directory.CreateDirectory(definition);
            var guests = Assert.ThrowsAny<Exception>(() => Invariants.AssertGuestsMatch(Fixture.Ferry));
            Assert.Contains($"compute2 defines guest {stray}", guests.Message);
        }
        finally
        {
            foreach (var path in new[] { directory, definition }.Where(Directory.Exists))
            {
                Directory.Delete(path, recursive: true);
            }
        }
    }

    [Fact]
    public async Task Evacuate_LocalDisks_RebuildsFromTheImageAndTheOldHostDestroysItsCopy()
    {
        var id = await BootGuestAsync("compute1");
        await WaitForCounterAsync(id, 0);
        var oldDirectory = Qemu("compute1").InstanceDirectory(id);
        var serviceId = await CrashHostAsync("compute1");
        try
        {
            Assert.Equal(HttpStatusCode.OK, (await Admin.ActionAsync(id, JsonNode.Parse("""{"evacuate": {}}""")!)).Status);
            var (instance, migration) = await WaitForMoveEndAsync(id);
            Assert.Equal((MigrationStatus.Done, "compute2", VmState.Active), (migration.Status, instance.Host, instance.VmState));
            Assert.True(Directory.Exists(oldDirectory), "the dead host's files stay until it comes back");

            await Fixture.Ferry.StartComputeAsync("compute1", CancellationToken.None);

            Assert.Equal(MigrationStatus.Completed, Migrations.Get(migration.Uuid).Status);
            Assert.Null(Qemu("compute1").GetGuest(id));
            Assert.False(Directory.Exists(oldDirectory), "the returning host destroyed its stale copy");
            await WaitForCounterAsync(id, 0);
            AssertRunsOnlyOn(id, "compute2");
        }
        finally
        {
            await RecoverHostAsync("compute1", serviceId);
        }
    }

    [Fact]
    public async Task ColdMigrate_ThenConfirm_GuestBootsOnDestinationAndTheKeptCopyGoes()
    {
        var id = await BootGuestAsync("compute1");
        await WaitForCounterAsync(id, 0);

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"migrate": {"host": "compute2"}}""")!)).Status);
        var (resized, migration) = await WaitForMoveEndAsync(id);
        Assert.Equal(("compute2", VmState.Resized, MigrationStatus.Finished), (resized.Host, resized.VmState, migration.Status));
        Assert.Null(Qemu("compute1").GetProcessId(id));
        Assert.True(Directory.Exists(Qemu("compute1").ResizeDirectory(id)), "the source keeps its copy until confirm");
        Assert.NotNull(Qemu("compute2").GetProcessId(id));

        Assert.Equal(HttpStatusCode.NoContent, (await Admin.ActionAsync(id, JsonNode.Parse("""{"confirmResize": null}""")!)).Status);
        await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.Confirmed, "confirmed");
        await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after confirm");

        Assert.False(Directory.Exists(Qemu("compute1").ResizeDirectory(id)), "confirm deleted the kept copy");
        await WaitForCounterAsync(id, 0);
        AssertRunsOnlyOn(id, "compute2");
    }

    [Fact]
    public async Task Resize_ThenRevert_DestinationRanTheNewSizeAndTheSourceCopyComesBack()
    {
        var id = await BootGuestAsync("compute1");
        await WaitForCounterAsync(id, 0);

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"resize": {"flavorRef": "1"}}""")!)).Status);
        var (resized, _) = await WaitForMoveEndAsync(id);
        Assert.Equal(("compute2", VmState.Resized), (resized.Host, resized.VmState));
        Assert.Equal(512L << 20, await BaseMemoryBytesAsync("compute2", id));

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"revertResize": null}""")!)).Status);
        await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.Reverted, "reverted");
        var reverted = await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after revert");

        Assert.Equal(("compute1", 64), (reverted.Host, reverted.Flavor.MemoryMb));
        Assert.Equal(64L << 20, await BaseMemoryBytesAsync("compute1", id));
        Assert.False(Directory.Exists(Qemu("compute2").InstanceDirectory(id)), "the destination's copy is gone");
        await WaitForCounterAsync(id, 0);
        AssertRunsOnlyOn(id, "compute1");
    }

    private async Task<long> BaseMemoryBytesAsync(string host, string id)
    {
        var summary = await Qemu(host).ExecuteQmpAsync(id, "query-memory-size-summary", null, CancellationToken.None);
        return summary.GetProperty("base-memory").GetInt64();
    }

    [Fact]
    public async Task HostRestart_AfterItsGuestDied_ServerIsShutoffAndStartBootsItFromItsDisk()
    {
        var id = await BootGuestAsync("compute2");
        await WaitForCounterAsync(id, 0);
        var serviceId = await CrashHostAsync("compute2");
        try
        {
            await RecoverHostAsync("compute2", serviceId);

            var stopped = await WaitForAsync(id, i => i.VmState == VmState.Stopped, "SHUTOFF after the host came back without its guest");
            Assert.Equal((PowerState.Shutdown, "compute2"), (stopped.PowerState, stopped.Host));
            var linesBefore = (await SamplesAsync(id)).Count;
            Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"os-start": null}""")!)).Status);
            await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after start");
            // The log appends: the fresh boot's lines follow the old ones and count from 0 again.
            var deadline = DateTime.UtcNow + WaitLimit;
            IReadOnlyList<Virt.Qemu.QemuTestGuest.Sample> samples;
            while ((samples = await SamplesAsync(id)).Count < linesBefore + 3 || samples[^1].Counter <= samples[linesBefore].Counter)
            {
                Assert.True(DateTime.UtcNow < deadline, $"the restarted guest printed {samples.Count - linesBefore} lines");
                await Task.Delay(250);
            }
            Assert.True(samples[linesBefore].Counter < 100, "a fresh boot");
            AssertRunsOnlyOn(id, "compute2");
        }
        finally
        {
            await RecoverHostAsync("compute2", serviceId);
        }
    }

    [Fact]
    public async Task GuestQemuKilled_ServerIsShutoffAtOnceAndStartBootsItAgain()
    {
        // The periodic sync runs every 600 s: within the wait only the driver's event (its QEMU exited) can stop the server.
        var id = await BootGuestAsync("compute1");
        await WaitForCounterAsync(id, 0);
        var pid = Qemu("compute1").GetProcessId(id) ?? throw new InvalidOperationException("the guest has no QEMU process");

        using (var qemu = System.Diagnostics.Process.GetProcessById(pid))
        {
            qemu.Kill();
        }

        var stopped = await WaitForAsync(id, i => i.VmState == VmState.Stopped, "SHUTOFF after its QEMU was killed");
        Assert.Equal((PowerState.Shutdown, "compute1", (TaskState?)null), (stopped.PowerState, stopped.Host, stopped.TaskState));
        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"os-start": null}""")!)).Status);
        await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after start");
        Assert.NotEqual(pid, Qemu("compute1").GetProcessId(id));
        AssertRunsOnlyOn(id, "compute1");
    }

    [Fact]
    public async Task HardReboot_ResetsTheGuestInItsOwnProcess()
    {
        var id = await BootGuestAsync("compute1");
        await WaitForCounterAsync(id, 150);
        var pid = Qemu("compute1").GetProcessId(id);
        var linesBefore = (await SamplesAsync(id)).Count;

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"reboot": {"type": "HARD"}}""")!)).Status);
        await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after reboot");

        var deadline = DateTime.UtcNow + WaitLimit;
        IReadOnlyList<Virt.Qemu.QemuTestGuest.Sample> samples;
        while ((samples = await SamplesAsync(id)).Count < linesBefore + 2 || samples.Skip(linesBefore).All(s => s.Counter >= 150))
        {
            Assert.True(DateTime.UtcNow < deadline, "no fresh boot in the console after the reboot");
            await Task.Delay(250);
        }
        Assert.Equal(pid, Qemu("compute1").GetProcessId(id));
        AssertRunsOnlyOn(id, "compute1");
    }

    [Fact]
    public async Task Boot_AnImageUploadedToTheImageService_BootsFromItsDisk()
    {
        // tools/test-guest/build.sh also builds a 512-byte boot sector that prints one line: a real disk image.
        var bytes = await File.ReadAllBytesAsync(Path.Combine(Path.GetDirectoryName(Fixture.Ferry.Options.TestGuestKernelPath)!, "ferry-disk-guest.img"));
        using var glance = new HttpClient { BaseAddress = new Uri(Fixture.Ferry.Options.ImageUrl + "/") };
        glance.DefaultRequestHeaders.Add("X-Auth-Token", "admin:admin"); // noauth2 still wants a token
        using var created = await glance.PostAsync("v2/images", new StringContent(
            """{"name": "disk-guest", "disk_format": "raw", "container_format": "bare"}""", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var imageId = JsonNode.Parse(await created.Content.ReadAsStringAsync())!["id"]!.GetValue<string>();
        using var data = new ByteArrayContent(bytes);
        data.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/octet-stream");
        Assert.Equal(HttpStatusCode.NoContent, (await glance.PutAsync($"v2/images/{imageId}/file", data)).StatusCode);

        var (status, body) = await Admin.PostAsync("servers", JsonNode.Parse($$$"""
            {"server": {"name": "from-disk", "imageRef": "{{{imageId}}}", "flavorRef": "m1.nano", "networks": "none", "availability_zone": "nova:compute1"}}
            """));
        Assert.Equal(HttpStatusCode.Accepted, status);
        var id = body!["server"]!["id"]!.GetValue<string>();
        Track(id);
        await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE");

        var deadline = DateTime.UtcNow + WaitLimit;
        string output;
        do
        {
            await Task.Delay(250);
            output = (await Admin.ActionAsync(id, JsonNode.Parse("""{"os-getConsoleOutput": {}}""")!)).Body!["output"]!.GetValue<string>();
            Assert.True(DateTime.UtcNow < deadline, $"no boot line from the disk: '{output}'");
        }
        while (!output.Contains("ferry-disk-guest booted from its disk", StringComparison.Ordinal));
        var baseImage = Path.Combine(Qemu("compute1").BaseDirectory,
            Convert.ToHexStringLower(System.Security.Cryptography.SHA1.HashData(System.Text.Encoding.UTF8.GetBytes(imageId))));
        Assert.Equal(bytes, await File.ReadAllBytesAsync(baseImage));
        AssertRunsOnlyOn(id, "compute1");
    }
}
