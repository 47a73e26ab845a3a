using Ferry.Core.Domain;

namespace Ferry.Tests.Api;

[Collection(ComputeApiCollection.Name)]
public sealed class MigrationsEndpointsTests(ComputeApiFixture f)
{
    [Fact]
    public async Task ServerMigrations_RunningLiveMigration_ListedWithProgressBytes()
    {
        var dest = f.AddHost();
        var vm = f.AddInstance(f.AddHost(), task: TaskState.Migrating);
        var live = f.AddMigration(vm, MigrationType.LiveMigration, MigrationStatus.Running, dest);
        f.AddMigration(vm, MigrationType.LiveMigration, MigrationStatus.Completed, dest);
        var r = await f.SendAsync(HttpMethod.Get, $"v2.1/servers/{vm.Uuid}/migrations");
        Assert.Equal(200, r.Status);
        var m = Assert.Single(r.Json!["migrations"]!.AsArray())!;
        Assert.Equal(live.Id, m["id"]!.GetValue<int>());
        Assert.Equal(vm.Uuid, m["server_uuid"]!.GetValue<string>());
        Assert.Equal(1000, m["memory_total_bytes"]!.GetValue<long>());
        Assert.Equal(600, m["memory_remaining_bytes"]!.GetValue<long>());
        Assert.Null(m["disk_total_bytes"]);
        Assert.Equal(live.Uuid, m["uuid"]!.GetValue<string>());
        Assert.Equal("admin", m["project_id"]!.GetValue<string>());

        var show = await f.SendAsync(HttpMethod.Get, $"v2.1/servers/{vm.Uuid}/migrations/{live.Id}");
        Assert.Equal(200, show.Status);
        Assert.Equal("running", show.Json!["migration"]!["status"]!.GetValue<string>());
        var missing = await f.SendAsync(HttpMethod.Get, $"v2.1/servers/{vm.Uuid}/migrations/99999");
        Assert.Equal(404, missing.Status);
        Assert.Equal($"In-progress live migration 99999 is not found for server {vm.Uuid}.", missing.FaultMessage);
        Assert.Equal(404, (await f.SendAsync(HttpMethod.Get, $"v2.1/servers/{vm.Uuid}/migrations", version: "2.22")).Status);
    }

    [Fact]
    public async Task AbortLiveMigration_Running_Returns202AndCastsToSource()
    {
        var source = f.AddHost();
        var vm = f.AddInstance(source, task: TaskState.Migrating);
        var live = f.AddMigration(vm, MigrationType.LiveMigration, MigrationStatus.Running, f.AddHost());
        var r = await f.SendAsync(HttpMethod.Delete, $"v2.1/servers/{vm.Uuid}/migrations/{live.Id}");
        Assert.Equal(202, r.Status);
        var cast = await f.WaitForCastAsync("live_migration_abort", c => c.Payload["instance"]!["uuid"]!.GetValue<string>() == vm.Uuid);
        Assert.Equal($"compute.{source}", cast.Topic);
        Assert.Equal(live.Id, cast.Payload["migration_id"]!.GetValue<int>());
        Assert.Equal("live_migration_cancel", Assert.Single(f.Actions.ListActions(vm.Uuid)).Action);
    }

    [Fact]
    public async Task AbortLiveMigration_QueuedDependsOnVersion()
    {
        var vm = f.AddInstance(f.AddHost(), task: TaskState.Migrating);
        var live = f.AddMigration(vm, MigrationType.LiveMigration, MigrationStatus.Queued, f.AddHost());
        var old = await f.SendAsync(HttpMethod.Delete, $"v2.1/servers/{vm.Uuid}/migrations/{live.Id}", version: "2.64");
        Assert.Equal(400, old.Status);
        Assert.Equal($"Migration {live.Id} state of instance {vm.Uuid} is queued. Cannot abort live migration while the migration is in this state.", old.FaultMessage);
        Assert.Equal(202, (await f.SendAsync(HttpMethod.Delete, $"v2.1/servers/{vm.Uuid}/migrations/{live.Id}", version: "2.65")).Status);
    }

    [Fact]
    public async Task AbortLiveMigration_NotMigratingOrOtherServer_Returns409Or404()
    {
        var vm = f.AddInstance(f.AddHost());
        var live = f.AddMigration(vm, MigrationType.LiveMigration, MigrationStatus.Running, f.AddHost());
        var notMigrating = await f.SendAsync(HttpMethod.Delete, $"v2.1/servers/{vm.Uuid}/migrations/{live.Id}");
        Assert.Equal(409, notMigrating.Status);
        Assert.Equal($"Cannot 'abort live migration' instance {vm.Uuid} while it is in task_state None", notMigrating.FaultMessage);

        var other = f.AddInstance(f.AddHost(), task: TaskState.Migrating);
        var wrong = await f.SendAsync(HttpMethod.Delete, $"v2.1/servers/{other.Uuid}/migrations/{live.Id}");
        Assert.Equal(404, wrong.Status);
    }

    [Fact]
    public async Task ForceComplete_Running_Returns202AndPausedReturns409()
    {
        var source = f.AddHost();
        var vm = f.AddInstance(source, task: TaskState.Migrating);
        var live = f.AddMigration(vm, MigrationType.LiveMigration, MigrationStatus.Running, f.AddHost());
        var r = await f.SendAsync(HttpMethod.Post, $"v2.1/servers/{vm.Uuid}/migrations/{live.Id}/action", """{"force_complete": null}""");
        Assert.Equal(202, r.Status);
        await f.WaitForCastAsync("live_migration_force_complete", c => c.Payload["instance"]!["uuid"]!.GetValue<string>() == vm.Uuid);

        var paused = f.AddInstance(source, vm: VmState.Paused, task: TaskState.Migrating);
        var pm = f.AddMigration(paused, MigrationType.LiveMigration, MigrationStatus.Running, f.AddHost());
        var conflict = await f.SendAsync(HttpMethod.Post, $"v2.1/servers/{paused.Uuid}/migrations/{pm.Id}/action", """{"force_complete": null}""");
        Assert.Equal(409, conflict.Status);
        Assert.Equal($"Cannot 'force_complete' instance {paused.Uuid} while it is in vm_state paused", conflict.FaultMessage);

        var queued = f.AddInstance(source, task: TaskState.Migrating);
        var qm = f.AddMigration(queued, MigrationType.LiveMigration, MigrationStatus.Preparing, f.AddHost());
        Assert.Equal(400, (await f.SendAsync(HttpMethod.Post, $"v2.1/servers/{queued.Uuid}/migrations/{qm.Id}/action", """{"force_complete": null}""")).Status);
        Assert.Equal(400, (await f.SendAsync(HttpMethod.Post, $"v2.1/servers/{queued.Uuid}/migrations/{qm.Id}/action", """{"force_complete": {}}""")).Status);
    }

    [Fact]
    public async Task OsMigrations_ShapeAndFilters_FollowMicroversion()
    {
        var source = f.AddHost();
        var dest = f.AddHost();
        var vm = f.AddInstance(source);
        var cold = f.AddMigration(vm, MigrationType.Migration, MigrationStatus.Confirmed, dest);
        f.Time.Advance(TimeSpan.FromSeconds(1));
        var live = f.AddMigration(vm, MigrationType.LiveMigration, MigrationStatus.Running, dest);

        var r = await f.SendAsync(HttpMethod.Get, $"v2.1/os-migrations?instance_uuid={vm.Uuid}", version: "2.80");
        Assert.Equal(200, r.Status);
        var list = r.Json!["migrations"]!.AsArray();
        Assert.Equal([live.Id, cold.Id], list.Select(m => m!["id"]!.GetValue<int>()));
        var first = list[0]!.AsObject();
        foreach (var key in new[] { "id", "uuid", "instance_uuid", "source_compute", "source_node", "dest_compute", "dest_node", "dest_host",
                                    "status", "migration_type", "old_instance_type_id", "new_instance_type_id", "created_at", "updated_at", "links",
                                    "user_id", "project_id" })
        {
            Assert.True(first.ContainsKey(key), key);
        }
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$", first["created_at"]!.GetValue<string>());
        Assert.False(list[1]!.AsObject().ContainsKey("links"));

        var v21 = (await f.SendAsync(HttpMethod.Get, $"v2.1/os-migrations?instance_uuid={vm.Uuid}&bogus=1", version: "2.1")).Json!["migrations"]![0]!.AsObject();
        Assert.False(v21.ContainsKey("uuid"));
        Assert.False(v21.ContainsKey("migration_type"));

        var typed = await f.SendAsync(HttpMethod.Get, $"v2.1/os-migrations?instance_uuid={vm.Uuid}&migration_type=migration&status=confirmed");
        Assert.Equal(cold.Id, Assert.Single(typed.Json!["migrations"]!.AsArray())!["id"]!.GetValue<int>());
        var byHost = await f.SendAsync(HttpMethod.Get, $"v2.1/os-migrations?host={dest}");
        Assert.Equal(2, byHost.Json!["migrations"]!.AsArray().Count);

        Assert.Equal(400, (await f.SendAsync(HttpMethod.Get, "v2.1/os-migrations?bogus=1", version: "2.59")).Status);
        Assert.Equal(400, (await f.SendAsync(HttpMethod.Get, "v2.1/os-migrations?user_id=x", version: "2.79")).Status);
        var page = await f.SendAsync(HttpMethod.Get, $"v2.1/os-migrations?instance_uuid={vm.Uuid}&limit=1", version: "2.59");
        Assert.Single(page.Json!["migrations"]!.AsArray());
        Assert.Contains($"marker={live.Uuid}", page.Json["migrations_links"]![0]!["href"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(400, (await f.SendAsync(HttpMethod.Get, "v2.1/os-migrations?marker=nope", version: "2.59")).Status);
    }

    [Fact]
    public async Task OsMigrations_PagesWithMarkers_EachMatchOnceNewestFirst()
    {
        // 300 migrations made in one instant (ties ordered by id), a third of them in each status: pages of 40 of two
        // statuses are filled from several batches of rows each, and the marker chain ends with a short page.
        var vm = f.AddInstance(f.AddHost());
        var dest = f.AddHost();
        string[] statuses = [MigrationStatus.Confirmed, MigrationStatus.Error, MigrationStatus.Running];
        var made = Enumerable.Range(0, 300).Select(i => f.AddMigration(vm, MigrationType.Migration, statuses[i % 3], dest)).ToList();
        var expected = made.Where(m => m.Status != MigrationStatus.Running).OrderByDescending(m => m.Id).Select(m => m.Uuid).ToList();

        var seen = new List<string>();
        string? marker = null;
        while (true)
        {
            var query = $"v2.1/os-migrations?instance_uuid={vm.Uuid}&status=confirmed&status=error&limit=40" + (marker is null ? "" : $"&marker={marker}");
            var page = await f.SendAsync(HttpMethod.Get, query, version: "2.59");
            Assert.Equal(200, page.Status);
            var uuids = page.Json!["migrations"]!.AsArray().Select(m => m!["uuid"]!.GetValue<string>()).ToList();
            seen.AddRange(uuids);
            if (page.Json["migrations_links"] is null)
            {
                Assert.True(uuids.Count < 40, "a full page links to the next");
                break;
            }
            marker = uuids[^1];
        }
        Assert.Equal(expected, seen);

        // As in Nova, a marker need only name a migration, not one the filters keep: the page starts after it.
        var afterRunning = await f.SendAsync(HttpMethod.Get, $"v2.1/os-migrations?instance_uuid={vm.Uuid}&status=error&limit=1&marker={made[2].Uuid}", version: "2.59");
        Assert.Equal(made[1].Uuid, Assert.Single(afterRunning.Json!["migrations"]!.AsArray())!["uuid"]!.GetValue<string>());
        var unknown = await f.SendAsync(HttpMethod.Get, "v2.1/os-migrations?marker=nope", version: "2.59");
        Assert.Equal(400, unknown.Status);
        Assert.Equal("Marker nope could not be found.", unknown.FaultMessage);
    }

    [Fact]
    public async Task InstanceActions_ListAndShow_IncludeEvents()
    {
        var vm = f.AddInstance(f.AddHost(), project: "pa");
        f.Actions.StartAction(vm.Uuid, "req-1", "live-migration", "u", "pa");
        f.Actions.RecordEvent(vm.Uuid, "req-1", "compute_live_migration", "h1", finished: false, failed: false, details: null);
        f.Actions.RecordEvent(vm.Uuid, "req-1", "compute_live_migration", "h1", finished: true, failed: true, details: "boom");
        var list = await f.SendAsync(HttpMethod.Get, $"v2.1/servers/{vm.Uuid}/os-instance-actions", token: "u:pa");
        Assert.Equal("live-migration", list.Json!["instanceActions"]![0]!["action"]!.GetValue<string>());
        var show = await f.SendAsync(HttpMethod.Get, $"v2.1/servers/{vm.Uuid}/os-instance-actions/req-1", token: "u:pa");
        var ev = show.Json!["instanceAction"]!["events"]![0]!;
        Assert.Equal("Error", ev["result"]!.GetValue<string>());
        // Nova's os-instance-actions:events and events:details are admin-only: the owner sees neither traceback nor details.
        Assert.False(ev.AsObject().ContainsKey("details"));
        Assert.False(ev.AsObject().ContainsKey("traceback"));
        var asAdmin = (await f.SendAsync(HttpMethod.Get, $"v2.1/servers/{vm.Uuid}/os-instance-actions/req-1", version: "2.84")).Json!["instanceAction"]!["events"]![0]!;
        Assert.Equal("boom", asAdmin["details"]!.GetValue<string>());
        Assert.Equal("Error", show.Json["instanceAction"]!["message"]!.GetValue<string>());
        var old = await f.SendAsync(HttpMethod.Get, $"v2.1/servers/{vm.Uuid}/os-instance-actions/req-1", token: "u:pa", version: "2.50");
        Assert.False(old.Json!["instanceAction"]!.AsObject().ContainsKey("events"));
    }
}
