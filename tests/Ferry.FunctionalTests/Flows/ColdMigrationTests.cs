using System.Net;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Placement;
using Ferry.Core.Domain;
using Ferry.Virt.Fake;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Flows;

public sealed class ColdMigrationTests(FerryFixture fixture) : FlowTest<FerryFixture>(fixture)
{
    private static JsonNode Migrate(string? host) => new JsonObject { ["migrate"] = host is null ? null : new JsonObject { ["host"] = host } };

    [Fact]
    public async Task Migrate_ThenConfirm_SourceReleasedAndServerActive()
    {
        var id = await BootAsync("compute1");

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, Migrate("compute2"))).Status);
        var (resized, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal(("compute2", VmState.Resized, MigrationStatus.Finished), (resized.Host, resized.VmState, migration.Status));
        Assert.Equal("VERIFY_RESIZE", (await Admin.GetServerAsync(id))["status"]!.GetValue<string>());
        // During VERIFY_RESIZE the migration holds the source and the instance the destination.
        var placement = Fixture.Ferry.Services.GetRequiredService<IPlacementService>();
        Assert.Single(placement.GetAllocations(migration.Uuid).Allocations);
        Assert.Single(placement.GetAllocations(id).Allocations);

        Assert.Equal(HttpStatusCode.NoContent, (await Admin.ActionAsync(id, JsonNode.Parse("""{"confirmResize": null}""")!)).Status);
        await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.Confirmed, "confirmed");
        var confirmed = await WaitForAsync(id, i => i.VmState == VmState.Active, "ACTIVE after confirm");

        Assert.Equal("compute2", confirmed.Host);
        Assert.Empty(placement.GetAllocations(migration.Uuid).Allocations);
        Assert.Null(Driver("compute1").GetGuest(id));
    }

    [Fact]
    public async Task Migrate_ThenRevert_BackOnSource()
    {
        var id = await BootAsync("compute1");
        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, Migrate("compute2"))).Status);
        await WaitForMoveEndAsync(id);

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"revertResize": null}""")!)).Status);
        var migration = await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.Reverted, "reverted");
        var reverted = await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after revert");

        Assert.Equal("compute1", reverted.Host);
        Assert.Equal(Virt.GuestPowerState.Running, Driver("compute1").GetGuest(id)!.PowerState);
        Assert.Null(Driver("compute2").GetGuest(id));
        Assert.Equal(MigrationType.Migration, migration.MigrationType);
    }

    [Fact]
    public async Task Resize_ThenConfirm_NewFlavorAndAllocations()
    {
        var id = await BootAsync("compute1", flavor: "m1.tiny");

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"resize": {"flavorRef": "2"}}""")!)).Status);
        var (resized, migration) = await WaitForMoveEndAsync(id);
        Assert.Equal((VmState.Resized, MigrationType.Resize), (resized.VmState, migration.MigrationType));
        Assert.Equal("m1.small", resized.Flavor.Name);

        Assert.Equal(HttpStatusCode.NoContent, (await Admin.ActionAsync(id, JsonNode.Parse("""{"confirmResize": null}""")!)).Status);
        var confirmed = await WaitForAsync(id, i => i.VmState == VmState.Active, "ACTIVE after confirm");
        Assert.Equal(2048, confirmed.Flavor.MemoryMb);
    }

    [Fact]
    public async Task Resize_ToSameFlavor_Is400AndChangesNothing()
    {
        var id = await BootAsync("compute1", flavor: "m1.tiny");

        var (status, body) = await Admin.ActionAsync(id, JsonNode.Parse("""{"resize": {"flavorRef": "1"}}""")!);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.NotNull(body!["badRequest"]);
        Assert.Empty(Migrations.List(new(InstanceUuid: id)));
    }

    [Fact]
    public async Task Migrate_NoOtherHostFits_NoValidHostAndRollback()
    {
        var id = await BootAsync("compute1", flavor: "m1.medium");
        Driver("compute1");
        // Disable both other hosts: nowhere to go.
        var services = (await Admin.GetAsync("os-services?binary=nova-compute")).Body!["services"]!.AsArray();
        var others = services.Where(s => s!["host"]!.GetValue<string>() != "compute1").Select(s => s!["id"]!.GetValue<string>()).ToList();
        foreach (var other in others)
        {
            await Admin.SendAsync(HttpMethod.Put, $"os-services/{other}", JsonNode.Parse("""{"status": "disabled"}"""));
        }
        try
        {
            Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, Migrate(null))).Status);
            var (instance, migration) = await WaitForMoveEndAsync(id);
            Assert.Equal((MigrationStatus.Error, VmState.Active, "compute1"), (migration.Status, instance.VmState, instance.Host));
            Assert.Contains("No valid host", LastFault(id));
        }
        finally
        {
            foreach (var other in others)
            {
                await Admin.SendAsync(HttpMethod.Put, $"os-services/{other}", JsonNode.Parse("""{"status": "enabled"}"""));
            }
        }
    }

    [Theory]
    [InlineData("compute1", FakeSteps.MigrateDiskAndPowerOff)]
    [InlineData("compute2", FakeSteps.FinishMigration)]
    public async Task Migrate_FailureInjectedAtStep_ServerBackOnSourceRunning(string host, string step)
    {
        var id = await BootAsync("compute1");
        Driver(host).Faults.FailNext(step);

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, Migrate("compute2"))).Status);
        var migration = await WaitForMigrationAsync(id, m => MigrationStatus.Final.Contains(m.Status), "migration final");
        var instance = await WaitForAsync(id, i => i.TaskState is null && i.Host == "compute1" && i.VmState == VmState.Active, "back on source");

        Assert.Equal(MigrationStatus.Error, migration.Status);
        Assert.Equal(Virt.GuestPowerState.Running, Driver("compute1").GetGuest(id)!.PowerState);
        Assert.Null(Driver("compute2").GetGuest(id));
        Assert.Equal("m1.tiny", instance.Flavor.Name);
    }

    [Fact]
    public async Task Confirm_DriverFails_MigrationErrorButSourceAllocationReleased()
    {
        var id = await BootAsync("compute1");
        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, Migrate("compute2"))).Status);
        var (_, migration) = await WaitForMoveEndAsync(id);
        Driver("compute1").Faults.FailNext(FakeSteps.ConfirmMigration);

        Assert.Equal(HttpStatusCode.NoContent, (await Admin.ActionAsync(id, JsonNode.Parse("""{"confirmResize": null}""")!)).Status);
        await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.Error, "error");

        var placement = Fixture.Ferry.Services.GetRequiredService<IPlacementService>();
        Assert.Empty(placement.GetAllocations(migration.Uuid).Allocations);
        // Still resized on the destination; the operator may retry. Clean up for the invariant check.
        await Driver("compute1").DestroyAsync(id, destroyDisks: true, CancellationToken.None);
        Instances.Update(new() { Uuid = id, VmState = VmState.Active });
    }
}

public sealed class RevertFailureTests(FerryFixture fixture) : FlowTest<FerryFixture>(fixture)
{
    [Fact]
    public async Task Revert_SourceCannotRestore_ErrorOnSourceWithSourceAllocation()
    {
        var id = await BootAsync("compute1");
        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"migrate": {"host": "compute2"}}""")!)).Status);
        await WaitForMoveEndAsync(id);
        Driver("compute1").Faults.FailNext(FakeSteps.FinishRevertMigration);

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"revertResize": null}""")!)).Status);
        var migration = await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.Error, "error");
        var instance = await WaitForAsync(id, i => i.TaskState is null && i.VmState == VmState.Error, "ERROR");

        Assert.Equal("compute1", instance.Host);
        var placement = Fixture.Ferry.Services.GetRequiredService<IPlacementService>();
        Assert.Empty(placement.GetAllocations(migration.Uuid).Allocations);
        Assert.Contains("Injected failure", LastFault(id));
        // Clean the broken guest up for the next test (an operator would delete or rebuild it).
        await Driver("compute1").DestroyAsync(id, destroyDisks: true, CancellationToken.None);
        Instances.Update(new() { Uuid = id, Deleted = true });
        placement.DeleteAllocations(id);
    }
}

public sealed class RescheduleTests(FerryFixture fixture) : FlowTest<FerryFixture>(fixture)
{
    [Fact]
    public async Task Migrate_FirstDestinationRefuses_RescheduledToAlternate()
    {
        var id = await BootAsync("compute1");
        Driver("compute2").Faults.FailNext(FakeSteps.CheckCanReceive);
        Driver("compute3").Faults.FailNext(FakeSteps.CheckCanReceive);

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"migrate": null}""")!)).Status);
        var (instance, migration) = await WaitForMoveEndAsync(id);

        // The chosen host refused, then its only alternate refused too: back on the source.
        Assert.Equal((MigrationStatus.Error, "compute1", VmState.Active), (migration.Status, instance.Host, instance.VmState));
        Assert.Contains("Injected failure at check_can_receive", LastFault(id));
        var events = Fixture.Ferry.Services.GetRequiredService<ControlPlane.Persistence.ActionStore>();
        var action = events.ListActions(id).First(a => a.Action == "migrate");
        Assert.Equal(2, events.ListEvents(action.Id).Count(e => e.Event == "compute_prep_resize" && e.Result == "Error"));
    }

    [Fact]
    public async Task Migrate_OneDestinationRefuses_OtherOneUsed()
    {
        // A guest on compute3 leaves compute2 with the most free memory: the scheduler picks it first.
        await BootAsync("compute3", flavor: "m1.small");
        var id = await BootAsync("compute1");
        Driver("compute2").Faults.FailNext(FakeSteps.CheckCanReceive);

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"migrate": null}""")!)).Status);
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal((MigrationStatus.Finished, "compute3"), (migration.Status, instance.Host));
        Assert.Contains(Fixture.Ferry.Services.GetRequiredService<ControlPlane.Persistence.ActionStore>().ListActions(id), a => a.Message == "Error");
        Assert.Equal(HttpStatusCode.NoContent, (await Admin.ActionAsync(id, JsonNode.Parse("""{"confirmResize": null}""")!)).Status);
        await WaitForAsync(id, i => i.VmState == VmState.Active, "ACTIVE");
    }
}
