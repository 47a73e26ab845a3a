using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Ferry.Core.Domain;
using Ferry.Virt;

namespace Ferry.FunctionalTests.Qemu;

/// <summary>
/// Live migration between hosts with local disks: the qcow2 overlay is mirrored over NBD while memory is
/// copied, and the completion policy (post-copy, auto-converge, abort) decides the fate of a guest that dirties
/// memory faster than the bandwidth limit lets pre-copy send it.
/// </summary>
[Collection("qemu")]
[Trait("Requires", "qemu")]
public sealed class QemuBlockMigrationTests(QemuFerryFixture fixture) : QemuFlowTest<QemuFerryFixture>(fixture)
{
    /// <summary>
    /// A guest rewriting its 4 MiB region at 8 MiB/s against a 2 MiB/s link: pre-copy cannot converge
    /// (the working set never fits bandwidth × downtime), so only the policy ends the migration.
    /// </summary>
    private const double HotDirtyMiBps = 8;

    [Fact]
    public async Task LiveMigrate_LocalDisks_MirrorsTheOverlayOntoTheDestinationsOwnBase()
    {
        var id = await BootGuestAsync("compute1", dirtyMiBps: 2);
        var before = await WaitForCounterAsync(id, 0);

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal((MigrationStatus.Completed, "compute2"), (migration.Status, instance.Host));
        await WaitForCounterAsync(id, before + 100, movedAtCounter: 0);
        AssertRunsOnlyOn(id, "compute2");
        Assert.False(Directory.Exists(Qemu("compute1").InstanceDirectory(id)), "the source's copy is gone");
        var backing = await BackingFileAsync(Path.Combine(Qemu("compute2").InstanceDirectory(id), "disk"));
        Assert.StartsWith(Qemu("compute2").BaseDirectory, backing);
    }

    [Fact]
    public async Task LiveMigrate_NonConvergingWithPostCopyPermitted_CompletesThroughPostCopy()
    {
        var id = await BootGuestAsync("compute1", HotDirtyMiBps);
        var before = await WaitForCounterAsync(id, 0);
        using (Policy("compute1", o =>
        {
            o.LiveMigrationBandwidthMiBps = 2;
            o.LiveMigrationPermitPostCopy = true;
            o.LiveMigrationTimeoutAction = CompletionTimeoutAction.ForceComplete;
            o.LiveMigrationCompletionTimeoutSecondsPerGiB = 2;
        }))
        {
            Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
            await WaitForMigrationAsync(id, m => m.Status is MigrationStatus.RunningPostCopy or MigrationStatus.Completed, "post-copy");
            var (instance, migration) = await WaitForMoveEndAsync(id);
            Assert.Equal((MigrationStatus.Completed, "compute2"), (migration.Status, instance.Host));
        }
        await WaitForCounterAsync(id, before + 50, movedAtCounter: 0);
        AssertRunsOnlyOn(id, "compute2");
    }

    [Fact]
    public async Task LiveMigrate_NonConvergingWithAutoConverge_Completes()
    {
        var id = await BootGuestAsync("compute1", HotDirtyMiBps);
        var before = await WaitForCounterAsync(id, 0);
        using (Policy("compute1", o =>
        {
            o.LiveMigrationBandwidthMiBps = 2;
            o.LiveMigrationPermitAutoConverge = true;
        }))
        {
            Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
            var (instance, migration) = await WaitForMoveEndAsync(id);
            Assert.Equal((MigrationStatus.Completed, "compute2"), (migration.Status, instance.Host));
        }
        await WaitForCounterAsync(id, before + 50, movedAtCounter: 0);
        AssertRunsOnlyOn(id, "compute2");
    }

    [Fact]
    public async Task LiveMigrate_NonConvergingWithTimeoutActionAbort_CancelledAndTheGuestStaysOnTheSource()
    {
        var id = await BootGuestAsync("compute1", HotDirtyMiBps);
        using (Policy("compute1", o =>
        {
            o.LiveMigrationBandwidthMiBps = 2;
            o.LiveMigrationTimeoutAction = CompletionTimeoutAction.Abort;
            o.LiveMigrationCompletionTimeoutSecondsPerGiB = 2;
        }))
        {
            Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
            var (instance, migration) = await WaitForMoveEndAsync(id);
            Assert.Equal(("compute1", VmState.Active), (instance.Host, instance.VmState));
            Assert.Contains(migration.Status, new[] { MigrationStatus.Cancelled, MigrationStatus.Error, MigrationStatus.Failed });
        }
        var now = (await SamplesAsync(id, long.MaxValue))[^1].Counter;
        await WaitForCounterAsync(id, now + 50, long.MaxValue);
        AssertRunsOnlyOn(id, "compute1");
        Assert.False(Directory.Exists(Qemu("compute2").InstanceDirectory(id)), "the destination was cleaned");
    }

    [Fact]
    public async Task LiveMigrate_AbortMidway_SourceKeepsRunningAndTheDestinationDiskGoes()
    {
        var id = await BootGuestAsync("compute1", HotDirtyMiBps);
        using (SlowMigrationsFrom("compute1"))
        {
            Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
            var running = await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.Running && m.MemoryProcessed > 0, "copying");
            Assert.Equal(HttpStatusCode.Accepted, (await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}/migrations/{running.Id}")).Status);
            var (instance, migration) = await WaitForMoveEndAsync(id);
            Assert.Equal((MigrationStatus.Cancelled, "compute1"), (migration.Status, instance.Host));
        }
        var now = (await SamplesAsync(id, long.MaxValue))[^1].Counter;
        await WaitForCounterAsync(id, now + 50, long.MaxValue);
        AssertRunsOnlyOn(id, "compute1");
        Assert.False(Directory.Exists(Qemu("compute2").InstanceDirectory(id)), "the destination was cleaned");
    }

    [Fact]
    public async Task LiveMigrate_DestinationDiesDuringTheCopy_RollsBackToTheRunningSource()
    {
        var id = await BootGuestAsync("compute1", HotDirtyMiBps);
        using (SlowMigrationsFrom("compute1"))
        {
            Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
            await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.Running && m.MemoryProcessed > 0, "copying");
            var pid = Qemu("compute2").GetProcessId(id) ?? throw new InvalidOperationException("no incoming QEMU on compute2");
            using (var incoming = Process.GetProcessById(pid))
            {
                incoming.Kill();
            }
            var (instance, _) = await WaitForMoveEndAsync(id);
            Assert.Equal(("compute1", VmState.Active), (instance.Host, instance.VmState));
        }
        var now = (await SamplesAsync(id, long.MaxValue))[^1].Counter;
        await WaitForCounterAsync(id, now + 50, long.MaxValue);
        AssertRunsOnlyOn(id, "compute1");
        Assert.False(Directory.Exists(Qemu("compute2").InstanceDirectory(id)), "the destination was cleaned");
    }

    private static async Task<string> BackingFileAsync(string disk)
    {
        var psi = new ProcessStartInfo("qemu-img") { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var arg in new[] { "info", "-U", "--output=json", disk })
        {
            psi.ArgumentList.Add(arg);
        }
        using var process = Process.Start(psi)!;
        var json = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        using var info = JsonDocument.Parse(json);
        return info.RootElement.GetProperty("backing-filename").GetString() ?? "";
    }
}
