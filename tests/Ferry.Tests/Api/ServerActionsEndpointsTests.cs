using Ferry.Core.Domain;

namespace Ferry.Tests.Api;

[Collection(ComputeApiCollection.Name)]
public sealed class ServerActionsEndpointsTests(ComputeApiFixture f)
{
    private Task<ApiResponse> ActionAsync(Instance vm, string body, string version = "2.95", string token = "admin:admin") =>
        f.SendAsync(HttpMethod.Post, $"v2.1/servers/{vm.Uuid}/action", body, token: token, version: version);

    [Fact]
    public async Task LiveMigrate_ActiveServer_Returns202AndCastsToConductor()
    {
        var source = f.AddHost();
        var dest = f.AddHost();
        var vm = f.AddInstance(source);
        var r = await ActionAsync(vm, $$$"""{"os-migrateLive": {"host": "{{{dest}}}", "block_migration": "auto"}}""");
        Assert.Equal(202, r.Status);
        Assert.Equal(TaskState.Migrating, f.Instances.Get(vm.Uuid).TaskState);
        var cast = await f.WaitForCastAsync("live_migrate_instance", c => c.Payload["instance_uuid"]!.GetValue<string>() == vm.Uuid);
        Assert.Equal("conductor", cast.Topic);
        Assert.Equal(dest, cast.Payload["host"]!.GetValue<string>());
        Assert.Null(cast.Payload["block_migration"]);
        Assert.False(cast.Payload["force"]!.GetValue<bool>());
        Assert.Equal(r.Headers["x-openstack-request-id"], cast.Payload["request_id"]!.GetValue<string>());
        var action = Assert.Single(f.Actions.ListActions(vm.Uuid));
        Assert.Equal("live-migration", action.Action);
    }

    [Theory]
    [InlineData("""{"os-migrateLive": {"host": null, "block_migration": "auto"}}""")]
    [InlineData("""{"migrate": null}""")]
    [InlineData("""{"resize": {"flavorRef": "2"}}""")]
    public async Task Move_BusDown_503AndTheServerIsNotLeftInTheMove(string body)
    {
        var vm = f.AddInstance(f.AddHost());
        f.AddHost();
        f.BusDown = true;
        try
        {
            var r = await ActionAsync(vm, body);

            Assert.Equal(503, r.Status);
            Assert.Equal("serviceUnavailable", r.FaultName);
        }
        finally
        {
            f.BusDown = false;
        }
        var after = f.Instances.Get(vm.Uuid);
        Assert.Null(after.TaskState);
        Assert.Equal(VmState.Active, after.VmState);
    }

    [Fact]
    public async Task LiveMigrate_TaskMigrating_Returns409WithNovaMessage()
    {
        var vm = f.AddInstance(f.AddHost(), task: TaskState.Migrating);
        var r = await ActionAsync(vm, """{"os-migrateLive": {"host": null, "block_migration": "auto"}}""");
        Assert.Equal(409, r.Status);
        Assert.Equal("conflictingRequest", r.FaultName);
        Assert.Equal($"Cannot 'os-migrateLive' instance {vm.Uuid} while it is in task_state migrating", r.FaultMessage);
    }

    [Fact]
    public async Task LiveMigrate_StoppedServer_Returns409VmState()
    {
        var vm = f.AddInstance(f.AddHost(), vm: VmState.Stopped);
        var r = await ActionAsync(vm, """{"os-migrateLive": {"host": null, "block_migration": "auto"}}""");
        Assert.Equal(409, r.Status);
        Assert.Equal($"Cannot 'os-migrateLive' instance {vm.Uuid} while it is in vm_state stopped", r.FaultMessage);
    }

    [Theory]
    [InlineData("2.25", """{"os-migrateLive": {"host": null, "block_migration": "auto", "disk_over_commit": false}}""")]
    [InlineData("2.1", """{"os-migrateLive": {"host": null, "block_migration": false}}""")]
    [InlineData("2.1", """{"os-migrateLive": {"host": null, "block_migration": "auto", "disk_over_commit": false}}""")]
    [InlineData("2.30", """{"os-migrateLive": {"block_migration": "auto"}}""")]
    [InlineData("2.68", """{"os-migrateLive": {"host": null, "block_migration": "auto", "force": false}}""")]
    [InlineData("2.30", """{"os-migrateLive": {"host": null, "block_migration": "auto", "force": true}}""")]
    [InlineData("2.95", """{"os-migrateLive": {"host": null, "block_migration": "sometimes"}}""")]
    [InlineData("2.95", """{"os-migrateLive": []}""")]
    public async Task LiveMigrate_SchemaViolation_Returns400AndChangesNothing(string version, string body)
    {
        var vm = f.AddInstance(f.AddHost());
        var r = await ActionAsync(vm, body, version);
        Assert.Equal(400, r.Status);
        Assert.Equal("badRequest", r.FaultName);
        Assert.Null(f.Instances.Get(vm.Uuid).TaskState);
        Assert.Empty(f.Actions.ListActions(vm.Uuid));
    }

    [Fact]
    public async Task LiveMigrate_Pre230WithHost_CastsForced()
    {
        var dest = f.AddHost();
        var vm = f.AddInstance(f.AddHost());
        var r = await ActionAsync(vm, $$$"""{"os-migrateLive": {"host": "{{{dest}}}", "block_migration": "True", "disk_over_commit": false}}""", "2.1");
        Assert.Equal(202, r.Status);
        var cast = await f.WaitForCastAsync("live_migrate_instance", c => c.Payload["instance_uuid"]!.GetValue<string>() == vm.Uuid);
        Assert.True(cast.Payload["force"]!.GetValue<bool>());
        Assert.True(cast.Payload["block_migration"]!.GetValue<bool>());
    }

    [Fact]
    public async Task LiveMigrate_UnknownHost_Returns400()
    {
        var vm = f.AddInstance(f.AddHost());
        var r = await ActionAsync(vm, """{"os-migrateLive": {"host": "nowhere", "block_migration": "auto"}}""");
        Assert.Equal(400, r.Status);
        Assert.Equal("Compute host nowhere could not be found.", r.FaultMessage);
        Assert.Null(f.Instances.Get(vm.Uuid).TaskState);
    }

    [Fact]
    public async Task LiveMigrate_TwoConcurrentRequests_OneAcceptedOneConflict()
    {
        var vm = f.AddInstance(f.AddHost());
        const string body = """{"os-migrateLive": {"host": null, "block_migration": "auto"}}""";
        var results = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => ActionAsync(vm, body)));
        Assert.Equal([202, 409], results.Select(r => r.Status).Order());
        Assert.Single(f.Actions.ListActions(vm.Uuid));
    }

    [Fact]
    public async Task Resize_LockedServerNonAdmin_Returns409()
    {
        var vm = f.AddInstance(f.AddHost(), project: "p1", locked: true);
        var r = await ActionAsync(vm, """{"resize": {"flavorRef": "2"}}""", token: "alice:p1");
        Assert.Equal(409, r.Status);
        Assert.Equal($"Instance {vm.Uuid} is locked", r.FaultMessage);
    }

    [Fact]
    public async Task Migrate_Returns202AndCastsMigrateServer()
    {
        var dest = f.AddHost();
        var vm = f.AddInstance(f.AddHost());
        var r = await ActionAsync(vm, $$$"""{"migrate": {"host": "{{{dest}}}"}}""");
        Assert.Equal(202, r.Status);
        Assert.Equal(TaskState.ResizePrep, f.Instances.Get(vm.Uuid).TaskState);
        var cast = await f.WaitForCastAsync("migrate_server", c => c.Payload["instance_uuid"]!.GetValue<string>() == vm.Uuid);
        Assert.Equal(dest, cast.Payload["host"]!.GetValue<string>());
        Assert.Null(cast.Payload["new_flavor_id"]);
        Assert.Equal("migrate", Assert.Single(f.Actions.ListActions(vm.Uuid)).Action);
    }

    [Fact]
    public async Task Migrate_SameHost_Returns400()
    {
        var host = f.AddHost();
        var vm = f.AddInstance(host);
        var r = await ActionAsync(vm, $$$"""{"migrate": {"host": "{{{host}}}"}}""");
        Assert.Equal(400, r.Status);
        Assert.Null(f.Instances.Get(vm.Uuid).TaskState);
    }

    [Fact]
    public async Task Migrate_SourceComputeDown_Returns409()
    {
        var vm = f.AddInstance(f.AddHost(up: false));
        var r = await ActionAsync(vm, """{"migrate": null}""");
        Assert.Equal(409, r.Status);
        Assert.Equal("Service is unavailable at this time.", r.FaultMessage);
    }

    [Fact]
    public async Task Migrate_HostBefore256_IsIgnored()
    {
        var vm = f.AddInstance(f.AddHost());
        var r = await ActionAsync(vm, """{"migrate": {"host": "ignored"}}""", "2.55");
        Assert.Equal(202, r.Status);
        var cast = await f.WaitForCastAsync("migrate_server", c => c.Payload["instance_uuid"]!.GetValue<string>() == vm.Uuid);
        Assert.Null(cast.Payload["host"]);
    }

    [Fact]
    public async Task Resize_OwnerRequest_Returns202AndCastsNewFlavor()
    {
        var vm = f.AddInstance(f.AddHost(), project: "p1");
        var r = await ActionAsync(vm, """{"resize": {"flavorRef": "m1.small"}}""", token: "alice:p1");
        Assert.Equal(202, r.Status);
        var cast = await f.WaitForCastAsync("migrate_server", c => c.Payload["instance_uuid"]!.GetValue<string>() == vm.Uuid);
        Assert.Equal("2", cast.Payload["new_flavor_id"]!.GetValue<string>());
        Assert.Equal("resize", Assert.Single(f.Actions.ListActions(vm.Uuid)).Action);
    }

    [Theory]
    [InlineData("""{"resize": {"flavorRef": "1"}}""", "When resizing, instances must change flavor!")]
    [InlineData("""{"resize": {"flavorRef": "999"}}""", "Unable to locate requested flavor.")]
    [InlineData("""{"resize": {}}""", null)]
    [InlineData("""{"resize": {"flavorRef": "2", "extra": 1}}""", null)]
    [InlineData("""{"resize": {"flavorRef": "2"}, "migrate": null}""", "Malformed request body")]
    [InlineData("""{"shelve": null}""", "There is no such action: shelve")]
    public async Task Resize_BadRequest_Returns400AndChangesNothing(string body, string? message)
    {
        var vm = f.AddInstance(f.AddHost());
        var r = await ActionAsync(vm, body);
        Assert.Equal(400, r.Status);
        if (message is not null)
        {
            Assert.Equal(message, r.FaultMessage);
        }
        Assert.Null(f.Instances.Get(vm.Uuid).TaskState);
    }

    [Fact]
    public async Task ConfirmResize_Resized_Returns204AndCastsToSource()
    {
        var source = f.AddHost();
        var dest = f.AddHost();
        var vm = f.AddInstance(dest, vm: VmState.Resized);
        var migration = f.AddMigration(vm with { Host = source, Node = source }, MigrationType.Resize, MigrationStatus.Finished, dest);
        var r = await ActionAsync(vm, """{"confirmResize": null}""");
        Assert.Equal(204, r.Status);
        Assert.Equal(MigrationStatus.Confirming, f.Migrations.Get(migration.Uuid).Status);
        var cast = await f.WaitForCastAsync("confirm_resize", c => c.Payload["instance"]!["uuid"]!.GetValue<string>() == vm.Uuid);
        Assert.Equal($"compute.{source}", cast.Topic);
        Assert.Equal("confirmResize", Assert.Single(f.Actions.ListActions(vm.Uuid)).Action);
    }

    [Fact]
    public async Task ConfirmResize_ActiveServer_Returns409()
    {
        var vm = f.AddInstance(f.AddHost());
        var r = await ActionAsync(vm, """{"confirmResize": null}""");
        Assert.Equal(409, r.Status);
        Assert.Equal($"Cannot 'confirmResize' instance {vm.Uuid} while it is in vm_state active", r.FaultMessage);
    }

    [Fact]
    public async Task ConfirmResize_NoFinishedMigration_Returns400()
    {
        var vm = f.AddInstance(f.AddHost(), vm: VmState.Resized);
        var r = await ActionAsync(vm, """{"confirmResize": null}""");
        Assert.Equal(400, r.Status);
        Assert.Equal("Instance has not been resized.", r.FaultMessage);
    }

    [Fact]
    public async Task ConfirmResize_SourceDown_Returns409()
    {
        var source = f.AddHost(up: false);
        var dest = f.AddHost();
        var vm = f.AddInstance(dest, vm: VmState.Resized);
        var migration = f.AddMigration(vm with { Host = source }, MigrationType.Migration, MigrationStatus.Finished, dest);
        var r = await ActionAsync(vm, """{"confirmResize": null}""");
        Assert.Equal(409, r.Status);
        Assert.Equal(MigrationStatus.Finished, f.Migrations.Get(migration.Uuid).Status);
    }

    [Fact]
    public async Task RevertResize_Resized_Returns202AndCastsToDest()
    {
        var source = f.AddHost();
        var dest = f.AddHost();
        var vm = f.AddInstance(dest, vm: VmState.Resized);
        var migration = f.AddMigration(vm with { Host = source }, MigrationType.Migration, MigrationStatus.Finished, dest);
        var r = await ActionAsync(vm, """{"revertResize": null}""");
        Assert.Equal(202, r.Status);
        Assert.Equal(TaskState.ResizeReverting, f.Instances.Get(vm.Uuid).TaskState);
        Assert.Equal(MigrationStatus.Reverting, f.Migrations.Get(migration.Uuid).Status);
        var cast = await f.WaitForCastAsync("revert_resize", c => c.Payload["instance"]!["uuid"]!.GetValue<string>() == vm.Uuid);
        Assert.Equal($"compute.{dest}", cast.Topic);
    }

    [Fact]
    public async Task Evacuate_SourceUp_Returns400ComputeServiceInUse()
    {
        var source = f.AddHost();
        var vm = f.AddInstance(source);
        var r = await ActionAsync(vm, """{"evacuate": {}}""");
        Assert.Equal(400, r.Status);
        Assert.Equal($"Compute service of {source} is still in use.", r.FaultMessage);
        Assert.Null(f.Instances.Get(vm.Uuid).TaskState);
        Assert.Empty(f.Migrations.List(new Ferry.ControlPlane.Persistence.MigrationFilter(InstanceUuid: vm.Uuid)));
    }

    [Fact]
    public async Task Evacuate_SourceForcedDown_Returns200CreatesMigrationAndCasts()
    {
        var source = f.AddHost(up: false);
        var dest = f.AddHost();
        var vm = f.AddInstance(source, task: TaskState.PoweringOff);
        var r = await ActionAsync(vm, $$$"""{"evacuate": {"host": "{{{dest}}}"}}""");
        Assert.Equal(200, r.Status);
        Assert.Equal("", r.Raw);
        Assert.Equal(TaskState.Rebuilding, f.Instances.Get(vm.Uuid).TaskState);
        var migration = Assert.Single(f.Migrations.List(new Ferry.ControlPlane.Persistence.MigrationFilter(InstanceUuid: vm.Uuid)));
        Assert.Equal((MigrationType.Evacuation, MigrationStatus.Accepted, source, dest), (migration.MigrationType, migration.Status, migration.SourceCompute, migration.DestCompute));
        var cast = await f.WaitForCastAsync("rebuild_instance", c => c.Payload["instance_uuid"]!.GetValue<string>() == vm.Uuid);
        Assert.Equal(migration.Uuid, cast.Payload["migration_uuid"]!.GetValue<string>());
        Assert.Equal("evacuate", Assert.Single(f.Actions.ListActions(vm.Uuid)).Action);
    }

    [Fact]
    public async Task Evacuate_HeartbeatTooOld_IsAccepted()
    {
        var source = f.AddHost();
        var service = f.Services.Find(source, "nova-compute")!;
        f.Services.Update(service.Id, s => s with { LastSeenUp = f.Time.GetUtcNow() - TimeSpan.FromMinutes(5) });
        var vm = f.AddInstance(source);
        var r = await ActionAsync(vm, """{"evacuate": {}}""");
        Assert.Equal(200, r.Status);
    }

    [Fact]
    public async Task Evacuate_TwoConcurrentRequests_OneOkOneConflict()
    {
        var vm = f.AddInstance(f.AddHost(up: false));
        var results = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => ActionAsync(vm, """{"evacuate": {}}""")));
        Assert.Equal([200, 409], results.Select(r => r.Status).Order());
        Assert.Single(f.Migrations.List(new Ferry.ControlPlane.Persistence.MigrationFilter(InstanceUuid: vm.Uuid)));
    }

    [Fact]
    public async Task Evacuate_UnknownHost_Returns404AndSameHost400()
    {
        var source = f.AddHost(up: false);
        var vm = f.AddInstance(source);
        var unknown = await ActionAsync(vm, """{"evacuate": {"host": "nowhere"}}""");
        Assert.Equal(404, unknown.Status);
        var same = await ActionAsync(vm, $$$"""{"evacuate": {"host": "{{{source}}}"}}""");
        Assert.Equal(400, same.Status);
        Assert.Equal("The target host can't be the same one.", same.FaultMessage);
    }

    [Fact]
    public async Task Evacuate_Before214_ReturnsAdminPassAndRequiresOnSharedStorage()
    {
        var vm = f.AddInstance(f.AddHost(up: false));
        var missing = await ActionAsync(vm, """{"evacuate": {}}""", "2.13");
        Assert.Equal(400, missing.Status);
        var r = await ActionAsync(vm, """{"evacuate": {"onSharedStorage": false, "adminPass": "secret"}}""", "2.13");
        Assert.Equal(200, r.Status);
        Assert.Equal("secret", r.Json!["adminPass"]!.GetValue<string>());
    }

    [Fact]
    public async Task Evacuate_BuildingServer_Returns409()
    {
        var vm = f.AddInstance(f.AddHost(up: false), vm: VmState.Building);
        var r = await ActionAsync(vm, """{"evacuate": {}}""");
        Assert.Equal(409, r.Status);
        Assert.Equal($"Cannot 'evacuate' instance {vm.Uuid} while it is in vm_state building", r.FaultMessage);
    }

    [Fact]
    public async Task StopThenStart_Return202AndCastToHost()
    {
        var host = f.AddHost();
        var vm = f.AddInstance(host);
        Assert.Equal(202, (await ActionAsync(vm, """{"os-stop": null}""")).Status);
        Assert.Equal(TaskState.PoweringOff, f.Instances.Get(vm.Uuid).TaskState);
        var stop = await f.WaitForCastAsync("stop_instance", c => c.Payload["instance"]!["uuid"]!.GetValue<string>() == vm.Uuid);
        Assert.Equal($"compute.{host}", stop.Topic);

        var again = await ActionAsync(vm, """{"os-stop": null}""");
        Assert.Equal(409, again.Status);

        var stopped = f.AddInstance(host, vm: VmState.Stopped);
        Assert.Equal(202, (await ActionAsync(stopped, """{"os-start": null}""")).Status);
        await f.WaitForCastAsync("start_instance", c => c.Payload["instance"]!["uuid"]!.GetValue<string>() == stopped.Uuid);
        var startActive = await ActionAsync(vm, """{"os-start": null}""");
        Assert.Equal(409, startActive.Status);
    }
}
