using Ferry.Core.Domain;

namespace Ferry.Core.Rpc.Conductor;

/// <summary>Typed client for the conductor topic (nova/conductor/rpcapi.py plus the object proxy).</summary>
public sealed class ConductorClient(IRpcTransport transport, RpcOptions options) : RpcClient(transport, options)
{
    public Task BuildInstanceAsync(BuildInstanceRequest request, CancellationToken ct) =>
        CastAsync(Topics.Conductor, "build_instance", request, ct);

    public Task LiveMigrateInstanceAsync(LiveMigrateInstanceRequest request, CancellationToken ct) =>
        CastAsync(Topics.Conductor, "live_migrate_instance", request, ct);

    public Task MigrateServerAsync(MigrateServerRequest request, CancellationToken ct) =>
        CastAsync(Topics.Conductor, "migrate_server", request, ct);

    public Task EvacuateAsync(EvacuateRequest request, CancellationToken ct) =>
        CastAsync(Topics.Conductor, "rebuild_instance", request, ct);

    /// <summary>
    /// An agent's start: service report, node update and the reads of its recovery in one call (three calls before: at
    /// 10,000 hosts 20,000 calls more at every start, each two broker messages and a conductor dispatch).
    /// </summary>
    public Task<ComputeStartReply> StartComputeAsync(ComputeStartRequest request, CancellationToken ct) =>
        CallAsync<ComputeStartRequest, ComputeStartReply>(Topics.Conductor, "compute_start", request, ct);

    /// <summary>
    /// A periodic heartbeat: the start's service report again, without waiting for its reply, worthless once the next one is due
    /// (<paramref name="interval"/>). Nova's is a call; at 10,000 hosts the replies were half of the broker's messages.
    /// </summary>
    public Task HeartbeatAsync(ServiceReportRequest request, TimeSpan interval, CancellationToken ct) =>
        NotifyAsync(Topics.Conductor, "service_report", request, interval, ct);

    public Task<Instance> GetInstanceAsync(string uuid, CancellationToken ct) =>
        CallAsync<InstanceGetRequest, Instance>(Topics.Conductor, "instance_get", new InstanceGetRequest(uuid), ct);

    public async Task<List<Instance>> GetInstancesByHostAsync(string host, CancellationToken ct) =>
        (await CallAsync<InstancesByHostRequest, InstanceList>(Topics.Conductor, "instance_get_all_by_host", new InstancesByHostRequest(host), ct)).Instances;

    public Task<Instance> UpdateInstanceAsync(InstanceUpdateRequest request, CancellationToken ct) =>
        CallAsync<InstanceUpdateRequest, Instance>(Topics.Conductor, "instance_update", request, ct);

    public Task<Migration> GetMigrationAsync(string uuid, CancellationToken ct) =>
        CallAsync<MigrationGetRequest, Migration>(Topics.Conductor, "migration_get", new MigrationGetRequest(uuid), ct);

    public Task<Migration> UpdateMigrationAsync(MigrationUpdateRequest request, CancellationToken ct) =>
        CallAsync<MigrationUpdateRequest, Migration>(Topics.Conductor, "migration_update", request, ct);

    public Task RecordActionEventAsync(ActionEventRequest request, CancellationToken ct) =>
        CallAsync<ActionEventRequest, RpcEmpty>(Topics.Conductor, "action_event", request, ct);

    /// <summary>An event's start, keyed (<see cref="ActionEventRequest.Key"/>), as a cast: the step does not wait for the conductor's write.</summary>
    public Task CastActionEventStartAsync(ActionEventRequest request, CancellationToken ct) =>
        CastAsync(Topics.Conductor, "action_event", request, ct);

    public Task RecordFaultAsync(InstanceFaultRequest request, CancellationToken ct) =>
        CallAsync<InstanceFaultRequest, RpcEmpty>(Topics.Conductor, "instance_fault_create", request, ct);
}
