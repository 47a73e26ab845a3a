using System.Threading.Channels;
using Ferry.Core.Networking;
using Ferry.Core.Volumes;
using Ferry.Core.Placement;
using Ferry.Core.Rpc;
using Ferry.Core.Rpc.Compute;
using Ferry.Core.Rpc.Conductor;
using Ferry.Virt;
using Microsoft.Extensions.Logging;

namespace Ferry.Compute;

/// <summary>
/// One compute agent (nova-compute): starts the host (inventory, recovery), then serves topic
/// compute.&lt;host&gt; by dispatching each method to the flow class that owns it, and heartbeats.
/// </summary>
public sealed partial class ComputeManager : IAsyncDisposable
{
    private readonly ComputeContext _context;
    private readonly IRpcTransport _transport;
    private readonly CancellationTokenSource _stopping = new();
    private IAsyncDisposable? _listener;
    private Task _background = Task.CompletedTask;
    // Guests the driver reported stopped by themselves, synced one by one off the driver's thread.
    private readonly Channel<string> _stoppedGuests = Channel.CreateUnbounded<string>(new() { SingleReader = true });

    public ComputeManager(ComputeOptions options, IComputeDriver driver, IRpcTransport transport, RpcOptions rpcOptions,
        PlacementHttpClient placement, TimeProvider time, ILoggerFactory loggers, NetworkHttpClient? network = null, VolumeHttpClient? volume = null)
    {
        options.Validate();
        _transport = transport;
        _context = new ComputeContext(options, driver, new ConductorClient(transport, rpcOptions), new ComputeClient(transport, rpcOptions),
            placement, time, loggers.CreateLogger($"Ferry.Compute.{options.Host}")) { Network = network, Volume = volume };
    }

    public string Host => _context.Host;

    public IComputeDriver Driver => _context.Driver;

    /// <summary>The agent's settings; the live-migration policy is read when each migration starts.</summary>
    public ComputeOptions Options => _context.Options;

    public string NodeUuid => _context.NodeUuid;

    /// <summary>Taking messages and heartbeating (false once stopped, as a crashed host).</summary>
    public bool IsRunning => _listener is not null;

    public async Task StartAsync(CancellationToken ct)
    {
        await _context.Driver.InitHostAsync(ct);
        var recovery = await ReportAndRecoverAsync(ct);
        var liveSource = new LiveMigrationSource(_context);
        _listener = _transport.Listen(Topics.Compute(_context.Host), CreateRpcServer(liveSource));
        // Monitors of post-copy migrations run while the agent serves: they may take minutes, and abort or
        // force-complete requests for them arrive as messages.
        var reattached = recovery.PostCopies.Select(p => liveSource.ReattachPostCopyAsync(p.Instance, p.Migration, p.Dest, p.SharedInstancePath, _stopping.Token));
        _context.Driver.GuestStopped += OnGuestStopped;
        _background = Task.WhenAll([HeartbeatAsync(_stopping.Token), SyncPowerStatesAsync(_stopping.Token), SyncStoppedGuestsAsync(_stopping.Token), .. reattached]);
        Log.Started(_context.Logger, _context.Host, _context.Driver.HypervisorType);
    }

    /// <summary>Stops taking messages and heartbeating, as a crashed or stopped nova-compute would.</summary>
    public async Task StopAsync()
    {
        _context.Driver.GuestStopped -= OnGuestStopped;
        await _stopping.CancelAsync();
        try
        {
            await _background;
        }
        catch (OperationCanceledException)
        {
            // A re-attached monitor stopped with the agent; the next start-up attaches again.
        }
        if (_listener is not null)
        {
            await _listener.DisposeAsync();
            _listener = null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _stopping.Dispose();
    }

    private RpcServer CreateRpcServer(LiveMigrationSource liveSource)
    {
        var lifecycle = new InstanceLifecycle(_context);
        var liveDest = new LiveMigrationDestination(_context);
        var resizeSource = new ResizeSource(_context);
        var resizeDest = new ResizeDestination(_context);
        var evacuation = new Evacuation(_context);
        return new RpcServer()
            .On<BuildAndRunInstanceRequest>("build_and_run_instance", lifecycle.BuildAndRunAsync)
            .On<InstanceRequest>("start_instance", lifecycle.StartAsync)
            .On<InstanceRequest>("stop_instance", lifecycle.StopAsync)
            .On<RebootInstanceRequest>("reboot_instance", lifecycle.RebootAsync)
            .On<InstanceRequest>("pause_instance", lifecycle.PauseAsync)
            .On<InstanceRequest>("unpause_instance", lifecycle.UnpauseAsync)
            .On<InstanceRequest>("suspend_instance", lifecycle.SuspendAsync)
            .On<InstanceRequest>("resume_instance", lifecycle.ResumeAsync)
            .On<InstanceRequest>("terminate_instance", lifecycle.TerminateAsync)
            .On<ConsoleOutputRequest, ConsoleOutputReply>("get_console_output", lifecycle.GetConsoleOutputAsync)
            .On<AttachVolumeRequest>("attach_volume", _context.Volumes.AttachAsync)
            .On<DetachVolumeRequest>("detach_volume", _context.Volumes.DetachAsync)
            .On<CheckCanLiveMigrateDestinationRequest, LiveMigrateData>("check_can_live_migrate_destination", liveDest.CheckCanLiveMigrateDestinationAsync)
            .On<CheckCanLiveMigrateSourceRequest, LiveMigrateData>("check_can_live_migrate_source", liveSource.CheckCanLiveMigrateSourceAsync)
            .On<LiveMigrationRequest>("live_migration", liveSource.LiveMigrationAsync)
            .On<PreLiveMigrationRequest, LiveMigrateData>("pre_live_migration", liveDest.PreLiveMigrationAsync)
            .On<RecoverPostCopyAtDestinationRequest, RecoverPostCopyReply>("recover_post_copy_at_destination", liveDest.RecoverPostCopyAtDestinationAsync)
            .On<PostLiveMigrationAtDestinationRequest>("post_live_migration_at_destination", liveDest.PostLiveMigrationAtDestinationAsync)
            .On<RollbackLiveMigrationAtDestinationRequest, RollbackLiveMigrationAtDestinationReply>("rollback_live_migration_at_destination", liveDest.RollbackLiveMigrationAtDestinationAsync)
            .On<LiveMigrationAbortRequest>("live_migration_abort", liveSource.AbortAsync)
            .On<InstanceRequest>("live_migration_force_complete", liveSource.ForceCompleteAsync)
            .On<CheckInstanceSharedStorageRequest, BoolReply>("check_instance_shared_storage", liveDest.CheckInstanceSharedStorageAsync)
            .On<PrepResizeRequest>("prep_resize", resizeDest.PrepResizeAsync)
            .On<ResizeInstanceRequest>("resize_instance", resizeSource.ResizeInstanceAsync)
            .On<FinishResizeRequest>("finish_resize", resizeDest.FinishResizeAsync)
            .On<MigrationRequest>("confirm_resize", resizeSource.ConfirmResizeAsync)
            .On<MigrationRequest>("revert_resize", resizeDest.RevertResizeAsync)
            .On<MigrationRequest>("destroy_resize_source", resizeSource.DestroyResizeSourceAsync)
            .On<MigrationRequest>("destroy_live_migration_destination", liveDest.DestroyLiveMigrationDestinationAsync)
            .On<MigrationRequest>("finish_revert_resize", resizeSource.FinishRevertResizeAsync)
            .On<RebuildInstanceRequest>("rebuild_instance", evacuation.RebuildInstanceAsync);
    }

    /// <summary>
    /// Reports the service, node and inventory and recovers what the last run left, again from the top while the
    /// conductor or placement cannot be reached or answers too late (every step may run twice), as nova-compute waits for
    /// nova-conductor at start: 10,000 agents starting at once can keep a broker busier than one call's wait.
    /// </summary>
    private async Task<StartupRecovery> ReportAndRecoverAsync(CancellationToken ct)
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var tracker = new ResourceTracker(_context);
                var proposed = tracker.ProposedNode();
                var started = await _context.Conductor.StartComputeAsync(new ComputeStartRequest(ServiceReport(), proposed), ct);
                await tracker.ReportInventoryAsync(started.Node, proposed, ct);
                var recovery = new StartupRecovery(_context);
                await recovery.RunAsync(started.Recovery, ct);
                await new PowerStateSync(_context).RunAsync(recovery.Instances, ct);
                return recovery;
            }
            catch (Exception ex) when (IsUnavailable(ex) && waited.Elapsed < s_conductorWait)
            {
                Log.WaitingForConductor(_context.Logger, _context.Host, attempt, ex.Message);
                await Task.Delay(TimeSpan.FromSeconds(Math.Min(attempt, 5)), _context.Time, ct);
            }
        }
    }

    /// <summary>
    /// The conductor or placement cannot answer now (away, or too busy: a placement API whose database refuses more
    /// connections answers 503), as opposed to a request it refused.
    /// </summary>
    private static bool IsUnavailable(Exception ex) =>
        ex is Core.Errors.RpcUnavailableException or Core.Errors.RpcTimeoutException or HttpRequestException
            or Core.Errors.FerryException { HttpStatus: 503 };

    // How long a starting agent keeps trying to reach the conductor before its start fails.
    private static readonly TimeSpan s_conductorWait = TimeSpan.FromMinutes(5);

    private ServiceReportRequest ServiceReport() => new(_context.Host, "nova-compute", Topics.Compute(_context.Host), 1);

    /// <summary>
    /// Heartbeats at this host's stable point of every <see cref="ComputeOptions.ReportInterval"/> (see <see cref="SpreadTimer"/>);
    /// the one done at start-up is not repeated before it.
    /// </summary>
    private async Task HeartbeatAsync(CancellationToken ct)
    {
        using var timer = new SpreadTimer(_context.Host, _context.Options.ReportInterval, _context.Time);
        await timer.RunAsync(async (_, token) =>
        {
            try
            {
                await _context.Conductor.HeartbeatAsync(ServiceReport(), _context.Options.ReportInterval, token);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                Log.HeartbeatFailed(_context.Logger, ex, _context.Host);
            }
        }, ct);
    }

    private void OnGuestStopped(string instanceUuid) => _stoppedGuests.Writer.TryWrite(instanceUuid);

    /// <summary>The instances whose guests the driver reported stopped by themselves, each synced as it comes.</summary>
    private async Task SyncStoppedGuestsAsync(CancellationToken ct)
    {
        var sync = new PowerStateSync(_context);
        try
        {
            await foreach (var instanceUuid in _stoppedGuests.Reader.ReadAllAsync(ct))
            {
                try
                {
                    await sync.RunForAsync(instanceUuid, ct);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // The periodic sync finds it later.
                    Log.PowerStateSyncFailed(_context.Logger, ex, _context.Host);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    /// <summary>Power-state syncs at this host's stable point of every <see cref="ComputeOptions.PowerStateSyncInterval"/>.</summary>
    private async Task SyncPowerStatesAsync(CancellationToken ct)
    {
        using var timer = new SpreadTimer(_context.Host, _context.Options.PowerStateSyncInterval, _context.Time);
        var sync = new PowerStateSync(_context);
        await timer.RunAsync(async (_, token) =>
        {
            try
            {
                await sync.RunAsync(token);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                Log.PowerStateSyncFailed(_context.Logger, ex, _context.Host);
            }
        }, ct);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 220, Level = LogLevel.Information, Message = "Compute {Host} started with the {Driver} driver")]
        public static partial void Started(ILogger logger, string host, string driver);

        [LoggerMessage(EventId = 221, Level = LogLevel.Warning, Message = "Heartbeat of {Host} failed")]
        public static partial void HeartbeatFailed(ILogger logger, Exception ex, string host);

        [LoggerMessage(EventId = 222, Level = LogLevel.Warning, Message = "Power state sync of {Host} failed")]
        public static partial void PowerStateSyncFailed(ILogger logger, Exception ex, string host);

        [LoggerMessage(EventId = 223, Level = LogLevel.Warning, Message = "Compute {Host} start: the conductor did not answer (attempt {Attempt}: {Reason}); trying again")]
        public static partial void WaitingForConductor(ILogger logger, string host, int attempt, string reason);
    }
}
