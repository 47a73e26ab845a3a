using System.Net;
using System.Text.Json.Nodes;
using Ferry.Core.Domain;
using Ferry.Virt;

namespace Ferry.FunctionalTests.Flows;

/// <summary>pause/unpause and suspend/resume through the API on fake hosts, with Nova's state checks around them.</summary>
public sealed class PauseSuspendTests(FerryFixture fixture) : FlowTest<FerryFixture>(fixture)
{
    private async Task<HttpStatusCode> ActAsync(string id, string body) => (await Admin.ActionAsync(id, JsonNode.Parse(body)!)).Status;

    [Fact]
    public async Task PauseThenUnpause_PausedWithPowerState3ThenActive_ActionsRecorded()
    {
        var id = await BootAsync("compute1");

        Assert.Equal(HttpStatusCode.Accepted, await ActAsync(id, """{"pause": null}"""));
        var paused = await WaitForAsync(id, i => i.VmState == VmState.Paused && i.TaskState is null, "PAUSED");
        Assert.Equal(PowerState.Paused, paused.PowerState);
        Assert.Equal(GuestPowerState.Paused, Driver("compute1").GetGuest(id)!.PowerState);
        var server = await Admin.GetServerAsync(id);
        Assert.Equal(("PAUSED", 3, "paused"), (server["status"]!.GetValue<string>(), server["OS-EXT-STS:power_state"]!.GetValue<int>(), server["OS-EXT-STS:vm_state"]!.GetValue<string>()));

        Assert.Equal(HttpStatusCode.Accepted, await ActAsync(id, """{"unpause": null}"""));
        var active = await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after unpause");
        Assert.Equal(PowerState.Running, active.PowerState);
        Assert.Equal(GuestPowerState.Running, Driver("compute1").GetGuest(id)!.PowerState);
        var actions = (await Admin.GetAsync($"servers/{id}/os-instance-actions")).Body!["instanceActions"]!.AsArray().Select(a => (string?)a!["action"]).ToList();
        Assert.Contains("pause", actions);
        Assert.Contains("unpause", actions);
    }

    [Fact]
    public async Task SuspendThenResume_SuspendedWithPowerState7ThenActive()
    {
        var id = await BootAsync("compute2");

        Assert.Equal(HttpStatusCode.Accepted, await ActAsync(id, """{"suspend": null}"""));
        var suspended = await WaitForAsync(id, i => i.VmState == VmState.Suspended && i.TaskState is null, "SUSPENDED");
        Assert.Equal(PowerState.Suspended, suspended.PowerState);
        Assert.Equal(GuestPowerState.Suspended, Driver("compute2").GetGuest(id)!.PowerState);
        var server = await Admin.GetServerAsync(id);
        Assert.Equal(("SUSPENDED", 7, "suspended"), (server["status"]!.GetValue<string>(), server["OS-EXT-STS:power_state"]!.GetValue<int>(), server["OS-EXT-STS:vm_state"]!.GetValue<string>()));

        Assert.Equal(HttpStatusCode.Accepted, await ActAsync(id, """{"resume": null}"""));
        var active = await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after resume");
        Assert.Equal(PowerState.Running, active.PowerState);
        var actions = (await Admin.GetAsync($"servers/{id}/os-instance-actions")).Body!["instanceActions"]!.AsArray().Select(a => (string?)a!["action"]).ToList();
        Assert.Contains("suspend", actions);
        Assert.Contains("resume", actions);
    }

    [Fact]
    public async Task Paused_StopMigrateResizeSuspendResumeRefused409_LiveMigrationKeepsItPaused()
    {
        var id = await BootAsync("compute1");
        await ActAsync(id, """{"pause": null}""");
        await WaitForAsync(id, i => i.VmState == VmState.Paused && i.TaskState is null, "PAUSED");

        foreach (var body in new[] { """{"os-stop": null}""", """{"migrate": null}""", """{"resize": {"flavorRef": "m1.small"}}""",
                     """{"suspend": null}""", """{"resume": null}""", """{"pause": null}""", """{"reboot": {"type": "SOFT"}}""", """{"os-start": null}""" })
        {
            var (status, error) = await Admin.ActionAsync(id, JsonNode.Parse(body)!);
            Assert.True(status == HttpStatusCode.Conflict, $"{body}: {(int)status} {error?.ToJsonString()}");
            Assert.Contains("while it is in vm_state paused", error!["conflictingRequest"]!["message"]!.GetValue<string>());
        }
        Assert.Equal(VmState.Paused, Instances.Get(id).VmState);

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var (moved, migration) = await WaitForMoveEndAsync(id);
        Assert.Equal((MigrationStatus.Completed, "compute2", VmState.Paused, PowerState.Paused), (migration.Status, moved.Host, moved.VmState, moved.PowerState));
        Assert.Equal(GuestPowerState.Paused, Driver("compute2").GetGuest(id)!.PowerState);

        Assert.Equal(HttpStatusCode.Accepted, await ActAsync(id, """{"unpause": null}"""));
        await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after unpause on compute2");
        Assert.Equal(GuestPowerState.Running, Driver("compute2").GetGuest(id)!.PowerState);
    }

    [Fact]
    public async Task Suspended_LiveAndBlockMigrationStopUnpauseRefused409_HardRebootRuns()
    {
        var id = await BootAsync("compute3");
        await ActAsync(id, """{"suspend": null}""");
        await WaitForAsync(id, i => i.VmState == VmState.Suspended && i.TaskState is null, "SUSPENDED");

        foreach (var body in new[] { """{"os-migrateLive": {"host": null, "block_migration": true}}""", """{"os-migrateLive": {"host": null, "block_migration": "auto"}}""",
                     """{"os-stop": null}""", """{"unpause": null}""", """{"pause": null}""", """{"suspend": null}""", """{"migrate": null}""" })
        {
            var (status, error) = await Admin.ActionAsync(id, JsonNode.Parse(body)!);
            Assert.True(status == HttpStatusCode.Conflict, $"{body}: {(int)status} {error?.ToJsonString()}");
            Assert.Contains("while it is in vm_state suspended", error!["conflictingRequest"]!["message"]!.GetValue<string>());
        }
        Assert.Empty(Migrations.List(new(InstanceUuid: id)));

        Assert.Equal(HttpStatusCode.Accepted, await ActAsync(id, """{"reboot": {"type": "HARD"}}"""));
        var rebooted = await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after hard reboot");
        Assert.Equal(PowerState.Running, rebooted.PowerState);
    }

    [Fact]
    public async Task Pause_OtherProjectsServer404_OwnServerAllowed()
    {
        var id = await BootAsync("compute1");
        Assert.Equal(HttpStatusCode.NotFound, (await Fixture.Demo.ActionAsync(id, JsonNode.Parse("""{"pause": null}""")!)).Status);
        Assert.Equal(VmState.Active, Instances.Get(id).VmState);

        var (created, body) = await Fixture.Demo.PostAsync("servers", JsonNode.Parse("""
            {"server": {"name": "mine", "imageRef": "ferry-test-guest", "flavorRef": "m1.nano", "networks": "none"}}
            """));
        Assert.Equal(HttpStatusCode.Accepted, created);
        var mine = body!["server"]!["id"]!.GetValue<string>();
        await WaitForAsync(mine, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE");
        Assert.Equal(HttpStatusCode.Accepted, (await Fixture.Demo.ActionAsync(mine, JsonNode.Parse("""{"suspend": null}""")!)).Status);
        await WaitForAsync(mine, i => i.VmState == VmState.Suspended && i.TaskState is null, "SUSPENDED");
        Assert.Equal(HttpStatusCode.Accepted, (await Fixture.Demo.ActionAsync(mine, JsonNode.Parse("""{"resume": null}""")!)).Status);
        await WaitForAsync(mine, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after resume");
    }
}
