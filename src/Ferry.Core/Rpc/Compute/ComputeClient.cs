using Ferry.Core.Domain;

namespace Ferry.Core.Rpc.Compute;

/// <summary>Typed client for compute.&lt;host&gt; (nova/compute/rpcapi.py). Call vs cast follows Nova.</summary>
public sealed class ComputeClient(IRpcTransport transport, RpcOptions options) : RpcClient(transport, options)
{
    public Task BuildAndRunInstanceAsync(string host, BuildAndRunInstanceRequest request, CancellationToken ct) =>
        CastAsync(Topics.Compute(host), "build_and_run_instance", request, ct);

    public Task StartInstanceAsync(string host, InstanceRequest request, CancellationToken ct) =>
        CastAsync(Topics.Compute(host), "start_instance", request, ct);

    public Task StopInstanceAsync(string host, InstanceRequest request, CancellationToken ct) =>
        CastAsync(Topics.Compute(host), "stop_instance", request, ct);

    public Task PauseInstanceAsync(string host, InstanceRequest request, CancellationToken ct) =>
        CastAsync(Topics.Compute(host), "pause_instance", request, ct);

    public Task UnpauseInstanceAsync(string host, InstanceRequest request, CancellationToken ct) =>
        CastAsync(Topics.Compute(host), "unpause_instance", request, ct);

    public Task SuspendInstanceAsync(string host, InstanceRequest request, CancellationToken ct) =>
        CastAsync(Topics.Compute(host), "suspend_instance", request, ct);

    public Task ResumeInstanceAsync(string host, InstanceRequest request, CancellationToken ct) =>
        CastAsync(Topics.Compute(host), "resume_instance", request, ct);

    public Task RebootInstanceAsync(string host, RebootInstanceRequest request, CancellationToken ct) =>
        CastAsync(Topics.Compute(host), "reboot_instance", request, ct);

    public Task TerminateInstanceAsync(string host, InstanceRequest request, CancellationToken ct) =>
        CastAsync(Topics.Compute(host), "terminate_instance", request, ct);

    public Task AttachVolumeAsync(string host, AttachVolumeRequest request, CancellationToken ct) =>
        CastAsync(Topics.Compute(host), "attach_volume", request, ct);

    public Task DetachVolumeAsync(string host, DetachVolumeRequest request, CancellationToken ct) =>
        CastAsync(Topics.Compute(host), "detach_volume", request, ct);

    public Task<ConsoleOutputReply> GetConsoleOutputAsync(string host, ConsoleOutputRequest request, CancellationToken ct) =>
        CallAsync<ConsoleOutputRequest, ConsoleOutputReply>(Topics.Compute(host), "get_console_output", request, ct);

    public Task<LiveMigrateData> CheckCanLiveMigrateDestinationAsync(string dest, CheckCanLiveMigrateDestinationRequest request, CancellationToken ct) =>
        CallAsync<CheckCanLiveMigrateDestinationRequest, LiveMigrateData>(Topics.Compute(dest), "check_can_live_migrate_destination", request, ct);

    public Task<LiveMigrateData> CheckCanLiveMigrateSourceAsync(string source, CheckCanLiveMigrateSourceRequest request, CancellationToken ct) =>
        CallAsync<CheckCanLiveMigrateSourceRequest, LiveMigrateData>(Topics.Compute(source), "check_can_live_migrate_source", request, ct);

    public Task LiveMigrationAsync(string source, LiveMigrationRequest request, CancellationToken ct) =>
        CastAsync(Topics.Compute(source), "live_migration", request, ct);

    public Task<LiveMigrateData> PreLiveMigrationAsync(string dest, PreLiveMigrationRequest request, CancellationToken ct) =>
        CallAsync<PreLiveMigrationRequest, LiveMigrateData>(Topics.Compute(dest), "pre_live_migration", request, ct, longCall: true);

    /// <summary>
    /// A normal call, not Nova's long one: the guest is paused on the source while it waits, so a dead
    /// destination must be noticed in one call timeout (then the source resumes or errors out).
    /// </summary>
    public Task PostLiveMigrationAtDestinationAsync(string dest, PostLiveMigrationAtDestinationRequest request, CancellationToken ct) =>
        CallAsync<PostLiveMigrationAtDestinationRequest, RpcEmpty>(Topics.Compute(dest), "post_live_migration_at_destination", request, ct);

    /// <summary>A call, not Nova's cast: the source reports the migration final only once the destination is clean.</summary>
    public Task<RollbackLiveMigrationAtDestinationReply> RollbackLiveMigrationAtDestinationAsync(string dest, RollbackLiveMigrationAtDestinationRequest request, CancellationToken ct) =>
        CallAsync<RollbackLiveMigrationAtDestinationRequest, RollbackLiveMigrationAtDestinationReply>(Topics.Compute(dest), "rollback_live_migration_at_destination", request, ct);

    /// <summary>From the source's migration monitor, while the guest runs on the destination and waits for its pages.</summary>
    public Task<RecoverPostCopyReply> RecoverPostCopyAtDestinationAsync(string dest, RecoverPostCopyAtDestinationRequest request, CancellationToken ct) =>
        CallAsync<RecoverPostCopyAtDestinationRequest, RecoverPostCopyReply>(Topics.Compute(dest), "recover_post_copy_at_destination", request, ct);

    public Task LiveMigrationAbortAsync(string source, LiveMigrationAbortRequest request, CancellationToken ct) =>
        CastAsync(Topics.Compute(source), "live_migration_abort", request, ct);

    public Task LiveMigrationForceCompleteAsync(string source, InstanceRequest request, CancellationToken ct) =>
        CastAsync(Topics.Compute(source), "live_migration_force_complete", request, ct);

    public Task PrepResizeAsync(string dest, PrepResizeRequest request, CancellationToken ct) =>
        CastAsync(Topics.Compute(dest), "prep_resize", request, ct);

    public Task ResizeInstanceAsync(string source, ResizeInstanceRequest request, CancellationToken ct) =>
        CastAsync(Topics.Compute(source), "resize_instance", request, ct);

    public Task FinishResizeAsync(string dest, FinishResizeRequest request, CancellationToken ct) =>
        CastAsync(Topics.Compute(dest), "finish_resize", request, ct);

    public Task ConfirmResizeAsync(string source, MigrationRequest request, CancellationToken ct) =>
        CastAsync(Topics.Compute(source), "confirm_resize", request, ct);

    /// <summary>Deletes a source copy a failed confirm left behind (sent when the server is deleted).</summary>
    public Task DestroyResizeSourceAsync(string source, MigrationRequest request, CancellationToken ct) =>
        CastAsync(Topics.Compute(source), "destroy_resize_source", request, ct);

    /// <summary>Deletes the incoming copy a failed live migration left on its destination, and the migration's claim (sent when the server is deleted).</summary>
    public Task DestroyLiveMigrationDestinationAsync(string dest, MigrationRequest request, CancellationToken ct) =>
        CastAsync(Topics.Compute(dest), "destroy_live_migration_destination", request, ct);

    public Task RevertResizeAsync(string dest, MigrationRequest request, CancellationToken ct) =>
        CastAsync(Topics.Compute(dest), "revert_resize", request, ct);

    public Task FinishRevertResizeAsync(string source, MigrationRequest request, CancellationToken ct) =>
        CastAsync(Topics.Compute(source), "finish_revert_resize", request, ct);

    public Task RebuildInstanceAsync(string dest, RebuildInstanceRequest request, CancellationToken ct) =>
        CastAsync(Topics.Compute(dest), "rebuild_instance", request, ct);

    public async Task<bool> CheckInstanceSharedStorageAsync(string host, CheckInstanceSharedStorageRequest request, CancellationToken ct) =>
        (await CallAsync<CheckInstanceSharedStorageRequest, BoolReply>(Topics.Compute(host), "check_instance_shared_storage", request, ct)).Value;
}
