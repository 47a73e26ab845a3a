using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Qemu;

/// <summary>What an operator sees when QEMU itself refuses to run a guest, or dies under a live migration.</summary>
[Collection("qemu")]
[Trait("Requires", "qemu")]
public sealed class QemuFaultTests(QemuFerryFixture fixture) : QemuFlowTest<QemuFerryFixture>(fixture)
{
    [Fact]
    public async Task Boot_QemuRefusesToStart_FaultQuotesQemuAndDetailsHoldNoStackTrace()
    {
        var options = Qemu("compute1").Options;
        var cpu = options.CpuModel;
        options.CpuModel = "no-such-cpu";
        string id;
        try
        {
            var (status, body) = await Admin.PostAsync("servers", JsonNode.Parse("""
                {"server": {"name": "refused", "imageRef": "ferry-test-guest", "flavorRef": "m1.nano", "networks": "none", "availability_zone": "nova:compute1"}}
                """));
            Assert.True(status == HttpStatusCode.Accepted, $"boot: {(int)status} {body?.ToJsonString()}");
            id = body!["server"]!["id"]!.GetValue<string>();
            Track(id);
            await WaitForAsync(id, i => i.VmState == VmState.Error, "ERROR after QEMU refused to start");
        }
        finally
        {
            options.CpuModel = cpu;
        }

        var fault = (await Admin.GetServerAsync(id))["fault"]!;
        var message = fault["message"]!.GetValue<string>();
        var details = fault["details"]!.GetValue<string>();
        Assert.Contains("no-such-cpu", message); // QEMU's own words: unable to find CPU model 'no-such-cpu'
        Assert.Contains("qemu.log", details);
        Assert.Contains("no-such-cpu", details);
        Assert.DoesNotContain(" at Ferry.", details);
    }

    /// <summary>SIGTERM makes QEMU say why it stops ("terminating on signal 15 from pid …"), as an OOM kill or an operator would.</summary>
    private const string QemuTerminated = "terminating on signal 15";

    [Fact]
    public async Task LiveMigrate_DestinationQemuDiesMidCopy_FaultQuotesItsLastLinesAndNamesItsLog()
    {
        var id = await BootGuestAsync("compute1", dirtyMiBps: 8);
        var log = Path.Combine(Qemu("compute2").InstanceDirectory(id), "qemu.log");
        using (SlowMigrationsFrom("compute1"))
        {
            Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
            await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.Running && m.MemoryProcessed > 0, "copying");
            await TerminateAsync(Qemu("compute2").GetProcessId(id) ?? throw new InvalidOperationException("no incoming QEMU on compute2"));

            var (instance, migration) = await WaitForMoveEndAsync(id);
            Assert.Equal(("compute1", VmState.Active, MigrationStatus.Failed), (instance.Host, instance.VmState, migration.Status));
        }
        var (message, details) = await FaultAsync(id);
        Assert.Contains(QemuTerminated, message);
        Assert.Contains("compute2", message);
        Assert.Contains($"Last lines of {log}:", details);
        Assert.Contains(QemuTerminated, details);
        Assert.DoesNotContain(" at Ferry.", details);
        AssertRunsOnlyOn(id, "compute1");
    }

    [Fact]
    public async Task LiveMigrate_DestinationQemuRefusesToStart_SourcesFaultQuotesItsLastLines()
    {
        var id = await BootGuestAsync("compute1");
        var log = Path.Combine(Qemu("compute2").InstanceDirectory(id), "qemu.log");
        var options = Qemu("compute2").Options;
        var cpu = options.CpuModel;
        options.CpuModel = "no-such-cpu";
        try
        {
            Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
            var (instance, migration) = await WaitForMoveEndAsync(id);
            Assert.Equal(("compute1", VmState.Active, MigrationStatus.Failed), (instance.Host, instance.VmState, migration.Status));
        }
        finally
        {
            options.CpuModel = cpu;
        }
        // pre_live_migration failed on compute2 and the fault is the source's: the details crossed the call.
        var (message, details) = await FaultAsync(id);
        Assert.Contains("no-such-cpu", message);
        Assert.Contains($"Last lines of {log}:", details);
        Assert.Contains("no-such-cpu", details);
        AssertRunsOnlyOn(id, "compute1");
    }

    [Fact]
    public async Task ColdMigrate_DestinationQemuRefusesToStartInFinish_FaultQuotesItsLastLines()
    {
        var id = await BootGuestAsync("compute1");
        var log = Path.Combine(Qemu("compute2").InstanceDirectory(id), "qemu.log");
        var options = Qemu("compute2").Options;
        var cpu = options.CpuModel;
        options.CpuModel = "no-such-cpu";
        try
        {
            Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"migrate": {"host": "compute2"}}""")!)).Status);
            var (instance, migration) = await WaitForMoveEndAsync(id);
            Assert.Equal(("compute1", MigrationStatus.Error), (instance.Host, migration.Status));
        }
        finally
        {
            options.CpuModel = cpu;
        }
        var fault = Fixture.Ferry.Services.GetRequiredService<ActionStore>().LatestFault(id) ?? throw new InvalidOperationException($"{id} has no fault");
        Assert.Contains("no-such-cpu", fault.Message);
        Assert.Contains($"Last lines of {log}:", fault.Details);
        Assert.Contains("no-such-cpu", fault.Details);
    }

    [Fact]
    public async Task LiveMigrate_SourceQemuDiesMidCopy_FaultQuotesItsLastLinesAndNamesItsLog()
    {
        var id = await BootGuestAsync("compute1", dirtyMiBps: 8);
        var log = Path.Combine(Qemu("compute1").InstanceDirectory(id), "qemu.log");
        using (SlowMigrationsFrom("compute1"))
        {
            Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
            await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.Running && m.MemoryProcessed > 0, "copying");
            await TerminateAsync(Qemu("compute1").GetProcessId(id) ?? throw new InvalidOperationException("no QEMU on compute1"));

            var (instance, migration) = await WaitForMoveEndAsync(id);
            Assert.Equal(("compute1", VmState.Stopped, MigrationStatus.Error), (instance.Host, instance.VmState, migration.Status));
        }
        var (message, details) = await FaultAsync(id);
        Assert.Contains(QemuTerminated, message);
        Assert.Contains("died during live migration", message);
        Assert.Contains($"Last lines of {log}:", details);
        Assert.Contains(QemuTerminated, details);
        Assert.DoesNotContain(" at Ferry.", details);
        Assert.Null(Qemu("compute2").GetProcessId(id));
        Assert.False(Directory.Exists(Qemu("compute2").InstanceDirectory(id)), "the destination was cleaned");
    }

    /// <summary>
    /// The instance fault recorded for the failed move (a server that stays ACTIVE shows none in its view, as in Nova), and
    /// the API's account of it: the live-migration action's failed compute event, whose details (2.84) carry the message.
    /// </summary>
    private async Task<(string Message, string Details)> FaultAsync(string id)
    {
        var fault = Fixture.Ferry.Services.GetRequiredService<ActionStore>().LatestFault(id) ?? throw new InvalidOperationException($"{id} has no fault");
        var actions = (await Admin.GetAsync($"servers/{id}/os-instance-actions", "2.84")).Body!["instanceActions"]!.AsArray();
        var requestId = actions.Single(a => a!["action"]!.GetValue<string>() == "live-migration")!["request_id"]!.GetValue<string>();
        var events = (await Admin.GetAsync($"servers/{id}/os-instance-actions/{requestId}", "2.84")).Body!["instanceAction"]!["events"]!.AsArray();
        var failed = events.Single(e => e!["event"]!.GetValue<string>() == "compute_live_migration")!;
        Assert.Equal("Error", failed["result"]!.GetValue<string>());
        Assert.Equal(fault.Message, failed["details"]!.GetValue<string>());
        return (fault.Message, fault.Details ?? "");
    }

    private static async Task TerminateAsync(int pid)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill") { ArgumentList = { "-TERM", pid.ToString(CultureInfo.InvariantCulture) } })!;
        await kill.WaitForExitAsync();
        Assert.Equal(0, kill.ExitCode);
    }
}
