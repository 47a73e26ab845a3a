using System.Net;
using System.Text.Json.Nodes;
using Ferry.Core.Domain;
using Ferry.Host;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Flows;

/// <summary>
/// A simulated clock a hundred times faster than the real one: a guest that dirties memory faster
/// than the 1,000 MiB/s link never converges by itself (a round is 0.5 simulated s, 5 real ms), and a
/// completion timeout of 150 s per GiB arrives after about 1.5 real seconds.
/// </summary>
public class SlowLinkFixture : FerryFixture
{
    protected override void Configure(FerryHostOptions options)
    {
        options.FakeTimeScale = 0.01;
        options.MaxConcurrentLiveMigrations = 1;
    }

    protected override void Configure(AllInOne ferry) => ferry.ConfigureCompute = c =>
    {
        c.LiveMigrationCompletionTimeoutSecondsPerGiB = 150;
        ConfigurePolicy(c);
    };

    protected virtual void ConfigurePolicy(Compute.ComputeOptions compute)
    {
    }
}

public sealed class PostCopyFixture : SlowLinkFixture
{
    protected override void ConfigurePolicy(Compute.ComputeOptions compute) => compute.LiveMigrationPermitPostCopy = true;
}

public sealed class ForceCompleteOnTimeoutFixture : SlowLinkFixture
{
    protected override void ConfigurePolicy(Compute.ComputeOptions compute)
    {
        compute.LiveMigrationPermitPostCopy = true;
        compute.LiveMigrationTimeoutAction = Virt.CompletionTimeoutAction.ForceComplete;
    }
}

internal static class Guests
{
    public static readonly Dictionary<string, string> NonConverging = new() { ["ferry:dirty_rate_mibps"] = "4000" };
}

public sealed class ConvergenceTests(SlowLinkFixture fixture) : FlowTest<SlowLinkFixture>(fixture)
{
    [Fact]
    public async Task NonConvergingGuest_TimeoutActionAbort_CancelledAndStillOnSource()
    {
        var id = await BootAsync("compute1", metadata: Guests.NonConverging);

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal((MigrationStatus.Cancelled, "compute1", VmState.Active), (migration.Status, instance.Host, instance.VmState));
        Assert.True(migration.MemoryTotal > 0, "progress was recorded");
    }

    [Fact]
    public async Task Abort_RunningMigration_CancelledAndDestinationCleaned()
    {
        var id = await BootAsync("compute1", metadata: Guests.NonConverging);
        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var running = await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.Running, "running");

        var (list, listBody) = await Admin.GetAsync($"servers/{id}/migrations");
        Assert.Equal(HttpStatusCode.OK, list);
        Assert.Equal(running.Id, listBody!["migrations"]![0]!["id"]!.GetValue<int>());
        var (status, _) = await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}/migrations/{running.Id}");
        Assert.Equal(HttpStatusCode.Accepted, status);

        var (instance, migration) = await WaitForMoveEndAsync(id);
        Assert.Equal((MigrationStatus.Cancelled, "compute1"), (migration.Status, instance.Host));
        Assert.Null(Driver("compute2").GetGuest(id));
        Assert.Equal(Virt.GuestPowerState.Running, Driver("compute1").GetGuest(id)!.PowerState);
    }

    [Fact]
    public async Task ForceComplete_WithoutPostCopy_PausesGuestAndCompletes()
    {
        var id = await BootAsync("compute1", metadata: Guests.NonConverging);
        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var running = await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.Running, "running");

        var (status, _) = await Admin.PostAsync($"servers/{id}/migrations/{running.Id}/action", JsonNode.Parse("""{"force_complete": null}"""));
        Assert.Equal(HttpStatusCode.Accepted, status);

        var (instance, migration) = await WaitForMoveEndAsync(id);
        Assert.Equal((MigrationStatus.Completed, "compute2", PowerState.Running), (migration.Status, instance.Host, instance.PowerState));
    }

    [Fact]
    public async Task SecondMigrationFromSameHost_WaitsQueued_ThenAbortedWhileQueued()
    {
        var first = await BootAsync("compute1", metadata: Guests.NonConverging, name: "first");
        var second = await BootAsync("compute1", name: "second");
        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(first, "compute2"));
        await WaitForMigrationAsync(first, m => m.Status == MigrationStatus.Running, "first running");

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(second, "compute3"));
        var queued = await WaitForMigrationAsync(second, m => m.Status == MigrationStatus.Queued, "second queued");
        var (status, _) = await Admin.SendAsync(HttpMethod.Delete, $"servers/{second}/migrations/{queued.Id}", microversion: "2.65");
        Assert.Equal(HttpStatusCode.Accepted, status);

        var (_, cancelled) = await WaitForMoveEndAsync(second);
        Assert.Equal(MigrationStatus.Cancelled, cancelled.Status);
        var (_, firstMigration) = await WaitForMoveEndAsync(first);
        Assert.Equal(MigrationStatus.Cancelled, firstMigration.Status);
    }
}

public sealed class PostCopyTests(PostCopyFixture fixture) : FlowTest<PostCopyFixture>(fixture)
{
    [Fact]
    public async Task ForceComplete_WithPostCopy_SwitchesAndCompletes()
    {
        var id = await BootAsync("compute1", metadata: Guests.NonConverging);
        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var running = await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.Running, "running");

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.PostAsync($"servers/{id}/migrations/{running.Id}/action", JsonNode.Parse("""{"force_complete": null}"""))).Status);

        var (instance, migration) = await WaitForMoveEndAsync(id);
        Assert.Equal((MigrationStatus.Completed, "compute2"), (migration.Status, instance.Host));
        var events = Fixture.Ferry.Services.GetRequiredService<Ferry.ControlPlane.Persistence.ActionStore>();
        Assert.Contains(events.ListActions(id), a => a.Action == "live_migration_force_complete");
    }
}

public sealed class ForceCompleteOnTimeoutTests(ForceCompleteOnTimeoutFixture fixture) : FlowTest<ForceCompleteOnTimeoutFixture>(fixture)
{
    [Fact]
    public async Task NonConvergingGuest_TimeoutActionForceComplete_CompletesThroughPostCopy()
    {
        var id = await BootAsync("compute1", metadata: Guests.NonConverging);

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal((MigrationStatus.Completed, "compute2"), (migration.Status, instance.Host));
    }
}
