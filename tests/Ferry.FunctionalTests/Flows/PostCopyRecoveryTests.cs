using System.Net;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Ferry.Core.Domain;
using Ferry.Virt.Fake;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Flows;

/// <summary>Post-copy permitted, and a broken post-copy stream resumed at most twice in a row.</summary>
public sealed class PostCopyRecoveryFixture : SlowLinkFixture
{
    public const int RecoveryAttempts = 2;

    protected override void ConfigurePolicy(Compute.ComputeOptions compute)
    {
        compute.LiveMigrationPermitPostCopy = true;
        compute.LiveMigrationPostCopyRecoveryAttempts = RecoveryAttempts;
    }
}

/// <summary>
/// A post-copy stream that breaks (<see cref="FakeSteps.PostCopyStream"/> on the source): the source's driver asks the
/// destination compute over RPC to listen again and resumes, or hands the instance to the operator once its attempts run out.
/// </summary>
public sealed class PostCopyRecoveryTests(PostCopyRecoveryFixture fixture) : FlowTest<PostCopyRecoveryFixture>(fixture)
{
    private const string RecoverEvent = "compute_recover_post_copy_at_destination";

    [Fact]
    public async Task PostCopyStreamBreaksTwice_ResumedFromDestination_CompletesOnDestination()
    {
        // With a port: its binding is activated at the switch, and the invariant check holds it to compute2 at the end.
        var id = await BootAsync("compute1", metadata: Guests.NonConverging, networks: "auto");
        Driver("compute1").Faults.FailNext(FakeSteps.PostCopyStream, times: 2);

        await ForceIntoPostCopyAsync(id);
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal((MigrationStatus.Completed, "compute2", VmState.Active, (TaskState?)null),
            (migration.Status, instance.Host, instance.VmState, instance.TaskState));
        var placement = Fixture.Ferry.Services.GetRequiredService<IPlacementService>();
        var nodes = Fixture.Ferry.Services.GetRequiredService<ComputeNodeStore>();
        Assert.Equal([nodes.FindByHost("compute2")!.Uuid], placement.GetAllocations(id).Allocations.Keys);
        Assert.Empty(placement.GetAllocations(migration.Uuid).Allocations);
        Assert.Null(Driver("compute1").GetGuest(id));
        Assert.Equal(Virt.GuestPowerState.Running, Driver("compute2").GetGuest(id)!.PowerState);
        Assert.Null(Driver("compute3").GetGuest(id));
        var events = await LiveMigrationEventsAsync(id);
        var recoveries = events.Where(e => (string?)e["event"] == RecoverEvent).ToList();
        Assert.Equal(2, recoveries.Count);
        Assert.All(recoveries, e => Assert.Equal("Success", (string?)e["result"]));
        Assert.All(recoveries, e => Assert.Equal("compute2", (string?)e["host"]));
    }

    [Fact]
    public async Task DestinationCannotRecover_AttemptsExhausted_InstanceErrorAndBothCopiesKept()
    {
        var id = await BootAsync("compute1", metadata: Guests.NonConverging);
        Driver("compute1").Faults.FailNext(FakeSteps.PostCopyStream);
        Driver("compute2").Faults.FailAlways(FakeSteps.RecoverPostCopyAtDestination);

        await ForceIntoPostCopyAsync(id);
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal((MigrationStatus.Error, VmState.Error, (TaskState?)null), (migration.Status, instance.VmState, instance.TaskState));
        Assert.Equal(Virt.GuestPowerState.Paused, Driver("compute1").GetGuest(id)?.PowerState);
        Assert.NotNull(Driver("compute2").GetGuest(id));
        Assert.Contains("broke during post-copy", LastFault(id));
        var recoveries = (await LiveMigrationEventsAsync(id)).Where(e => (string?)e["event"] == RecoverEvent).ToList();
        Assert.Equal(PostCopyRecoveryFixture.RecoveryAttempts, recoveries.Count);
        Assert.All(recoveries, e => Assert.Equal("Error", (string?)e["result"]));

        Driver("compute2").Faults.Clear();
        await DeleteAndAssertNothingLeftAsync(id, migration.Uuid);
    }

    /// <summary>
    /// After a post-copy the destination has run the guest since the switch and the source's memory is stale: when the
    /// destination then fails to take over, resuming the source (the pre-copy answer) would run the guest from the past.
    /// </summary>
    [Fact]
    public async Task PostCopyCompleted_DestinationFailsToTakeOver_SourceNotResumedAndBothCopiesKept()
    {
        var id = await BootAsync("compute1", metadata: Guests.NonConverging);
        Driver("compute2").Faults.FailNext(FakeSteps.PostLiveMigrationAtDestination);

        await ForceIntoPostCopyAsync(id);
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal((MigrationStatus.Error, VmState.Error, (TaskState?)null), (migration.Status, instance.VmState, instance.TaskState));
        Assert.Equal(Virt.GuestPowerState.Paused, Driver("compute1").GetGuest(id)?.PowerState);
        Assert.NotNull(Driver("compute2").GetGuest(id));
        Assert.Contains("did not take the guest over", LastFault(id));

        await DeleteAndAssertNothingLeftAsync(id, migration.Uuid);
    }

    [Fact]
    public async Task SourceAgentRestart_DuringPostCopy_NothingRolledBackAndBothCopiesKept()
    {
        var id = await BootAsync("compute1", metadata: Guests.NonConverging);
        Driver("compute1").Faults.Delay(FakeSteps.PostCopyStream, TimeSpan.FromSeconds(30));
        Migration migration;
        try
        {
            await ForceIntoPostCopyAsync(id);
            migration = await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.RunningPostCopy, "post-copy");
            await Fixture.Ferry.Computes["compute1"].StopAsync();
            await Fixture.Ferry.StartComputeAsync("compute1", CancellationToken.None);
        }
        finally
        {
            Driver("compute1").Faults.Clear();
        }

        // A rollback would destroy the copy that runs the guest, a resume would run the stale one. The fake's copy
        // stopped with its agent, so the re-attached monitor finds nothing to watch.
        var instance = await WaitForAsync(id, i => i.VmState == VmState.Error, "handed to the operator");
        Assert.Equal((VmState.Error, (TaskState?)null, "compute1"), (instance.VmState, instance.TaskState, instance.Host));
        Assert.Equal(MigrationStatus.Error, Migrations.Get(migration.Uuid).Status);
        Assert.Equal(Virt.GuestPowerState.Paused, Driver("compute1").GetGuest(id)?.PowerState);
        Assert.NotNull(Driver("compute2").GetGuest(id));
        Assert.Contains("post-copy", LastFault(id));

        await DeleteAndAssertNothingLeftAsync(id, migration.Uuid);
    }

    /// <summary>
    /// Deleting a server left with a copy and a claim on both hosts removes all four: the instance's claim on compute2
    /// and the source copy (the source's terminate), the destination copy and the migration's claim on compute1
    /// (compute2's destroy_live_migration_destination).
    /// </summary>
    private async Task DeleteAndAssertNothingLeftAsync(string id, string migrationUuid)
    {
        var (status, body) = await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}");
        Assert.True(status == HttpStatusCode.NoContent, $"delete: {(int)status} {body?.ToJsonString()}");
        await WaitForAsync(id, i => i.VmState == VmState.Deleted, "deleted");
        var placement = Fixture.Ferry.Services.GetRequiredService<IPlacementService>();
        var deadline = DateTime.UtcNow + WaitLimit;
        while (Driver("compute2").GetGuest(id) is not null || placement.GetAllocations(migrationUuid).Allocations.Count > 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the destination's copy or the migration's claim outlived the delete");
            await Task.Delay(10);
        }
        Assert.Null(Driver("compute1").GetGuest(id));
        Assert.Empty(placement.GetAllocations(id).Allocations);
    }

    /// <summary>Starts the live migration to compute2 and force-completes it once it runs, which switches to post-copy.</summary>
    private async Task ForceIntoPostCopyAsync(string id)
    {
        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var running = await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.Running, "running");
        var (status, body) = await Admin.PostAsync($"servers/{id}/migrations/{running.Id}/action", JsonNode.Parse("""{"force_complete": null}"""));
        Assert.True(status == HttpStatusCode.Accepted, $"force_complete: {(int)status} {body?.ToJsonString()}");
    }

    /// <summary>The events of the live-migration action, as <c>GET /servers/{id}/os-instance-actions/{request_id}</c> shows them.</summary>
    private async Task<List<JsonNode>> LiveMigrationEventsAsync(string id)
    {
        var (listed, list) = await Admin.GetAsync($"servers/{id}/os-instance-actions");
        Assert.Equal(HttpStatusCode.OK, listed);
        var requestId = (string?)list!["instanceActions"]!.AsArray().Single(a => (string?)a!["action"] == "live-migration")!["request_id"];
        var (shown, action) = await Admin.GetAsync($"servers/{id}/os-instance-actions/{requestId}");
        Assert.Equal(HttpStatusCode.OK, shown);
        return [.. action!["instanceAction"]!["events"]!.AsArray().Select(e => e!)];
    }
}
