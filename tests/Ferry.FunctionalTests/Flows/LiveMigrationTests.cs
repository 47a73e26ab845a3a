using System.Net;
using System.Text.Json.Nodes;
using Ferry.Core.Domain;
using Ferry.Host;
using Ferry.Virt.Fake;

namespace Ferry.FunctionalTests.Flows;

public sealed class LiveMigrationFixture : FerryFixture
{
    protected override void Configure(AllInOne ferry)
    {
        // compute3 lacks a CPU feature the others have: a live migration there fails its pre-check.
        ferry.ConfigureDriver = d => d.CpuFeatures = d.HostName == "compute3" ? [] : ["avx2"];
    }
}

public sealed class LiveMigrationTests(LiveMigrationFixture fixture) : FlowTest<LiveMigrationFixture>(fixture)
{
    [Fact]
    public async Task LiveMigrate_ToNamedHost_RunsThereWithAllocationsMoved()
    {
        var id = await BootAsync("compute1");

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal("compute2", instance.Host);
        Assert.Equal(VmState.Active, instance.VmState);
        Assert.Equal(MigrationStatus.Completed, migration.Status);
        Assert.Equal(MigrationType.LiveMigration, migration.MigrationType);
        Assert.Equal(("compute1", "compute2"), (migration.SourceCompute, migration.DestCompute));
        Assert.Null(Driver("compute1").GetGuest(id));
        Assert.Equal(Virt.GuestPowerState.Running, Driver("compute2").GetGuest(id)!.PowerState);
        var server = await Admin.GetServerAsync(id);
        Assert.Equal("compute2", server["OS-EXT-SRV-ATTR:host"]!.GetValue<string>());
        Assert.Equal("ACTIVE", server["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task LiveMigrate_DestinationHoldsOldFilesOfTheGuest_FailsAndLeavesThemAlone()
    {
        var id = await BootAsync("compute1");
        // Leftovers of an earlier life of this guest on compute2 (Nova: DestinationDiskExists).
        var leftover = Path.Combine(Driver("compute2").InstanceDirectory(id), "disk");
        Directory.CreateDirectory(Path.GetDirectoryName(leftover)!);
        await File.WriteAllTextAsync(leftover, "an earlier copy");

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2", blockMigration: true));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal((MigrationStatus.Failed, "compute1", VmState.Active), (migration.Status, instance.Host, instance.VmState));
        Assert.Contains("already exists", LastFault(id));
        Assert.Equal("an earlier copy", await File.ReadAllTextAsync(leftover));
        Assert.Equal(Virt.GuestPowerState.Running, Driver("compute1").GetGuest(id)!.PowerState);
        Assert.Null(Driver("compute2").GetGuest(id));
        Directory.Delete(Path.GetDirectoryName(leftover)!, recursive: true);
    }

    [Fact]
    public async Task LiveMigrate_WithoutHost_SchedulerSkipsIncompatibleCpuAndRetries()
    {
        // compute3 has the most free memory once compute2 carries a guest, so the scheduler tries it
        // first; its CPU check fails and the conductor retries on compute2.
        await BootAsync("compute2", flavor: "m1.small");
        var id = await BootAsync("compute1");

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal(MigrationStatus.Completed, migration.Status);
        Assert.Equal("compute2", instance.Host);
    }

    [Fact]
    public async Task LiveMigrate_ToIncompatibleNamedHost_EndsInErrorAndChangesNothing()
    {
        var id = await BootAsync("compute1");

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute3"));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal(MigrationStatus.Error, migration.Status);
        Assert.Equal(("compute1", VmState.Active), (instance.Host, instance.VmState));
        Assert.Contains("CPU", LastFault(id));
    }

    [Fact]
    public async Task LiveMigrate_ForcedToOwnHost_FailsUnableToMigrateToSelf()
    {
        var id = await BootAsync("compute1");
        var (status, _) = await Admin.ActionAsync(id, JsonNode.Parse("""{"os-migrateLive": {"host": "compute1", "block_migration": "auto", "force": true}}""")!, "2.30");
        Assert.Equal(HttpStatusCode.Accepted, status);

        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal(MigrationStatus.Error, migration.Status);
        Assert.Equal("compute1", instance.Host);
        Assert.Contains("current host", LastFault(id));
    }

    [Fact]
    public async Task LiveMigrate_ToOwnHostNotForced_FaultSaysCurrentHost()
    {
        var id = await BootAsync("compute1");
        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute1"));

        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal(MigrationStatus.Error, migration.Status);
        Assert.Equal(("compute1", VmState.Active), (instance.Host, instance.VmState));
        Assert.Equal($"Unable to migrate instance ({id}) to current host (compute1).", LastFault(id));
    }

    [Fact]
    public async Task LiveMigrate_StoppedServer_Is409WithNovaMessage()
    {
        var id = await BootAsync("compute1");
        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"os-stop": null}""")!)).Status);
        await WaitForAsync(id, i => i.VmState == VmState.Stopped && i.TaskState is null, "SHUTOFF");

        var (status, body) = await Admin.ActionAsync(id, JsonNode.Parse("""{"os-migrateLive": {"host": null, "block_migration": "auto"}}""")!);

        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Equal($"Cannot 'os-migrateLive' instance {id} while it is in vm_state stopped", body!["conflictingRequest"]!["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task LiveMigrate_TwoConcurrentRequests_OneAcceptedOneConflict()
    {
        var id = await BootAsync("compute1");
        Driver("compute1").Faults.Delay(FakeSteps.LiveMigration, TimeSpan.FromMilliseconds(200));

        var results = await Task.WhenAll(LiveMigrateAsync(id, "compute2"), LiveMigrateAsync(id, "compute2"));

        Assert.Equal([HttpStatusCode.Accepted, HttpStatusCode.Conflict], results.Order());
        var (instance, _) = await WaitForMoveEndAsync(id);
        Assert.Equal("compute2", instance.Host);
        Assert.Single(Migrations.List(new(InstanceUuid: id)));
    }

    [Fact]
    public async Task LiveMigrate_DestinationDown_NoValidHostAndRollback()
    {
        var id = await BootAsync("compute1");
        var services = (await Admin.GetAsync("os-services?binary=nova-compute")).Body!["services"]!.AsArray();
        var compute2 = services.First(s => s!["host"]!.GetValue<string>() == "compute2")!["id"]!.GetValue<string>();
        Assert.Equal(HttpStatusCode.OK, (await Admin.SendAsync(HttpMethod.Put, $"os-services/{compute2}", JsonNode.Parse("""{"status": "disabled"}"""))).Status);
        try
        {
            Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
            var (instance, migration) = await WaitForMoveEndAsync(id);
            Assert.Equal(MigrationStatus.Error, migration.Status);
            Assert.Equal("compute1", instance.Host);
        }
        finally
        {
            await Admin.SendAsync(HttpMethod.Put, $"os-services/{compute2}", JsonNode.Parse("""{"status": "enabled"}"""));
        }
    }

    [Theory]
    [InlineData("compute2", FakeSteps.PreLiveMigration, MigrationStatus.Failed)]
    [InlineData("compute1", FakeSteps.LiveMigration, MigrationStatus.Error)]
    [InlineData("compute1", FakeSteps.LiveMigrationRound, MigrationStatus.Failed)]
    [InlineData("compute2", FakeSteps.PostLiveMigrationAtDestination, MigrationStatus.Failed)]
    public async Task LiveMigrate_FailureInjectedAtStep_GuestKeepsRunningOnSource(string host, string step, string expectedStatus)
    {
        var id = await BootAsync("compute1");
        Driver(host).Faults.FailNext(step);

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal(expectedStatus, migration.Status);
        Assert.Equal(("compute1", VmState.Active, PowerState.Running), (instance.Host, instance.VmState, instance.PowerState));
        Assert.Null(Driver("compute2").GetGuest(id));
        Assert.NotNull(LastFault(id));
    }

    [Fact]
    public async Task LiveMigrate_SourceCleanupFailsOnce_RetriedAndSourceCopyGone()
    {
        var id = await BootAsync("compute1");
        Driver("compute1").Faults.FailNext(FakeSteps.PostLiveMigrationAtSource);

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal((MigrationStatus.Completed, "compute2"), (migration.Status, instance.Host));
        Assert.Null(Driver("compute1").GetGuest(id));
    }

    [Fact]
    public async Task LiveMigrate_SourceCleanupKeepsFailing_MigrationCompletesAndSourceCopyNeverRuns()
    {
        var id = await BootAsync("compute1");
        Driver("compute1").Faults.FailAlways(FakeSteps.PostLiveMigrationAtSource);

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal((MigrationStatus.Completed, "compute2"), (migration.Status, instance.Host));
        Assert.Equal(Virt.GuestPowerState.Paused, Driver("compute1").GetGuest(id)!.PowerState);
        Assert.Contains("post_live_migration_at_source", LastFault(id));

        // The next start of the source host removes the stray paused copy.
        await Fixture.Ferry.StartComputeAsync("compute1", CancellationToken.None);
        Assert.Null(Driver("compute1").GetGuest(id));
        Assert.Equal(Virt.GuestPowerState.Running, Driver("compute2").GetGuest(id)!.PowerState);
    }
}
