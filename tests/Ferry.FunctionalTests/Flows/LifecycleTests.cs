using System.Net;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Placement;
using Ferry.Core.Domain;
using Ferry.Virt.Fake;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Flows;

public sealed class LifecycleTests(FerryFixture fixture) : FlowTest<FerryFixture>(fixture)
{
    private IPlacementService Placement => Fixture.Ferry.Services.GetRequiredService<IPlacementService>();

    [Fact]
    public async Task Boot_SpawnFails_ErrorWithFaultAndNoAllocation()
    {
        Driver("compute2").Faults.FailNext(FakeSteps.Spawn);
        var (status, body) = await Admin.PostAsync("servers", JsonNode.Parse("""
            {"server": {"name": "doomed", "imageRef": "ferry-test-guest", "flavorRef": "m1.tiny", "networks": "none", "availability_zone": "nova:compute2"}}
            """));
        Assert.Equal(HttpStatusCode.Accepted, status);
        var id = body!["server"]!["id"]!.GetValue<string>();

        var instance = await WaitForAsync(id, i => i.VmState == VmState.Error && i.TaskState is null, "ERROR");

        Assert.Null(instance.Host);
        Assert.Empty(Placement.GetAllocations(id).Allocations);
        var server = await Admin.GetServerAsync(id);
        Assert.Equal("ERROR", server["status"]!.GetValue<string>());
        Assert.Contains("Injected failure", server["fault"]!["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task Delete_RunningServer_GuestAndAllocationsGone()
    {
        var id = await BootAsync("compute1");

        Assert.Equal(HttpStatusCode.NoContent, (await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}")).Status);
        await WaitForAsync(id, i => i.VmState == VmState.Deleted, "deleted");

        Assert.Null(Driver("compute1").GetGuest(id));
        Assert.Empty(Placement.GetAllocations(id).Allocations);
        Assert.Equal(HttpStatusCode.NotFound, (await Admin.GetAsync($"servers/{id}")).Status);
    }

    [Fact]
    public async Task StopThenStart_PowerStateFollows()
    {
        var id = await BootAsync("compute3");

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"os-stop": null}""")!)).Status);
        var stopped = await WaitForAsync(id, i => i.VmState == VmState.Stopped && i.TaskState is null, "SHUTOFF");
        Assert.Equal(PowerState.Shutdown, stopped.PowerState);

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"os-start": null}""")!)).Status);
        var started = await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE");
        Assert.Equal(PowerState.Running, started.PowerState);
    }

    [Fact]
    public async Task GuestStopsByItself_ServerIsShutoffAtOnce_NotAtTheNextPeriodicSync()
    {
        // An hour between periodic syncs: only the driver's event can make it SHUTOFF within the wait.
        await Fixture.Ferry.StartComputeAsync("compute3", CancellationToken.None, c => c.PowerStateSyncInterval = TimeSpan.FromHours(1));
        try
        {
            var poweredOff = await BootAsync("compute3");
            var panicked = await BootAsync("compute3");
            var untouched = await BootAsync("compute3");

            Driver("compute3").StopByItself(poweredOff);
            Driver("compute3").StopByItself(panicked, Virt.GuestPowerState.Crashed);

            var stopped = await WaitForAsync(poweredOff, i => i.VmState == VmState.Stopped, "SHUTOFF after its guest powered off");
            Assert.Equal((PowerState.Shutdown, (TaskState?)null), (stopped.PowerState, stopped.TaskState));
            // A panicked guest still holds its process: it is powered off, as Nova's stop of it does.
            var crashed = await WaitForAsync(panicked, i => i.VmState == VmState.Stopped, "SHUTOFF after its guest panicked");
            Assert.Equal(PowerState.Shutdown, crashed.PowerState);
            Assert.Equal(Virt.GuestPowerState.Shutdown, Driver("compute3").GetGuest(panicked)!.PowerState);
            Assert.Equal((VmState.Active, PowerState.Running), (Instances.Get(untouched).VmState, Instances.Get(untouched).PowerState));

            // As after any stop, the server starts again.
            Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(poweredOff, JsonNode.Parse("""{"os-start": null}""")!)).Status);
            var started = await WaitForAsync(poweredOff, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after start");
            Assert.Equal(PowerState.Running, started.PowerState);
        }
        finally
        {
            await Fixture.Ferry.StartComputeAsync("compute3", CancellationToken.None);
        }
    }

    [Fact]
    public async Task Demo_CannotMoveAdminServer_404AndForOwnServer_403()
    {
        var id = await BootAsync("compute1");
        var (status, _) = await Fixture.Demo.ActionAsync(id, JsonNode.Parse("""{"os-migrateLive": {"host": null, "block_migration": "auto"}}""")!);
        Assert.True(status is HttpStatusCode.NotFound or HttpStatusCode.Forbidden);

        var (created, body) = await Fixture.Demo.PostAsync("servers", JsonNode.Parse("""
            {"server": {"name": "mine", "imageRef": "ferry-test-guest", "flavorRef": "m1.nano", "networks": "none"}}
            """));
        Assert.Equal(HttpStatusCode.Accepted, created);
        var mine = body!["server"]!["id"]!.GetValue<string>();
        await WaitForAsync(mine, i => i.VmState == VmState.Active, "ACTIVE");

        var (forbidden, error) = await Fixture.Demo.ActionAsync(mine, JsonNode.Parse("""{"os-migrateLive": {"host": null, "block_migration": "auto"}}""")!);
        Assert.Equal(HttpStatusCode.Forbidden, forbidden);
        Assert.NotNull(error!["forbidden"]);
        Assert.Null(Instances.Get(mine).TaskState);
    }

    [Fact]
    public async Task ConsoleOutput_ServesTheGuestsSerialLog_TailedAndValidated()
    {
        var id = await BootAsync("compute2");
        await Admin.ActionAsync(id, JsonNode.Parse("""{"os-stop": null}""")!);
        await WaitForAsync(id, i => i.VmState == VmState.Stopped && i.TaskState is null, "SHUTOFF");
        await Admin.ActionAsync(id, JsonNode.Parse("""{"os-start": null}""")!);
        await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE");

        var (status, all) = await Admin.ActionAsync(id, JsonNode.Parse("""{"os-getConsoleOutput": {}}""")!);
        Assert.Equal(HttpStatusCode.OK, status);
        var output = all!["output"]!.GetValue<string>();
        Assert.Contains("spawned on compute2", output);
        var lines = output.TrimEnd('\n').Split('\n');

        var (_, last) = await Admin.ActionAsync(id, JsonNode.Parse("""{"os-getConsoleOutput": {"length": "1"}}""")!);
        Assert.Equal(lines[^1], last!["output"]!.GetValue<string>().TrimEnd('\n'));
        var (_, unlimited) = await Admin.ActionAsync(id, JsonNode.Parse("""{"os-getConsoleOutput": {"length": -1}}""")!);
        Assert.Equal(output, unlimited!["output"]!.GetValue<string>());

        foreach (var bad in new[] { """{"length": -2}""", """{"length": "ten"}""", """{"lines": 3}""", "[]" })
        {
            var (refused, error) = await Admin.ActionAsync(id, JsonNode.Parse($$"""{"os-getConsoleOutput": {{bad}}}""")!);
            Assert.Equal(HttpStatusCode.BadRequest, refused);
            Assert.NotNull(error!["badRequest"]);
        }
        var (foreign, _) = await Fixture.Demo.ActionAsync(id, JsonNode.Parse("""{"os-getConsoleOutput": {}}""")!);
        Assert.True(foreign is HttpStatusCode.NotFound or HttpStatusCode.Forbidden);
    }

    [Fact]
    public async Task Reboot_SoftWhenActive_HardAlsoWhenStopped_BadTypeRefused()
    {
        var id = await BootAsync("compute1");

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"reboot": {"type": "SOFT"}}""")!)).Status);
        await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after soft reboot");
        var (_, console) = await Admin.ActionAsync(id, JsonNode.Parse("""{"os-getConsoleOutput": {"length": 1}}""")!);
        Assert.Contains("rebooted (soft) on compute1", console!["output"]!.GetValue<string>());

        await Admin.ActionAsync(id, JsonNode.Parse("""{"os-stop": null}""")!);
        await WaitForAsync(id, i => i.VmState == VmState.Stopped && i.TaskState is null, "SHUTOFF");
        var (refused, conflict) = await Admin.ActionAsync(id, JsonNode.Parse("""{"reboot": {"type": "soft"}}""")!);
        Assert.Equal(HttpStatusCode.Conflict, refused);
        Assert.NotNull(conflict!["conflictingRequest"]);

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"reboot": {"type": "hard"}}""")!)).Status);
        var rebooted = await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after hard reboot");
        Assert.Equal(PowerState.Running, rebooted.PowerState);

        foreach (var bad in new[] { """{"type": "WARM"}""", "{}", """{"type": "HARD", "force": true}""" })
        {
            var (status, _) = await Admin.ActionAsync(id, JsonNode.Parse($$"""{"reboot": {{bad}}}""")!);
            Assert.Equal(HttpStatusCode.BadRequest, status);
        }
        var events = (await Admin.GetAsync($"servers/{id}/os-instance-actions")).Body!["instanceActions"]!.AsArray();
        Assert.Equal(2, events.Count(a => (string?)a!["action"] == "reboot"));
    }
}
