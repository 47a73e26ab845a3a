using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Virt;
using Ferry.Virt.Qemu;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Qemu;

/// <summary>Moves of real QEMU guests between two hosts that share one instances directory.</summary>
[Collection("qemu")]
[Trait("Requires", "qemu")]
public sealed class QemuSharedStorageTests(QemuSharedFerryFixture fixture) : QemuFlowTest<QemuSharedFerryFixture>(fixture)
{
    [Fact]
    public async Task LiveMigrate_RunningGuest_ContinuesOnDestinationWithIntactMemory()
    {
        var id = await BootGuestAsync("compute1", dirtyMiBps: 2);
        var before = await WaitForCounterAsync(id, 0);

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal((MigrationStatus.Completed, "compute2", VmState.Active), (migration.Status, instance.Host, instance.VmState));
        Assert.True(migration.MemoryTotal > 0, "progress from query-migrate reached the migration record");
        await WaitForCounterAsync(id, before + 100, movedAtCounter: before + 1);
        AssertRunsOnlyOn(id, "compute2");
    }

    [Theory]
    [InlineData(false, true)]
    [InlineData(true, false)] // QEMU 7.2 cannot combine multifd with post-copy: post-copy wins
    public async Task LiveMigrate_ParallelConnections_MultifdOnBothEndsUnlessPostCopyIsPermitted(bool permitPostCopy, bool expectMultifd)
    {
        var id = await BootGuestAsync("compute1", dirtyMiBps: 2);
        var before = await WaitForCounterAsync(id, 0);
        using (Policy("compute1", o =>
        {
            o.LiveMigrationParallelConnections = 3;
            o.LiveMigrationPermitPostCopy = permitPostCopy;
        }))
        {
            Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
            AssertMoveEnded(id, await WaitForMoveEndAsync(id), MigrationStatus.Completed, "compute2");
        }
        var capabilities = await Qemu("compute2").ExecuteQmpAsync(id, "query-migrate-capabilities", null, CancellationToken.None);
        Assert.Contains(capabilities.EnumerateArray(), c => c.GetProperty("capability").GetString() == "multifd" && c.GetProperty("state").GetBoolean() == expectMultifd);
        if (expectMultifd)
        {
            var parameters = await Qemu("compute2").ExecuteQmpAsync(id, "query-migrate-parameters", null, CancellationToken.None);
            Assert.Equal(3, parameters.GetProperty("multifd-channels").GetInt32());
        }
        await WaitForCounterAsync(id, before + 50, movedAtCounter: before + 1);
        AssertRunsOnlyOn(id, "compute2");
    }

    /// <summary>
    /// Live-migrates the guest to compute2 over a 4 MiB/s link with post-copy permitted, a 100 ms downtime limit and a 2 s/GiB completion timeout
    /// that force-completes, and returns once the migration is in post-copy; disposing it restores compute1's policy.
    /// </summary>
    private async Task<IDisposable> MigrateIntoPostCopyAsync(string id, long bandwidthMiBps = 4)
    {
        var policy = Policy("compute1", o =>
        {
            o.LiveMigrationBandwidthMiBps = bandwidthMiBps;
            o.LiveMigrationPermitPostCopy = true;
            o.LiveMigrationTimeoutAction = CompletionTimeoutAction.ForceComplete;
            o.LiveMigrationCompletionTimeoutSecondsPerGiB = 2;
            // A short downtime, so pre-copy cannot converge even when a loaded machine slows the guest's writes (a loaded
            // run once saw this migration complete in pre-copy with the 500 ms default).
            o.LiveMigrationDowntimeMs = 100;
        });
        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.RunningPostCopy, "post-copy");
        return policy;
    }

    /// <summary>Waits until the destination QEMU runs the guest (a stream cut before that makes it exit instead of pausing).</summary>
    private async Task WaitUntilDestinationRunsAsync(string id)
    {
        var started = Stopwatch.StartNew();
        while ((await Qemu("compute2").ExecuteQmpAsync(id, "query-status", null, CancellationToken.None)).GetProperty("status").GetString() != "running")
        {
            Assert.True(started.Elapsed < TimeSpan.FromSeconds(30), "the destination never ran the guest");
            await Task.Delay(20);
        }
    }

    private async Task<JsonArray> LiveMigrationEventsAsync(string id)
    {
        var actions = (await Admin.GetAsync($"servers/{id}/os-instance-actions")).Body!["instanceActions"]!.AsArray();
        var move = actions.Single(a => (string?)a!["action"] == "live-migration")!;
        return (await Admin.GetAsync($"servers/{id}/os-instance-actions/{(string?)move["request_id"]}")).Body!["instanceAction"]!["events"]!.AsArray();
    }

    [Fact]
    public async Task LiveMigrate_PostCopyStreamCutByTheNetwork_ResumedAndCompletes()
    {
        var id = await BootGuestAsync("compute1", dirtyMiBps: 8);
        var before = await WaitForCounterAsync(id, 0);
        // 1 MiB/s: the post-copy lasts seconds, so the cut finds pages still to send (at 4 MiB/s CI once cut a stream
        // whose last page had gone, and the move completed with nothing to recover).
        using (await MigrateIntoPostCopyAsync(id, bandwidthMiBps: 1))
        {
            await WaitUntilDestinationRunsAsync(id);
            var source = Qemu("compute1").GetProcessId(id) ?? throw new InvalidOperationException("no source QEMU");
            Assert.True(await CutTcpConnectionsAsync(source) > 0, "no migration connection to cut: post-copy already ended");

            var (instance, migration) = await WaitForMoveEndAsync(id);
            Assert.Equal((MigrationStatus.Completed, "compute2", VmState.Active), (migration.Status, instance.Host, instance.VmState));
        }
        Assert.Contains(await LiveMigrationEventsAsync(id), e => (string?)e!["event"] == "compute_recover_post_copy_at_destination" && (string?)e["result"] == "Success");
        await WaitForCounterAsync(id, before + 50, movedAtCounter: before + 1);
        AssertRunsOnlyOn(id, "compute2");
    }

    [Fact]
    public async Task LiveMigrate_SourceAgentRestartsDuringPostCopy_QemuFinishesAndStartupCompletesTheMove()
    {
        var id = await BootGuestAsync("compute1", dirtyMiBps: 8);
        var before = await WaitForCounterAsync(id, 0);
        using (await MigrateIntoPostCopyAsync(id))
        {
            var source = Qemu("compute1").GetProcessId(id) ?? throw new InvalidOperationException("no source QEMU");

            // The agent goes, its QEMU stays and carries on with the post-copy on its own.
            await Fixture.Ferry.Computes["compute1"].StopAsync();
            Assert.True(QemuProcess.IsAlive(source, id), "the source QEMU died with its agent");
            await Fixture.Ferry.StartComputeAsync("compute1", CancellationToken.None);

            var (instance, migration) = await WaitForMoveEndAsync(id);
            Assert.Equal((MigrationStatus.Completed, "compute2", VmState.Active), (migration.Status, instance.Host, instance.VmState));
        }
        await WaitForCounterAsync(id, before + 50, movedAtCounter: before + 1);
        AssertRunsOnlyOn(id, "compute2");
    }

    /// <summary>
    /// The restarted agent attaches a new monitor to the post-copy QEMU carried on, so a stream that broke while no
    /// monitor watched is resumed as under the first one (before, start-up could only wait for QEMU to finish alone).
    /// </summary>
    [Fact]
    public async Task LiveMigrate_SourceAgentRestartsDuringPostCopyWhoseStreamBroke_ReattachedMonitorResumesIt()
    {
        var id = await BootGuestAsync("compute1", dirtyMiBps: 8);
        var before = await WaitForCounterAsync(id, 0);
        using (await MigrateIntoPostCopyAsync(id, bandwidthMiBps: 1))
        {
            await WaitUntilDestinationRunsAsync(id);
            var source = Qemu("compute1").GetProcessId(id) ?? throw new InvalidOperationException("no source QEMU");
            await Fixture.Ferry.Computes["compute1"].StopAsync();
            // Cut while the agent is down: both QEMUs pause the post-copy, and only a new monitor can resume it.
            Assert.True(await CutTcpConnectionsAsync(source) > 0, "no migration connection to cut: post-copy already ended");
            await Fixture.Ferry.StartComputeAsync("compute1", CancellationToken.None);

            var (instance, migration) = await WaitForMoveEndAsync(id);
            Assert.Equal((MigrationStatus.Completed, "compute2", VmState.Active), (migration.Status, instance.Host, instance.VmState));
        }
        var events = await LiveMigrationEventsAsync(id);
        Assert.Contains(events, e => (string?)e!["event"] == "compute_recover_post_copy_at_destination" && (string?)e["result"] == "Success");
        Assert.All(events.Where(e => (string?)e!["event"] == "compute_live_migration"), e => Assert.Equal("Success", (string?)e!["result"]));
        await WaitForCounterAsync(id, before + 50, movedAtCounter: before + 1);
        AssertRunsOnlyOn(id, "compute2");
    }

    [Fact]
    public async Task LiveMigrate_AbortMidway_GuestKeepsRunningOnSource()
    {
        var id = await BootGuestAsync("compute1", dirtyMiBps: 8);
        using (SlowMigrationsFrom("compute1"))
        {
            Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
            var running = await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.Running && m.MemoryProcessed > 0, "copying");
            var (status, body) = await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}/migrations/{running.Id}");
            Assert.True(status == HttpStatusCode.Accepted, $"abort: {(int)status} {body?.ToJsonString()}");

            var (instance, migration) = await WaitForMoveEndAsync(id);
            Assert.Equal((MigrationStatus.Cancelled, "compute1", VmState.Active), (migration.Status, instance.Host, instance.VmState));
        }
        var now = (await SamplesAsync(id, long.MaxValue))[^1].Counter;
        await WaitForCounterAsync(id, now + 50, long.MaxValue);
        AssertRunsOnlyOn(id, "compute1");
    }

    /// <summary>
    /// The destination QEMU dies after the switch to post-copy: nothing can roll back (the guest's memory is split), the
    /// server goes to ERROR for the operator, and the fault quotes that QEMU's last line and names its log, as a failed start does.
    /// </summary>
    [Fact]
    public async Task LiveMigrate_DestinationQemuDiesAfterPostCopySwitch_ErrorFaultQuotesItsLastLineAndLog()
    {
        var id = await BootGuestAsync("compute1", dirtyMiBps: 8);
        var log = Path.Combine(Qemu("compute2").InstanceDirectory(id), "qemu.log");
        var options = Fixture.Ferry.Computes["compute1"].Options;
        var attempts = options.LiveMigrationPostCopyRecoveryAttempts;
        options.LiveMigrationPostCopyRecoveryAttempts = 2;
        var pid = 0;
        try
        {
            using (await MigrateIntoPostCopyAsync(id, bandwidthMiBps: 1))
            {
                await WaitUntilDestinationRunsAsync(id);
                pid = Qemu("compute2").GetProcessId(id) ?? throw new InvalidOperationException("no incoming QEMU on compute2");
                // SIGTERM makes QEMU say why it stops ("terminating on signal 15 from pid …") before it goes.
                using (var kill = Process.Start(new ProcessStartInfo("kill") { ArgumentList = { "-TERM", pid.ToString(System.Globalization.CultureInfo.InvariantCulture) } })!)
                {
                    await kill.WaitForExitAsync();
                    Assert.Equal(0, kill.ExitCode);
                }

                var (instance, migration) = await WaitForMoveEndAsync(id);
                Assert.Equal((MigrationStatus.Error, VmState.Error), (migration.Status, instance.VmState));
            }
        }
        finally
        {
            options.LiveMigrationPostCopyRecoveryAttempts = attempts;
        }
        var fault = Fixture.Ferry.Services.GetRequiredService<ActionStore>().LatestFault(id) ?? throw new InvalidOperationException($"{id} has no fault");
        var lastLine = File.ReadLines(log).Last(l => l.Trim().Length > 0);
        Assert.Contains("broke during post-copy", fault.Message, StringComparison.Ordinal);
        Assert.Contains($"The last resume failed on compute2: QEMU of {id} on compute2 (pid {pid}) exited on its own", fault.Message, StringComparison.Ordinal);
        Assert.True(fault.Message.EndsWith(lastLine, StringComparison.Ordinal), $"the message does not quote QEMU's last line '{lastLine}': {fault.Message}");
        Assert.Contains($"Last lines of {log}:", fault.Details, StringComparison.Ordinal);
        Assert.Contains("terminating on signal 15", fault.Details, StringComparison.Ordinal);
        Assert.DoesNotContain(" at Ferry.", fault.Details, StringComparison.Ordinal);

        // The operator deletes it: both copies and both claims go (the invariants check the claims after the test).
        Assert.Equal(HttpStatusCode.NoContent, (await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}")).Status);
        await WaitForAsync(id, i => i.VmState == VmState.Deleted, "deleted");
    }

    [Fact]
    public async Task LiveMigrate_DestinationQemuDiesDuringCopy_RollsBackAndSourceKeepsRunning()
    {
        var id = await BootGuestAsync("compute1", dirtyMiBps: 8);
        using (SlowMigrationsFrom("compute1"))
        {
            Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
            await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.Running && m.MemoryProcessed > 0, "copying");
            var pid = Qemu("compute2").GetProcessId(id) ?? throw new InvalidOperationException("no incoming QEMU on compute2");
            using (var incoming = Process.GetProcessById(pid))
            {
                incoming.Kill();
            }

            var (instance, migration) = await WaitForMoveEndAsync(id);
            Assert.Equal(("compute1", VmState.Active), (instance.Host, instance.VmState));
            Assert.Contains(migration.Status, new[] { MigrationStatus.Failed, MigrationStatus.Error });
        }
        var now = (await SamplesAsync(id, long.MaxValue))[^1].Counter;
        await WaitForCounterAsync(id, now + 50, long.MaxValue);
        AssertRunsOnlyOn(id, "compute1");
    }

    [Fact]
    public async Task Evacuate_SharedStorage_RestartsFromTheSameDiskAndTheOldHostKeepsIt()
    {
        var id = await BootGuestAsync("compute1");
        await WaitForCounterAsync(id, 0);
        var disk = Path.Combine(Qemu("compute1").InstanceDirectory(id), "disk");
        var serviceId = await CrashHostAsync("compute1");
        try
        {
            Assert.Equal(HttpStatusCode.OK, (await Admin.ActionAsync(id, JsonNode.Parse("""{"evacuate": {}}""")!)).Status);
            var (instance, migration) = await WaitForMoveEndAsync(id);
            Assert.Equal((MigrationStatus.Done, "compute2", VmState.Active), (migration.Status, instance.Host, instance.VmState));
            Assert.True(File.Exists(disk), "the guest restarted from the shared disk");

            await Fixture.Ferry.StartComputeAsync("compute1", CancellationToken.None);

            Assert.Equal(MigrationStatus.Completed, Migrations.Get(migration.Uuid).Status);
            Assert.Null(Qemu("compute1").GetGuest(id));
            Assert.True(File.Exists(disk), "the returning host must not delete a disk it shares with the new one");
            await WaitForCounterAsync(id, 0);
            AssertRunsOnlyOn(id, "compute2");
        }
        finally
        {
            await RecoverHostAsync("compute1", serviceId);
        }
    }
}
