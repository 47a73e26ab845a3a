using System.Net;
using System.Text.Json.Nodes;
using Ferry.Core.Domain;
using Ferry.Virt;

namespace Ferry.FunctionalTests.Flows;

/// <summary>
/// A whole Ferry stopped and started again on the same data directory: the fake hosts' guests outlive it, as
/// QEMU's do, so every server booted before can still be stopped, started, moved and resized.
/// </summary>
[Collection(ProcessRestartCollection.Name)]
public sealed class RestartTests : IAsyncLifetime
{
    private readonly RestartableFerry _ferry = new();

    public Task InitializeAsync() => _ferry.StartAsync();

    public async Task DisposeAsync() => await _ferry.DisposeAsync();

    [Fact]
    public async Task WholeFerryRestart_EarlierServers_KeepPowerStateAndStillMoveStopAndStart()
    {
        var running = await _ferry.BootAsync("compute1");
        var stopped = await _ferry.BootAsync("compute1");
        await _ferry.ActAsync(stopped, """{"os-stop": null}""", i => i.VmState == VmState.Stopped && i.TaskState is null, "SHUTOFF");
        var resized = await _ferry.BootAsync("compute2");
        await _ferry.ActAsync(resized, """{"migrate": {"host": "compute3"}}""", i => i.VmState == VmState.Resized && i.TaskState is null, "VERIFY_RESIZE");

        await _ferry.StopAsync();
        await _ferry.StartAsync();

        Assert.Equal(PowerState.Running, _ferry.Instances.Get(running).PowerState);
        Assert.Equal(PowerState.Shutdown, _ferry.Instances.Get(stopped).PowerState);
        Assert.Equal(GuestPowerState.Running, _ferry.Ferry.Drivers["compute1"].GetGuest(running)?.PowerState);

        Assert.Equal(HttpStatusCode.Accepted, (await _ferry.Admin.ActionAsync(running, System.Text.Json.Nodes.JsonNode.Parse(
            """{"os-migrateLive": {"host": "compute2", "block_migration": "auto"}}""")!)).Status);
        await _ferry.WaitForAsync(running, i => i.Host == "compute2" && i.TaskState is null, "live-migrated to compute2");
        await _ferry.ActAsync(running, """{"resize": {"flavorRef": "m1.small"}}""", i => i.VmState == VmState.Resized && i.TaskState is null, "resized");
        await _ferry.ActAsync(running, """{"confirmResize": null}""", i => i.VmState == VmState.Active && i.TaskState is null, "resize confirmed");
        await _ferry.ActAsync(running, """{"os-stop": null}""", i => i.VmState == VmState.Stopped && i.TaskState is null, "stopped");
        await _ferry.ActAsync(running, """{"os-start": null}""", i => i.VmState == VmState.Active && i.TaskState is null, "started");
        await _ferry.ActAsync(stopped, """{"os-start": null}""", i => i.VmState == VmState.Active && i.TaskState is null, "started");
        await _ferry.ActAsync(resized, """{"revertResize": null}""", i => i.VmState == VmState.Active && i.TaskState is null && i.Host == "compute2", "reverted");

        Assert.Equal(PowerState.Running, _ferry.Instances.Get(running).PowerState);
        await Invariants.AssertQuietAndConsistentAsync(_ferry.Ferry);
    }

    [Fact]
    public async Task WholeFerryRestart_AfterEvacuation_OldHostDropsItsCopyAndFiles()
    {
        var id = await _ferry.BootAsync("compute1");
        await _ferry.Ferry.Computes["compute1"].StopAsync();
        var service = (await _ferry.Admin.GetAsync("os-services?host=compute1&binary=nova-compute")).Body!["services"]![0]!["id"]!.GetValue<string>();
        await _ferry.Admin.SendAsync(HttpMethod.Put, $"os-services/{service}", new JsonObject { ["forced_down"] = true });
        await _ferry.ActAsync(id, """{"evacuate": {}}""", i => i.Host != "compute1" && i.TaskState is null, "evacuated");
        await _ferry.Admin.SendAsync(HttpMethod.Put, $"os-services/{service}", new JsonObject { ["forced_down"] = false });
        var oldCopy = Path.Combine(_ferry.DataDirectory, "instances", "compute1", id);
        Assert.True(Directory.Exists(oldCopy), "the down host keeps its files until it comes back");

        // The old host comes back only with the whole Ferry: a new process must still know its guest to remove it.
        await _ferry.StopAsync();
        await _ferry.StartAsync();

        Assert.False(Directory.Exists(oldCopy), "evacuated guest's files left on the old host");
        Assert.Null(_ferry.Ferry.Drivers["compute1"].GetGuest(id));
        Assert.Equal(MigrationStatus.Completed, _ferry.Migrations.List(new(InstanceUuid: id))[0].Status);
        await Invariants.AssertQuietAndConsistentAsync(_ferry.Ferry);
    }
}
