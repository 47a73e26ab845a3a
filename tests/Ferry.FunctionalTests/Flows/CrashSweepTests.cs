using System.Net;
using System.Text.Json.Nodes;
using Ferry.Core.Domain;
using Ferry.Tests.Shared;
using Ferry.Virt.Fake;

namespace Ferry.FunctionalTests.Flows;

/// <summary>
/// The fault sweep with kill -9 instead of an exception: a whole Ferry in a child process is killed
/// (<c>FERRY_FAKE_CRASH_AT</c>) before and after every driver step of every flow, then a new Ferry starts on its
/// data directory. Start-up recovery must leave the invariants holding, database and disk (nothing stuck, every
/// migration final, placement matching, one running copy, files only where the database says, the server's port
/// bound to the host that runs it and nowhere else), and the server must still be deletable without leftovers. Three classes so that xunit runs them side by side.
/// </summary>
public abstract class CrashSweepTests
{
    /// <summary>Flows, each with the crash points it passes (<c>step</c> or <c>step:after</c>).</summary>
    private static readonly Dictionary<string, string[]> s_points = new()
    {
        ["live"] =
        [
            FakeSteps.PreLiveMigration, After(FakeSteps.PreLiveMigration), FakeSteps.LiveMigration, FakeSteps.LiveMigrationRound,
            After(FakeSteps.LiveMigration), FakeSteps.PostLiveMigrationAtDestination, After(FakeSteps.PostLiveMigrationAtDestination),
            FakeSteps.PostLiveMigrationAtSource, After(FakeSteps.PostLiveMigrationAtSource),
        ],
        ["live-rollback"] = [FakeSteps.RollbackLiveMigrationAtDestination, After(FakeSteps.RollbackLiveMigrationAtDestination)],
        ["cold"] = ColdPoints(),
        ["resize"] = ColdPoints(),
        ["confirm"] = [FakeSteps.ConfirmMigration, After(FakeSteps.ConfirmMigration)],
        ["revert"] = [FakeSteps.Destroy, After(FakeSteps.Destroy), FakeSteps.FinishRevertMigration, After(FakeSteps.FinishRevertMigration)],
        ["evacuate"] = [FakeSteps.Spawn, After(FakeSteps.Spawn)],
        ["delete"] = [FakeSteps.Destroy, After(FakeSteps.Destroy)],
        // On shared storage the instance directory is one for both hosts: no clean-up may delete it.
        ["shared:live"] = [After(FakeSteps.PreLiveMigration), After(FakeSteps.PostLiveMigrationAtDestination), FakeSteps.PostLiveMigrationAtSource],
        ["shared:live-rollback"] = [After(FakeSteps.RollbackLiveMigrationAtDestination)],
        ["shared:cold"] = [After(FakeSteps.MigrateDiskAndPowerOff), After(FakeSteps.FinishMigration)],
        ["shared:revert"] = [After(FakeSteps.Destroy), After(FakeSteps.FinishRevertMigration)],
        ["shared:evacuate"] = [FakeSteps.Spawn, After(FakeSteps.Spawn)],
    };

    protected static TheoryData<string, string> Cases(params string[] flows)
    {
        var data = new TheoryData<string, string>();
        foreach (var flow in flows)
        {
            foreach (var point in s_points[flow])
            {
                data.Add(flow, point);
            }
        }
        return data;
    }

    protected static async Task RunTrialAsync(string flowName, string point)
    {
        var dataDirectory = TestTempNames.Directory("crash");
        try
        {
            await RunTrialAsync(flowName, point, dataDirectory);
        }
        finally
        {
            // Normally gone with the recovering Ferry; not when the trial failed before it started.
            if (Directory.Exists(dataDirectory))
            {
                Directory.Delete(dataDirectory, recursive: true);
            }
        }
    }

    private static async Task RunTrialAsync(string flowName, string point, string dataDirectory)
    {
        var shared = flowName.StartsWith("shared:", StringComparison.Ordinal);
        var flow = shared ? flowName["shared:".Length..] : flowName;
        var armed = Path.Combine(dataDirectory, "crash-armed");
        var environment = new Dictionary<string, string>
        {
            ["FERRY_FAKE_CRASH_AT"] = point,
            ["FERRY_FAKE_CRASH_ARMED"] = armed,
        };
        if (flow == "live-rollback")
        {
            environment["FERRY_FAKE_FAIL_AT"] = FakeSteps.LiveMigrationRound;
        }
        string id;
        await using (var child = await FerryChildProcess.StartAsync(dataDirectory, environment, sharedStorage: shared))
        {
            id = await BootAsync(child);
            if (flow is "confirm" or "revert")
            {
                await ActAsync(child, id, """{"migrate": {"host": "compute2"}}""");
                await child.WaitForServerAsync(id, s => Status(s) == ("VERIFY_RESIZE", null), "VERIFY_RESIZE");
            }
            if (flow == "evacuate")
            {
                await SetForcedDownAsync(child.Admin, "compute1", true);
            }
            await File.WriteAllTextAsync(armed, point);
            switch (flow)
            {
                case "live" or "live-rollback":
                    await ActAsync(child, id, """{"os-migrateLive": {"host": "compute2", "block_migration": "auto"}}""");
                    break;
                case "cold":
                    await ActAsync(child, id, """{"migrate": {"host": "compute2"}}""");
                    break;
                case "resize":
                    await ActAsync(child, id, """{"resize": {"flavorRef": "m1.small"}}""");
                    break;
                case "confirm":
                    await ActAsync(child, id, """{"confirmResize": null}""");
                    break;
                case "revert":
                    await ActAsync(child, id, """{"revertResize": null}""");
                    break;
                case "evacuate":
                    await ActAsync(child, id, """{"evacuate": {}}""");
                    break;
                case "delete":
                    await SendExpectingCrashAsync(child, HttpMethod.Delete, $"servers/{id}", null);
                    break;
            }
            Assert.True(await child.WaitForExitAsync(TimeSpan.FromSeconds(30)), $"{flow}: crash point {point} never reached; the child said:\n{child.Output}");
        }

        await using var ferry = new RestartableFerry(options => options.SharedStorage = shared, dataDirectory);
        await ferry.StartAsync();
        if (flow == "evacuate")
        {
            await SetForcedDownAsync(ferry.Admin, "compute1", false);
        }
        await Invariants.AssertQuietAndConsistentAsync(ferry.Ferry);
        var server = ferry.Instances.Find(id, includeDeleted: true)!;
        if (server.VmState != VmState.Deleted)
        {
            var (status, body) = await ferry.Admin.SendAsync(HttpMethod.Delete, $"servers/{id}");
            Assert.True(status == HttpStatusCode.NoContent, $"delete after recovery: {(int)status} {body?.ToJsonString()}");
            await ferry.WaitForAsync(id, i => i.VmState == VmState.Deleted, "deleted after recovery");
        }
        await Invariants.AssertQuietAndConsistentAsync(ferry.Ferry);
        foreach (var driver in ferry.Ferry.Drivers.Values)
        {
            Assert.Null(driver.GetGuest(id));
        }
    }

    private static string After(string step) => step + ":after";

    private static string[] ColdPoints() =>
    [
        FakeSteps.CheckCanReceive, FakeSteps.MigrateDiskAndPowerOff, After(FakeSteps.MigrateDiskAndPowerOff),
        FakeSteps.FinishMigration, After(FakeSteps.FinishMigration),
    ];

    private static (string? Status, string? TaskState) Status(JsonNode server) =>
        (server["status"]?.GetValue<string>(), server["OS-EXT-STS:task_state"]?.GetValue<string>());

    private static async Task<string> BootAsync(FerryChildProcess child)
    {
        var (status, body) = await child.Admin.PostAsync("servers", JsonNode.Parse("""
            {"server": {"name": "vm", "imageRef": "ferry-test-guest", "flavorRef": "m1.tiny", "networks": "auto", "availability_zone": "nova:compute1"}}
            """));
        Assert.True(status == HttpStatusCode.Accepted, $"boot: {(int)status} {body?.ToJsonString()}");
        var id = body!["server"]!["id"]!.GetValue<string>();
        Assert.NotNull(await child.WaitForServerAsync(id, s => Status(s) == ("ACTIVE", null), "ACTIVE"));
        return id;
    }

    private static Task ActAsync(FerryChildProcess child, string id, string action) =>
        SendExpectingCrashAsync(child, HttpMethod.Post, $"servers/{id}/action", JsonNode.Parse(action));

    /// <summary>Sends a request that must be accepted, unless the crash point killed the child before it could answer.</summary>
    private static async Task SendExpectingCrashAsync(FerryChildProcess child, HttpMethod method, string path, JsonNode? body)
    {
        try
        {
            var (status, response) = await child.Admin.SendAsync(method, path, body);
            Assert.True(status is HttpStatusCode.Accepted or HttpStatusCode.OK or HttpStatusCode.NoContent,
                $"{method} {path} {body?.ToJsonString()}: {(int)status} {response?.ToJsonString()}");
        }
        catch (HttpRequestException ex)
        {
            // Killed while answering: what it had done is on disk, which is what the trial is about.
            Assert.True(await child.WaitForExitAsync(TimeSpan.FromSeconds(10)), $"{method} {path}: {ex.Message}, and the child still runs");
        }
    }

    private static async Task SetForcedDownAsync(NovaClient admin, string host, bool forcedDown)
    {
        var id = (await admin.GetAsync($"os-services?host={host}&binary=nova-compute")).Body!["services"]![0]!["id"]!.GetValue<string>();
        var (status, body) = await admin.SendAsync(HttpMethod.Put, $"os-services/{id}", new JsonObject { ["forced_down"] = forcedDown });
        Assert.True(status == HttpStatusCode.OK, $"forced_down: {(int)status} {body?.ToJsonString()}");
    }
}

[Collection(ProcessRestartCollection.Name)]
public sealed class CrashSweepLiveTests : CrashSweepTests
{
    public static TheoryData<string, string> LiveCases() => Cases("live", "live-rollback");

    [Theory]
    [MemberData(nameof(LiveCases))]
    public Task Flow_ProcessKilledAtStep_RecoveredConsistent(string flow, string point) => RunTrialAsync(flow, point);
}

[Collection(ProcessRestartCollection.Name)]
public sealed class CrashSweepResizeTests : CrashSweepTests
{
    public static TheoryData<string, string> ResizeCases() => Cases("cold", "resize");

    [Theory]
    [MemberData(nameof(ResizeCases))]
    public Task Flow_ProcessKilledAtStep_RecoveredConsistent(string flow, string point) => RunTrialAsync(flow, point);
}

[Collection(ProcessRestartCollection.Name)]
public sealed class CrashSweepSharedStorageTests : CrashSweepTests
{
    public static TheoryData<string, string> SharedCases() =>
        Cases("shared:live", "shared:live-rollback", "shared:cold", "shared:revert", "shared:evacuate");

    [Theory]
    [MemberData(nameof(SharedCases))]
    public Task Flow_ProcessKilledAtStep_RecoveredConsistent(string flow, string point) => RunTrialAsync(flow, point);
}

[Collection(ProcessRestartCollection.Name)]
public sealed class CrashSweepOtherTests : CrashSweepTests
{
    public static TheoryData<string, string> OtherCases() => Cases("confirm", "revert", "evacuate", "delete");

    [Theory]
    [MemberData(nameof(OtherCases))]
    public Task Flow_ProcessKilledAtStep_RecoveredConsistent(string flow, string point) => RunTrialAsync(flow, point);
}
