using System.Net;
using System.Text.Json.Nodes;
using Ferry.Core.Domain;
using Ferry.Virt;

namespace Ferry.FunctionalTests.Qemu;

/// <summary>pause/unpause (QMP stop/cont) and suspend/resume (managed save to a file) of a real QEMU guest.</summary>
[Collection("qemu")]
[Trait("Requires", "qemu")]
public sealed class QemuPowerTests(QemuFerryFixture fixture) : QemuFlowTest<QemuFerryFixture>(fixture)
{
    private async Task ActAsync(string id, string action)
    {
        var (status, body) = await Admin.ActionAsync(id, JsonNode.Parse($$"""{"{{action}}": null}""")!);
        Assert.True(status == HttpStatusCode.Accepted, $"{action}: {(int)status} {body?.ToJsonString()}");
    }

    [Fact]
    public async Task PauseUnpauseSuspendResume_CounterStopsAndGoesOnFromWhereItWas_MemoryIntact()
    {
        var id = await BootGuestAsync("compute1");
        await WaitForCounterAsync(id, 0);

        await ActAsync(id, "pause");
        await WaitForAsync(id, i => i.VmState == VmState.Paused && i.TaskState is null, "PAUSED");
        Assert.Equal(GuestPowerState.Paused, await Qemu("compute1").QueryPowerStateAsync(id, CancellationToken.None));
        var frozen = (await SamplesAsync(id))[^1].Counter;
        await Task.Delay(TimeSpan.FromSeconds(1.5)); // a running guest prints several lines in this time
        Assert.Equal(frozen, (await SamplesAsync(id))[^1].Counter);

        await ActAsync(id, "unpause");
        await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after unpause");
        var beforeSuspend = await WaitForCounterAsync(id, frozen);

        await ActAsync(id, "suspend");
        var suspended = await WaitForAsync(id, i => i.VmState == VmState.Suspended && i.TaskState is null, "SUSPENDED");
        Assert.Equal(PowerState.Suspended, suspended.PowerState);
        Assert.Null(Qemu("compute1").GetProcessId(id));
        Assert.True(File.Exists(Qemu("compute1").ManagedSavePath(id)), "the saved state is on the host");
        var saved = await SamplesAsync(id);
        var lastSaved = saved[^1].Counter;
        Assert.True(lastSaved >= beforeSuspend);

        await ActAsync(id, "resume");
        var resumed = await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after resume");
        Assert.Equal(PowerState.Running, resumed.PowerState);
        await WaitForCounterAsync(id, lastSaved);
        // Resumed, not rebooted: every line after the save continues the count (and CheckIntegrity checked each checksum).
        var after = (await SamplesAsync(id)).Skip(saved.Count).ToList();
        Assert.NotEmpty(after);
        Assert.All(after, s => Assert.True(s.Counter > lastSaved, $"counter {s.Counter} after resume, {lastSaved} when saved"));
        Assert.False(File.Exists(Qemu("compute1").ManagedSavePath(id)), "the saved state goes once resumed");
        AssertRunsOnlyOn(id, "compute1");
    }

    [Fact]
    public async Task Paused_LiveMigratesAndStaysPaused_UnpauseGoesOnFromWhereItStopped()
    {
        var id = await BootGuestAsync("compute1");
        await WaitForCounterAsync(id, 0);
        await ActAsync(id, "pause");
        await WaitForAsync(id, i => i.VmState == VmState.Paused && i.TaskState is null, "PAUSED");
        var frozen = (await SamplesAsync(id))[^1].Counter;

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var (moved, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal((MigrationStatus.Completed, "compute2", VmState.Paused, PowerState.Paused), (migration.Status, moved.Host, moved.VmState, moved.PowerState));
        Assert.Equal(GuestPowerState.Paused, await Qemu("compute2").QueryPowerStateAsync(id, CancellationToken.None));
        AssertRunsOnlyOn(id, "compute2");
        await ActAsync(id, "unpause");
        await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after unpause on compute2");
        await WaitForCounterAsync(id, frozen, movedAtCounter: 0);
        // The destination's first line continues the count: the guest was moved, not booted again.
        Assert.True((await SamplesAsync(id, movedAtCounter: 0))[0].Counter > frozen);
    }
}
