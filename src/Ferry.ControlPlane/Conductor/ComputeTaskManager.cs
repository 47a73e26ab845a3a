using Ferry.ControlPlane.Conductor.Tasks;
using Ferry.Core.Domain;
using Ferry.Core.Rpc;
using Ferry.Core.Rpc.Conductor;

namespace Ferry.ControlPlane.Conductor;

/// <summary>
/// Handles the conductor topic: the move flows the API casts, and the database proxy compute agents
/// call, since they never open the database themselves (nova/conductor/manager.py).
/// <para>
/// Idempotent (run again on a redelivery, no deduplication row): the reads, <c>service_report</c> (sets the heartbeat's
/// time and version; a first report's insert is an upsert) and <c>compute_start</c> (that report, then the node's fields:
/// its uuid is kept for life, so a second run answers the same uuid). Not: the moves, <c>instance_update</c> and
/// <c>migration_update</c> (compare-and-swap on an expected state: a second run fails, or undoes a later change),
/// <c>action_event</c> (an unkeyed start inserts a row) and <c>instance_fault_create</c> (inserts a row).
/// </para>
/// </summary>
public sealed class ComputeTaskManager(ConductorContext context)
{
    public RpcServer CreateRpcServer() => new RpcServer()
        .On<BuildInstanceRequest>("build_instance", new BuildTask(context).ExecuteAsync)
        .On<LiveMigrateInstanceRequest>("live_migrate_instance", new LiveMigrationTask(context).ExecuteAsync)
        .On<MigrateServerRequest>("migrate_server", new MigrationTask(context).ExecuteAsync)
        .On<EvacuateRequest>("rebuild_instance", new EvacuateTask(context).ExecuteAsync)
        .On<ServiceReportRequest, ServiceReportReply>("service_report", ReportServiceAsync, idempotent: true)
        .On<ComputeStartRequest, ComputeStartReply>("compute_start", StartComputeAsync, idempotent: true)
        .On<InstanceGetRequest, Instance>("instance_get", (r, ct) => context.Instances.GetAsync(r.Uuid, ct), idempotent: true)
        .On<InstancesByHostRequest, InstanceList>("instance_get_all_by_host", async (r, ct) =>
            new InstanceList(await context.Instances.ListByHostAsync(r.Host, ct)), idempotent: true)
        .On<InstanceUpdateRequest, Instance>("instance_update", (r, ct) => context.Instances.UpdateAsync(r, ct))
        .On<MigrationGetRequest, Migration>("migration_get", (r, ct) => context.Migrations.GetAsync(r.Uuid, ct), idempotent: true)
        .On<MigrationUpdateRequest, Migration>("migration_update", (r, ct) => context.Migrations.UpdateAsync(r, ct))
        .On<ActionEventRequest>("action_event", (r, ct) =>
            context.Actions.RecordEventAsync(r.InstanceUuid, r.RequestId, r.Event, r.Host, r.Finished, r.Failed, r.Details, r.Traceback, r.Key, r.StartTime, ct))
        .On<InstanceFaultRequest>("instance_fault_create", (r, ct) => context.Actions.AddFaultAsync(r.InstanceUuid, r.Code, r.Message, r.Host, r.Details, ct));

    private async Task<ServiceReportReply> ReportServiceAsync(ServiceReportRequest report, CancellationToken ct)
    {
        var service = await context.Services.ReportAsync(report.Host, report.Binary, report.Topic, report.Version, ct);
        return new ServiceReportReply(service.Id, service.ForcedDown, service.Disabled);
    }

    /// <summary>The service, then the node, then the host's instances and migrations (neither write moves an instance).</summary>
    private async Task<ComputeStartReply> StartComputeAsync(ComputeStartRequest request, CancellationToken ct)
    {
        var service = await ReportServiceAsync(request.Service, ct);
        var node = await context.Nodes.UpsertAsync(request.Node, ct);
        var host = request.Service.Host;
        var recovery = new HostRecoveryState(await context.Instances.ListByHostAsync(host, ct),
            await context.Migrations.ListAsync(new Persistence.MigrationFilter(Host: host), ct));
        return new ComputeStartReply(service, node, recovery);
    }
}
