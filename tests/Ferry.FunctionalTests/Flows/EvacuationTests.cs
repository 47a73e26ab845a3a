using System.Net;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Placement;
using Ferry.Core.Domain;
using Ferry.Host;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Flows;

public sealed class EvacuationTests(FerryFixture fixture) : FlowTest<FerryFixture>(fixture)
{
    [Fact]
    public async Task Evacuate_SourceUp_Is400AndChangesNothing()
    {
        var id = await BootAsync("compute1");

        var (status, body) = await Admin.ActionAsync(id, JsonNode.Parse("""{"evacuate": {}}""")!);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("compute1", body!["badRequest"]!["message"]!.GetValue<string>());
        Assert.Empty(Migrations.List(new(InstanceUuid: id)));
    }

    [Fact]
    public async Task Evacuate_SourceDown_RebuiltElsewhere_ThenSourceRestartDestroysStaleCopy()
    {
        var id = await BootAsync("compute1");
        await Fixture.Ferry.Computes["compute1"].StopAsync();
        await ForceDownAsync("compute1", true);
        try
        {
            var (status, body) = await Admin.ActionAsync(id, JsonNode.Parse("""{"evacuate": {}}""")!);
            Assert.True(status == HttpStatusCode.OK, body?.ToJsonString());

            var (instance, migration) = await WaitForMoveEndAsync(id);
            Assert.Equal((MigrationStatus.Done, MigrationType.Evacuation, VmState.Active), (migration.Status, migration.MigrationType, instance.VmState));
            Assert.NotEqual("compute1", instance.Host);
            // Until the source comes back, the instance holds both hosts in placement (Nova's doubled allocation).
            var placement = Fixture.Ferry.Services.GetRequiredService<IPlacementService>();
            Assert.Equal(2, placement.GetAllocations(id).Allocations.Count);
            // The dead host's hypervisor still has the guest.
            Assert.NotNull(Driver("compute1").GetGuest(id));

            // forced_down cannot be lifted while the evacuation is `done` (Nova's rule).
            Assert.Equal(HttpStatusCode.BadRequest, await ForceDownAsync("compute1", false));

            await Fixture.Ferry.StartComputeAsync("compute1", CancellationToken.None);
            var completed = Migrations.Get(migration.Uuid);
            Assert.Equal(MigrationStatus.Completed, completed.Status);
            Assert.Null(Driver("compute1").GetGuest(id));
            Assert.Single(placement.GetAllocations(id).Allocations);
        }
        finally
        {
            if (!Fixture.Ferry.Computes["compute1"].IsRunning)
            {
                await Fixture.Ferry.StartComputeAsync("compute1", CancellationToken.None);
            }
            await ForceDownAsync("compute1", false);
        }
    }

    [Fact]
    public async Task Evacuate_RebuildFails_MigrationFailedAndDestinationClaimReleased()
    {
        var id = await BootAsync("compute1");
        await Fixture.Ferry.Computes["compute1"].StopAsync();
        await ForceDownAsync("compute1", true);
        try
        {
            Driver("compute2").Faults.FailNext(Virt.Fake.FakeSteps.Spawn);
            Driver("compute3").Faults.FailNext(Virt.Fake.FakeSteps.Spawn);

            var (status, _) = await Admin.ActionAsync(id, JsonNode.Parse("""{"evacuate": {}}""")!);
            Assert.Equal(HttpStatusCode.OK, status);
            var (instance, migration) = await WaitForMoveEndAsync(id);

            Assert.Equal(MigrationStatus.Failed, migration.Status);
            Assert.Equal(("compute1", VmState.Error), (instance.Host, instance.VmState));
            var placement = Fixture.Ferry.Services.GetRequiredService<IPlacementService>();
            Assert.Single(placement.GetAllocations(id).Allocations);
        }
        finally
        {
            await Fixture.Ferry.StartComputeAsync("compute1", CancellationToken.None);
            await ForceDownAsync("compute1", false);
            Instances.Update(new() { Uuid = id, VmState = VmState.Active });
        }
    }

    private async Task<HttpStatusCode> ForceDownAsync(string host, bool down)
    {
        var services = (await Admin.GetAsync($"os-services?host={host}&binary=nova-compute")).Body!["services"]!.AsArray();
        var serviceId = services.Single()!["id"]!.GetValue<string>();
        var (status, _) = await Admin.SendAsync(HttpMethod.Put, $"os-services/{serviceId}", new JsonObject { ["forced_down"] = down });
        return status;
    }
}

public sealed class SharedStorageFixture : FerryFixture
{
    protected override void Configure(FerryHostOptions options) => options.SharedStorage = true;
}

public sealed class SharedStorageTests(SharedStorageFixture fixture) : FlowTest<SharedStorageFixture>(fixture)
{
    [Fact]
    public async Task LiveMigrate_SharedStorage_AutoChoosesNonBlockAndCompletes()
    {
        var id = await BootAsync("compute1");

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal((MigrationStatus.Completed, "compute2"), (migration.Status, instance.Host));
        Assert.True(Driver("compute2").InstanceOnDisk(id));
    }

    [Fact]
    public async Task LiveMigrate_BlockMigrationOnSharedStorage_FailsInvalidLocalStorage()
    {
        var id = await BootAsync("compute1");

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2", blockMigration: true));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal((MigrationStatus.Error, "compute1"), (migration.Status, instance.Host));
        Assert.Contains("Block migration can not be used with shared storage", LastFault(id));
    }
}

public sealed class SharedStorageEvacuationTests(SharedStorageFixture fixture) : FlowTest<SharedStorageFixture>(fixture)
{
    [Fact]
    public async Task Evacuate_SharedStorage_ReusesDiskAndSourceRestartKeepsIt()
    {
        var id = await BootAsync("compute1");
        var disk = Path.Combine(Driver("compute1").InstanceDirectory(id), "disk");
        var before = await File.ReadAllTextAsync(disk);
        await Fixture.Ferry.Computes["compute1"].StopAsync();
        var serviceId = (await Admin.GetAsync("os-services?host=compute1&binary=nova-compute")).Body!["services"]![0]!["id"]!.GetValue<string>();
        await Admin.SendAsync(HttpMethod.Put, $"os-services/{serviceId}", new JsonObject { ["forced_down"] = true });
        try
        {
            Assert.Equal(HttpStatusCode.OK, (await Admin.ActionAsync(id, JsonNode.Parse("""{"evacuate": {}}""")!)).Status);
            var (instance, migration) = await WaitForMoveEndAsync(id);
            Assert.Equal((MigrationStatus.Done, VmState.Active), (migration.Status, instance.VmState));

            await Fixture.Ferry.StartComputeAsync("compute1", CancellationToken.None);

            Assert.Equal(MigrationStatus.Completed, Migrations.Get(migration.Uuid).Status);
            Assert.Null(Driver("compute1").GetGuest(id));
            // The disk is shared with the new host: the returning host must not delete it (Nova bug 1550919).
            Assert.True(File.Exists(disk), "shared disk kept");
            Assert.Equal(before, await File.ReadAllTextAsync(disk));
        }
        finally
        {
            if (!Fixture.Ferry.Computes["compute1"].IsRunning)
            {
                await Fixture.Ferry.StartComputeAsync("compute1", CancellationToken.None);
            }
            await Admin.SendAsync(HttpMethod.Put, $"os-services/{serviceId}", new JsonObject { ["forced_down"] = false });
        }
    }
}

/// <summary>Heartbeats every 100 ms, a service is down after 3 s of silence (a loaded 2-core machine can stall a heartbeat for over a second).</summary>
public sealed class FastHeartbeatFixture : FerryFixture
{
    protected override void Configure(FerryHostOptions options)
    {
        options.ReportInterval = TimeSpan.FromMilliseconds(100);
        options.ServiceDownTime = TimeSpan.FromMilliseconds(3000);
    }
}

public sealed class HeartbeatTests(FastHeartbeatFixture fixture) : FlowTest<FastHeartbeatFixture>(fixture)
{
    [Fact]
    public async Task Evacuate_SourceSilentLongerThanServiceDownTime_AcceptedWithoutForcedDown()
    {
        var id = await BootAsync("compute1");
        await Fixture.Ferry.Computes["compute1"].StopAsync();
        try
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
            string state;
            do
            {
                await Task.Delay(100);
                var services = (await Admin.GetAsync("os-services?host=compute1&binary=nova-compute")).Body!["services"]!;
                state = services[0]!["state"]!.GetValue<string>();
            }
            while (state != "down" && DateTime.UtcNow < deadline);
            Assert.Equal("down", state);

            Assert.Equal(HttpStatusCode.OK, (await Admin.ActionAsync(id, JsonNode.Parse("""{"evacuate": {}}""")!)).Status);
            var (instance, migration) = await WaitForMoveEndAsync(id);
            Assert.Equal((MigrationStatus.Done, VmState.Active), (migration.Status, instance.VmState));
            Assert.NotEqual("compute1", instance.Host);
        }
        finally
        {
            await Fixture.Ferry.StartComputeAsync("compute1", CancellationToken.None);
        }
        var services2 = (await Admin.GetAsync("os-services?host=compute1&binary=nova-compute")).Body!["services"]!;
        Assert.Equal("up", services2[0]!["state"]!.GetValue<string>());
        Assert.Null(Driver("compute1").GetGuest(id));
    }
}
