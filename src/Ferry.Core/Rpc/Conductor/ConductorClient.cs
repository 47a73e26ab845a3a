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

    public Task<ServiceReportReply> ReportServiceAsync(ServiceReportRequest request, CancellationToken ct) =>
        CallAsync<ServiceReportRequest, ServiceReportReply>(Topics.Conductor, "service_report", request, ct);

    /// <summary>
    /// A periodic heartbeat: the same report without waiting for its reply, worthless once the next one is due
    /// (<paramref name="interval"/>). Nova's is a call; at 10,000 hosts the replies were half of the broker's messages.
    /// </summary>
    public Task HeartbeatAsync(ServiceReportRequest request, TimeSpan interval, CancellationToken ct) =>
        NotifyAsync(Topics.Conductor, "service_report", request, interval, ct);

    public Task<ComputeNode> UpdateComputeNodeAsync(ComputeNodeUpdateRequest request, CancellationToken ct) =>
        CallAsync<ComputeNodeUpdateRequest, ComputeNode>(Topics.Conductor, "compute_node_update", request, ct);

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

    /// <summary>The host's instances and its migrations in one call (10,000 agents starting make one each).</summary>
    public Task<HostRecoveryState> GetHostRecoveryStateAsync(string host, CancellationToken ct) =>
        CallAsync<HostRecoveryStateRequest, HostRecoveryState>(Topics.Conductor, "host_recovery_state_get", new HostRecoveryStateRequest(host), ct);

    public Task RecordActionEventAsync(ActionEventRequest request, CancellationToken ct) =>
        CallAsync<ActionEventRequest, RpcEmpty>(Topics.Conductor, "action_event", request, ct);

    /// <summary>An event's start, keyed (<see cref="ActionEventRequest.Key"/>), as a cast: the step does not wait for the conductor's write.</summary>
    public Task CastActionEventStartAsync(ActionEventRequest request, CancellationToken ct) =>
        CastAsync(Topics.Conductor, "action_event", request, ct);

    public Task RecordFaultAsync(InstanceFaultRequest request, CancellationToken ct) =>
        CallAsync<InstanceFaultRequest, RpcEmpty>(Topics.Conductor, "instance_fault_create", request, ct);
}
