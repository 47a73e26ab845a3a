using System.Net;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Core.Rpc;
using Ferry.Host;
using Ferry.Host.Messaging;
using Ferry.Tests.Shared;
using Ferry.Virt.Fake;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Flows;

/// <summary>The all-in-one with RabbitMQ as its bus: a private broker node, and an exchange of its own.</summary>
public sealed class RabbitMqFerryFixture : FerryFixture, IAsyncLifetime
{
    public RabbitMqServer Broker { get; } = new();

    protected override void Configure(FerryHostOptions options)
    {
        options.RabbitMq = new RabbitMqOptions
        {
            Url = Broker.Url,
            Exchange = $"ferry-flow-{Guid.NewGuid():N}",
            RecoveryInterval = TimeSpan.FromMilliseconds(500),
            // Long enough for a broker restart (stop + start takes seconds here): a step waits for it instead of failing.
            UnavailableWait = TimeSpan.FromSeconds(30),
        };
        // A guest's memory takes seconds to copy, so a broker restart can land in the middle of a live migration.
        options.FakeTimeScale = 1;
        options.FakeBandwidthMiBps = 128;
    }

    async Task IAsyncLifetime.InitializeAsync()
    {
        await Broker.InitializeAsync();
        await InitializeAsync();
    }

    async Task IAsyncLifetime.DisposeAsync()
    {
        await DisposeAsync();
        await Broker.DisposeAsync();
    }
}

public sealed class RabbitMqFlowTests(RabbitMqFerryFixture fixture) : FlowTest<RabbitMqFerryFixture>(fixture)
{
    protected override TimeSpan WaitLimit => TimeSpan.FromSeconds(60);

    [Fact]
    public void Transport_IsRabbitMq()
    {
        Assert.IsType<RabbitMqTransport>(Fixture.Ferry.Services.GetRequiredService<IRpcTransport>());
    }

    [Fact]
    public async Task LiveMigrate_OverRabbitMq_RunsOnDestination()
    {
        var id = await BootAsync("compute1");

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal(("compute2", VmState.Active, MigrationStatus.Completed), (instance.Host, instance.VmState, migration.Status));
        Assert.Null(Driver("compute1").GetGuest(id));
    }

    [Fact]
    public async Task MigrateAndConfirm_OverRabbitMq_RunsOnDestination()
    {
        var id = await BootAsync("compute1");

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, new JsonObject { ["migrate"] = new JsonObject { ["host"] = "compute3" } })).Status);
        var (resized, migration) = await WaitForMoveEndAsync(id);
        Assert.Equal(("compute3", VmState.Resized, MigrationStatus.Finished), (resized.Host, resized.VmState, migration.Status));
        Assert.Equal(HttpStatusCode.NoContent, (await Admin.ActionAsync(id, JsonNode.Parse("""{"confirmResize": null}""")!)).Status);

        await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.Confirmed, "confirmed");
        var confirmed = await WaitForAsync(id, i => i.VmState == VmState.Active, "ACTIVE after confirm");
        Assert.Equal("compute3", confirmed.Host);
        Assert.Null(Driver("compute1").GetGuest(id));
    }

    [Fact]
    public async Task LiveMigrate_BrokerRestartedMidMove_MoveCompletesOnce()
    {
        var id = await BootAsync("compute2");
        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute1"));
        await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.Running, "running");

        await Fixture.Broker.StopAsync();
        // The broker went down with the guest's memory still being copied: the move's remaining steps need the bus.
        Assert.Equal(MigrationStatus.Running, Migrations.List(new MigrationFilter(InstanceUuid: id)).First().Status);
        await Fixture.Broker.StartAsync();
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal(("compute1", VmState.Active, MigrationStatus.Completed), (instance.Host, instance.VmState, migration.Status));
        Assert.Null(Driver("compute2").GetGuest(id));
        Assert.Equal(Virt.GuestPowerState.Running, Driver("compute1").GetGuest(id)!.PowerState);
    }

    [Fact]
    public async Task MigrateAndConfirm_BrokerRestartedMidMove_MoveFinishesOnce()
    {
        var id = await BootAsync("compute3");
        // The source holds the copy of the disk long enough for the broker to go down around it.
        Driver("compute3").Faults.Delay(FakeSteps.MigrateDiskAndPowerOff, TimeSpan.FromSeconds(4));
        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, new JsonObject { ["migrate"] = new JsonObject { ["host"] = "compute2" } })).Status);
        await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.Migrating, "migrating");

        await Fixture.Broker.StopAsync();
        Assert.Equal(MigrationStatus.Migrating, Migrations.List(new MigrationFilter(InstanceUuid: id)).First().Status);
        await Fixture.Broker.StartAsync();
        var (resized, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal(("compute2", VmState.Resized, MigrationStatus.Finished), (resized.Host, resized.VmState, migration.Status));
        Assert.Equal(HttpStatusCode.NoContent, (await Admin.ActionAsync(id, JsonNode.Parse("""{"confirmResize": null}""")!)).Status);
        await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.Confirmed, "confirmed");
        var confirmed = await WaitForAsync(id, i => i.VmState == VmState.Active, "ACTIVE after confirm");
        Assert.Equal("compute2", confirmed.Host);
        Assert.Null(Driver("compute3").GetGuest(id));
        Assert.Equal(Virt.GuestPowerState.Running, Driver("compute2").GetGuest(id)!.PowerState);
    }
}
