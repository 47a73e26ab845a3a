using System.Net;
using System.Text.Json.Nodes;
using Ferry.ControlPlane;
using Ferry.ControlPlane.Conductor;
using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Ferry.Core.Domain;
using Ferry.Host;
using Ferry.Tests.Shared;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Flows;

/// <summary>
/// Servers of hosts that are gone (a dead host, a stale host of an earlier run) can always be got out:
/// os-resetState, local delete, the build timeout (issue 9 §1).
/// </summary>
public sealed class StaleHostTests(FerryFixture fixture) : FlowTest<FerryFixture>(fixture)
{
    private IPlacementService Placement => Fixture.Ferry.Services.GetRequiredService<IPlacementService>();

    [Fact]
    public async Task ResetState_ErrorThenActive_SetsVmStateClearsTaskStateAndRecordsAction()
    {
        var id = await BootAsync("compute1");
        Instances.Update(new Core.Rpc.Conductor.InstanceUpdateRequest { Uuid = id, SetTaskState = true, TaskState = TaskState.Deleting });

        var (status, _) = await Admin.ActionAsync(id, JsonNode.Parse("""{"os-resetState": {"state": "error"}}""")!);

        Assert.Equal(HttpStatusCode.Accepted, status);
        var server = await Admin.GetServerAsync(id);
        Assert.Equal(("ERROR", null), (server["status"]!.GetValue<string>(), (string?)server["OS-EXT-STS:task_state"]));
        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"os-resetState": {"state": "active"}}""")!)).Status);
        Assert.Equal(VmState.Active, Instances.Get(id).VmState);
        var actions = (await Admin.GetAsync($"servers/{id}/os-instance-actions")).Body!["instanceActions"]!.AsArray();
        Assert.Equal(2, actions.Count(a => (string?)a!["action"] == "resetState"));
    }

    [Fact]
    public async Task ResetState_BadStateOrNonAdmin_RefusedAndNothingChanged()
    {
        var (created, body) = await Fixture.Demo.PostAsync("servers", JsonNode.Parse("""
            {"server": {"name": "mine", "imageRef": "ferry-test-guest", "flavorRef": "m1.nano", "networks": "none"}}
            """));
        Assert.Equal(HttpStatusCode.Accepted, created);
        var id = body!["server"]!["id"]!.GetValue<string>();
        await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE");

        foreach (var bad in new[] { """{"state": "stopped"}""", "{}", """{"state": "error", "force": true}""", """{"state": 1}""", "null" })
        {
            var (refused, error) = await Admin.ActionAsync(id, JsonNode.Parse($$"""{"os-resetState": {{bad}}}""")!);
            Assert.Equal(HttpStatusCode.BadRequest, refused);
            Assert.NotNull(error!["badRequest"]);
        }
        var (forbidden, denied) = await Fixture.Demo.ActionAsync(id, JsonNode.Parse("""{"os-resetState": {"state": "error"}}""")!);
        Assert.Equal(HttpStatusCode.Forbidden, forbidden);
        Assert.Contains("os_compute_api:os-admin-actions:reset_state", denied!["forbidden"]!["message"]!.GetValue<string>());
        Assert.Equal(VmState.Active, Instances.Get(id).VmState);
        Assert.DoesNotContain((await Admin.GetAsync($"servers/{id}/os-instance-actions")).Body!["instanceActions"]!.AsArray(),
            a => (string?)a!["action"] == "resetState");
    }

    [Fact]
    public async Task Delete_ComputeServiceDown_DeletedLocallyAllocationsFreed_HostDestroysGuestWhenBack()
    {
        var id = await BootAsync("compute2");
        await Fixture.Ferry.Computes["compute2"].StopAsync();
        await ForceDownAsync("compute2", true);
        try
        {
            var (status, _) = await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}");

            Assert.Equal(HttpStatusCode.NoContent, status);
            // Deleted at once, by the API: nothing waits on the dead host.
            Assert.Null(Instances.Find(id));
            Assert.Empty(Placement.GetAllocations(id).Allocations);
            Assert.Equal(HttpStatusCode.NotFound, (await Admin.GetAsync($"servers/{id}")).Status);
            var actions = (await Admin.GetAsync($"servers/{id}/os-instance-actions", "2.21")).Body!["instanceActions"]!.AsArray();
            Assert.Contains(actions, a => (string?)a!["action"] == "delete");
            Assert.NotNull(Driver("compute2").GetGuest(id));

            await Fixture.Ferry.StartComputeAsync("compute2", CancellationToken.None);
            Assert.Null(Driver("compute2").GetGuest(id));
        }
        finally
        {
            if (!Fixture.Ferry.Computes["compute2"].IsRunning)
            {
                await Fixture.Ferry.StartComputeAsync("compute2", CancellationToken.None);
            }
            await ForceDownAsync("compute2", false);
        }
    }

    [Fact]
    public async Task Build_NoComputeAcknowledges_ErrorAfterBuildTimeoutClaimFreedThenDeletable()
    {
        var options = Fixture.Ferry.Services.GetRequiredService<ControlPlaneOptions>();
        var check = Fixture.Ferry.Services.GetRequiredService<BuildTimeoutCheck>();
        var timeout = options.InstanceBuildTimeout;
        // The host died after its last heartbeat: still up for the scheduler, but nobody takes the build.
        await Fixture.Ferry.Computes["compute3"].StopAsync();
        string? id = null;
        try
        {
            var (status, body) = await Admin.PostAsync("servers", JsonNode.Parse("""
                {"server": {"name": "orphan", "imageRef": "ferry-test-guest", "flavorRef": "m1.tiny", "networks": "none", "availability_zone": "nova:compute3"}}
                """));
            Assert.Equal(HttpStatusCode.Accepted, status);
            id = body!["server"]!["id"]!.GetValue<string>();
            await WaitForAsync(id, i => i.TaskState == TaskState.Spawning && i.Host == "compute3", "cast to compute3");
            Assert.NotEmpty(Placement.GetAllocations(id).Allocations);
            Assert.Empty(check.Run()); // not timed out yet

            options.InstanceBuildTimeout = TimeSpan.FromMilliseconds(1);
            var instance = await WaitForAsync(id, i => check.Run().Contains(id) || i.VmState == VmState.Error, "ERROR after the build timeout");

            instance = Instances.Get(id);
            Assert.Equal((VmState.Error, (TaskState?)null, (string?)null), (instance.VmState, instance.TaskState, instance.Host));
            Assert.Empty(Placement.GetAllocations(id).Allocations);
            var server = await Admin.GetServerAsync(id);
            Assert.Equal("ERROR", server["status"]!.GetValue<string>());
            Assert.Equal(BuildTimeoutCheck.FaultMessage, server["fault"]!["message"]!.GetValue<string>());

            Assert.Equal(HttpStatusCode.NoContent, (await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}")).Status);
            Assert.Null(Instances.Find(id));
        }
        finally
        {
            options.InstanceBuildTimeout = timeout;
            // The queued build reaches the host when it is back: it loses the compare-and-swap and cleans up.
            var compute3 = await Fixture.Ferry.StartComputeAsync("compute3", CancellationToken.None);
            // Before the invariants look: the late build spawns the guest, then loses and destroys it.
            var appeared = false;
            for (var waited = 0; id is not null && waited < 200; waited++)
            {
                var defined = compute3.Driver.ListGuests().Any(g => g.Uuid == id);
                appeared |= defined;
                if (appeared && !defined)
                {
                    break;
                }
                await Task.Delay(50);
            }
        }
    }

    [Fact]
    public async Task Build_AcknowledgedByCompute_NeverTimedOut()
    {
        var options = Fixture.Ferry.Services.GetRequiredService<ControlPlaneOptions>();
        var timeout = options.InstanceBuildTimeout;
        var id = await BootAsync("compute1");
        Instances.Update(new Core.Rpc.Conductor.InstanceUpdateRequest { Uuid = id, VmState = VmState.Building, SetTaskState = true, TaskState = TaskState.Spawning });
        options.InstanceBuildTimeout = TimeSpan.FromMilliseconds(1);
        try
        {
            Assert.DoesNotContain(id, Fixture.Ferry.Services.GetRequiredService<BuildTimeoutCheck>().Run());
            Assert.Equal(VmState.Building, Instances.Get(id).VmState);
        }
        finally
        {
            options.InstanceBuildTimeout = timeout;
            Instances.Update(new Core.Rpc.Conductor.InstanceUpdateRequest { Uuid = id, VmState = VmState.Active, SetTaskState = true, TaskState = null });
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

/// <summary>An all-in-one started again on the same data directory with fewer hosts (issue 9 §1).</summary>
public sealed class StaleHostRestartTests
{
    private sealed class RunFixture(string dataDirectory, int hosts) : FerryFixture
    {
        protected override string NewDataDirectory() => dataDirectory;

        protected override void Configure(FerryHostOptions options) => options.Hosts = hosts;
    }

    [Fact]
    public async Task Restart_FewerHosts_OldHostDownFromTheStart_ItsServerDeletedLocally()
    {
        var dataDirectory = TestTempNames.Directory("test");
        var first = new RunFixture(dataDirectory, hosts: 3);
        await first.InitializeAsync();
        string id;
        try
        {
            var (status, body) = await first.Admin.PostAsync("servers", JsonNode.Parse("""
                {"server": {"name": "old", "imageRef": "ferry-test-guest", "flavorRef": "m1.tiny", "networks": "none", "availability_zone": "nova:compute3"}}
                """));
            Assert.Equal(HttpStatusCode.Accepted, status);
            id = body!["server"]!["id"]!.GetValue<string>();
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
            while ((await first.Admin.GetServerAsync(id))["status"]!.GetValue<string>() != "ACTIVE")
            {
                Assert.True(DateTime.UtcNow < deadline, "server not ACTIVE on compute3");
                await Task.Delay(10);
            }
        }
        finally
        {
            first.Admin.Dispose();
            first.Demo.Dispose();
            await first.Ferry.DisposeAsync(); // keeps the data directory
        }

        var second = new RunFixture(dataDirectory, hosts: 2);
        await second.InitializeAsync();
        try
        {
            // compute3 heartbeat seconds ago, but this run does not run it: down at once, not after service_down_time.
            var services = (await second.Admin.GetAsync("os-services?binary=nova-compute")).Body!["services"]!.AsArray();
            Assert.Equal("down", services.Single(s => (string?)s!["host"] == "compute3")!["state"]!.GetValue<string>());
            Assert.All(services.Where(s => (string?)s!["host"] != "compute3"), s => Assert.Equal("up", s!["state"]!.GetValue<string>()));

            var (deleted, _) = await second.Admin.SendAsync(HttpMethod.Delete, $"servers/{id}");
            Assert.Equal(HttpStatusCode.NoContent, deleted);
            Assert.Equal(HttpStatusCode.NotFound, (await second.Admin.GetAsync($"servers/{id}")).Status);
            Assert.Empty(second.Ferry.Services.GetRequiredService<IPlacementService>().GetAllocations(id).Allocations);
            Invariants.AssertPlacementMatches(second.Ferry);
        }
        finally
        {
            await second.DisposeAsync();
        }
    }
}
