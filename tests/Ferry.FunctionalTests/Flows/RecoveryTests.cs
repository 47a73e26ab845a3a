using System.Net;
using Ferry.Core.Domain;
using Ferry.Core.Rpc;
using Ferry.Host;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Flows;

/// <summary>A slow link, and calls to a dead host give up after 2 s.</summary>
public sealed class SlowLinkShortCallsFixture : SlowLinkFixture
{
    protected override void Configure(AllInOne ferry)
    {
        base.Configure(ferry);
        ferry.Services.GetRequiredService<RpcOptions>().CallTimeout = TimeSpan.FromSeconds(2);
    }
}

/// <summary>A compute agent that stops mid-move and comes back must leave nothing stuck (Nova leaves some: §4.6, §10).</summary>
public sealed class RecoveryTests(SlowLinkShortCallsFixture fixture) : FlowTest<SlowLinkShortCallsFixture>(fixture)
{
    [Fact]
    public async Task DestinationDies_DuringCopy_SourceKeepsGuestAndDestinationCleanedOnReturn()
    {
        var id = await BootAsync("compute1", metadata: Guests.NonConverging);
        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.Running, "running");

        await Fixture.Ferry.Computes["compute2"].StopAsync();
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.True(migration.Status is MigrationStatus.Cancelled or MigrationStatus.Failed, migration.Status);
        Assert.Equal(("compute1", VmState.Active), (instance.Host, instance.VmState));
        Assert.Equal(Virt.GuestPowerState.Running, Driver("compute1").GetGuest(id)!.PowerState);

        await Fixture.Ferry.StartComputeAsync("compute2", CancellationToken.None);
        Assert.Null(Driver("compute2").GetGuest(id));
    }

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

public sealed class ResizeRecoveryTests(FerryFixture fixture) : FlowTest<FerryFixture>(fixture)
{
    [Fact]
    public async Task DestinationRestart_DuringFinishResize_InstanceBackOnSourceRunning()
    {
        var id = await BootAsync("compute1");
        Driver("compute2").Faults.Delay(Virt.Fake.FakeSteps.FinishMigration, TimeSpan.FromSeconds(30));

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, System.Text.Json.Nodes.JsonNode.Parse("""{"migrate": {"host": "compute2"}}""")!)).Status);
        await WaitForAsync(id, i => i.TaskState == TaskState.ResizeFinish, "resize_finish");
        await Fixture.Ferry.Computes["compute2"].StopAsync();
        Driver("compute2").Faults.Clear();
        await Fixture.Ferry.StartComputeAsync("compute2", CancellationToken.None);

        var instance = await WaitForAsync(id, i => i.TaskState is null && i.Host == "compute1", "back on the source");
        Assert.Equal(VmState.Active, instance.VmState);
        Assert.Equal(MigrationStatus.Error, Migrations.List(new(InstanceUuid: id))[0].Status);
        Assert.Equal(Virt.GuestPowerState.Running, Driver("compute1").GetGuest(id)!.PowerState);
        Assert.Null(Driver("compute2").GetGuest(id));
    }
}
