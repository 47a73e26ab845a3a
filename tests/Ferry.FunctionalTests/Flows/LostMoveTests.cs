using Ferry.ControlPlane;
using Ferry.ControlPlane.Conductor;
using Ferry.ControlPlane.Conductor.Tasks;
using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Ferry.Core.Domain;
using Ferry.Core.Rpc.Conductor;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Flows;

/// <summary>
/// An API process that dies after setting a move's task_state but before its cast reaches the bus leaves a move no one
/// runs: the conductor's lost-move check ends it after the move start timeout, and a cast that was only late is dropped.
/// The state the dead API left is written here as the API writes it (task_state, action, for an evacuation its migration).
/// </summary>
public sealed class LostMoveTests(FerryFixture fixture) : FlowTest<FerryFixture>(fixture)
{
    private ControlPlaneOptions Options => Fixture.Ferry.Services.GetRequiredService<ControlPlaneOptions>();
    private LostMoveCheck Check => Fixture.Ferry.Services.GetRequiredService<LostMoveCheck>();
    private ActionStore Actions => Fixture.Ferry.Services.GetRequiredService<ActionStore>();
    private ConductorContext Conductor => Fixture.Ferry.Services.GetRequiredService<ConductorContext>();
    private IPlacementService Placement => Fixture.Ferry.Services.GetRequiredService<IPlacementService>();

    [Fact]
    public async Task LiveMigration_ApiDiedBeforeCast_EndedAfterTimeoutAndLateCastDropped()
    {
        var id = await BootAsync("compute1");
        var allocations = Placement.GetAllocations(id).Allocations.Keys.ToList();
        var requestId = AcceptedButNeverCast(id, TaskState.Migrating, "live-migration");

        Assert.DoesNotContain(id, Check.Run()); // within the timeout: the cast may still come
        var ended = WithTimeout(TimeSpan.FromTicks(1), Check.Run);

        Assert.Contains(id, ended);
        Assert.Null(Instances.Get(id).TaskState);
        var failed = ConductorEvent(id, requestId, "conductor_live_migrate_instance");
        Assert.Equal(("Error", LostMoveCheck.Details), (failed.Result, failed.Details));

        // The cast was only late: it arrives now and must not move a server no request waits on.
        await new LiveMigrationTask(Conductor).ExecuteAsync(new LiveMigrateInstanceRequest(id, null, null, false, requestId), CancellationToken.None);

        var instance = Instances.Get(id);
        Assert.Equal(("compute1", (TaskState?)null, VmState.Active), (instance.Host, instance.TaskState, instance.VmState));
        Assert.Empty(Migrations.List(new MigrationFilter(InstanceUuid: id)));
        Assert.Equal(allocations, Placement.GetAllocations(id).Allocations.Keys.ToList());
        Assert.Single(Driver("compute1").ListGuests(), g => g.Uuid == id);
    }

    [Fact]
    public async Task ColdMigration_ApiDiedBeforeCast_EndedAndLateCastDropped()
    {
        var id = await BootAsync("compute2");
        var requestId = AcceptedButNeverCast(id, TaskState.ResizePrep, "migrate");

        Assert.Contains(id, WithTimeout(TimeSpan.FromTicks(1), Check.Run));
        await new MigrationTask(Conductor).ExecuteAsync(new MigrateServerRequest(id, null, null, requestId), CancellationToken.None);

        Assert.Equal(("compute2", (TaskState?)null), (Instances.Get(id).Host, Instances.Get(id).TaskState));
        Assert.Empty(Migrations.List(new MigrationFilter(InstanceUuid: id)));
        Assert.Equal("Error", ConductorEvent(id, requestId, "conductor_migrate_server").Result);
    }

    [Fact]
    public async Task Evacuation_ApiDiedBeforeCast_MigrationEndsInErrorAndLateCastDropped()
    {
        var id = await BootAsync("compute3");
        var migration = Migrations.Create(n => new Migration
        {
            Id = n, Uuid = Guid.NewGuid().ToString(), InstanceUuid = id, MigrationType = MigrationType.Evacuation,
            Status = MigrationStatus.Accepted, SourceCompute = "compute3", SourceNode = "compute3", UserId = "admin", ProjectId = "admin",
        });
        var requestId = AcceptedButNeverCast(id, TaskState.Rebuilding, "evacuate");

        Assert.Contains(id, WithTimeout(TimeSpan.FromTicks(1), Check.Run));
        await new EvacuateTask(Conductor).ExecuteAsync(new EvacuateRequest(id, migration.Uuid, null, false, null, requestId), CancellationToken.None);

        Assert.Equal(MigrationStatus.Error, Migrations.Get(migration.Uuid).Status);
        Assert.Equal(("compute3", (TaskState?)null), (Instances.Get(id).Host, Instances.Get(id).TaskState));
        Assert.Single(Driver("compute3").ListGuests(), g => g.Uuid == id);
    }

    [Fact]
    public async Task Move_TakenByAConductor_NeverEndedByTheCheck()
    {
        var id = await BootAsync("compute1");
        var requestId = AcceptedButNeverCast(id, TaskState.Migrating, "live-migration");
        Actions.RecordEvent(id, requestId, "conductor_live_migrate_instance", ConductorContext.ConductorHost, false, false, null);
        try
        {
            Assert.DoesNotContain(id, WithTimeout(TimeSpan.FromTicks(1), Check.Run));
            Assert.Equal(TaskState.Migrating, Instances.Get(id).TaskState);
        }
        finally
        {
            Actions.RecordEvent(id, requestId, "conductor_live_migrate_instance", ConductorContext.ConductorHost, true, false, null);
            Instances.Update(new InstanceUpdateRequest { Uuid = id, SetTaskState = true, TaskState = null });
        }
    }

    [Fact]
    public async Task LiveMigration_AfterALostOne_Succeeds()
    {
        var id = await BootAsync("compute2");
        AcceptedButNeverCast(id, TaskState.Migrating, "live-migration");
        WithTimeout(TimeSpan.FromTicks(1), Check.Run);

        var (status, body) = await Admin.ActionAsync(id, System.Text.Json.Nodes.JsonNode.Parse("""{"os-migrateLive": {"host": null, "block_migration": "auto"}}""")!, "2.30");

        Assert.True(status == System.Net.HttpStatusCode.Accepted, body?.ToJsonString());
        var moved = await WaitForAsync(id, i => i.TaskState is null && i.Host != "compute2", "live migrated");
        Assert.Equal(VmState.Active, moved.VmState);
    }

    /// <summary>What the API writes before its cast, without the cast: as if it died right there.</summary>
    private string AcceptedButNeverCast(string id, TaskState task, string action)
    {
        var requestId = $"req-{Guid.NewGuid()}";
        Instances.Update(new InstanceUpdateRequest { Uuid = id, SetTaskState = true, TaskState = task, ExpectedTaskStates = [null] });
        Actions.StartAction(id, requestId, action, "admin", "admin");
        return requestId;
    }

    private InstanceActionEventRow ConductorEvent(string id, string requestId, string eventName)
    {
        var action = Actions.ListActions(id).Single(a => a.RequestId == requestId);
        return Actions.ListEvents(action.Id).Single(e => e.Event == eventName);
    }

    private T WithTimeout<T>(TimeSpan timeout, Func<T> run)
    {
        var saved = Options.MoveStartTimeout;
        Options.MoveStartTimeout = timeout;
        try
        {
            return run();
        }
        finally
        {
            Options.MoveStartTimeout = saved;
        }
    }
}
