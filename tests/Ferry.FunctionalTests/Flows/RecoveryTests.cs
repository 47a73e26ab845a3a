using System.Net;
using Ferry.Core.Domain;

namespace Ferry.FunctionalTests.Flows;

/// <summary>A compute agent that stops mid-move and comes back must leave nothing stuck (Nova leaves some: §4.6, §10).</summary>
public sealed class RecoveryTests(SlowLinkFixture fixture) : FlowTest<SlowLinkFixture>(fixture)
{
    [Fact]
    public async Task SourceRestart_DuringRunningLiveMigration_RolledBackAndGuestStillOnSource()
    {
        var id = await BootAsync("compute1", metadata: Guests.NonConverging);
        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var running = await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.Running, "running");

        await Fixture.Ferry.Computes["compute1"].StopAsync();
        await Fixture.Ferry.StartComputeAsync("compute1", CancellationToken.None);

        var instance = Instances.Get(id);
        Assert.Equal(("compute1", (TaskState?)null, VmState.Active), (instance.Host, instance.TaskState, instance.VmState));
        Assert.Equal(MigrationStatus.Error, Migrations.Get(running.Uuid).Status);
        Assert.Equal(Virt.GuestPowerState.Running, Driver("compute1").GetGuest(id)!.PowerState);
        Assert.Null(Driver("compute2").GetGuest(id));
    }

    [Fact]
    public async Task SourceRestart_WithQueuedLiveMigration_QueuedOneCancelledToo()
    {
        var first = await BootAsync("compute1", metadata: Guests.NonConverging, name: "first");
        var second = await BootAsync("compute1", name: "second");
        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(first, "compute2"));
        await WaitForMigrationAsync(first, m => m.Status == MigrationStatus.Running, "first running");
        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(second, "compute3"));
        var queued = await WaitForMigrationAsync(second, m => m.Status == MigrationStatus.Queued, "second queued");

        await Fixture.Ferry.Computes["compute1"].StopAsync();
        await Fixture.Ferry.StartComputeAsync("compute1", CancellationToken.None);

        Assert.Null(Instances.Get(second).TaskState);
        Assert.True(MigrationStatus.Final.Contains(Migrations.Get(queued.Uuid).Status));
        Assert.Equal("compute1", Instances.Get(second).Host);
    }
}
