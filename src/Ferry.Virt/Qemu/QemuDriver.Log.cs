using Microsoft.Extensions.Logging;

namespace Ferry.Virt.Qemu;

// EventIds 7200–7299 belong to the QEMU driver.
public sealed partial class QemuDriver
{
    [LoggerMessage(EventId = 7200, Level = LogLevel.Information, Message = "QEMU host {HostName} initialized: QEMU {HypervisorVersion}, accel {Accel}, {GuestCount} guests ({AttachedCount} reattached)")]
    private partial void LogHostInitialized(string hostName, long hypervisorVersion, string accel, int guestCount, int attachedCount);

    [LoggerMessage(EventId = 7201, Level = LogLevel.Information, Message = "Spawned {InstanceId} on {HostName} as pid {Pid} (reuse disks: {ReuseDisks})")]
    private partial void LogSpawned(string instanceId, string hostName, int pid, bool reuseDisks);

    [LoggerMessage(EventId = 7202, Level = LogLevel.Information, Message = "Destroyed {InstanceId} on {HostName} (destroy disks: {DestroyDisks})")]
    private partial void LogDestroyed(string instanceId, string hostName, bool destroyDisks);

    [LoggerMessage(EventId = 7203, Level = LogLevel.Information, Message = "Powered off {InstanceId}")]
    private partial void LogPoweredOff(string instanceId);

    [LoggerMessage(EventId = 7204, Level = LogLevel.Information, Message = "Powered on {InstanceId} as pid {Pid}")]
    private partial void LogPoweredOn(string instanceId, int pid);

    [LoggerMessage(EventId = 7205, Level = LogLevel.Information, Message = "Reattached to {InstanceId} (pid {Pid})")]
    private partial void LogReattached(string instanceId, int pid);

    [LoggerMessage(EventId = 7206, Level = LogLevel.Warning, Message = "QEMU of {InstanceId} exited (pid {Pid}); its last output: {QemuOutput}")]
    private partial void LogProcessExited(string instanceId, int pid, string qemuOutput);

    [LoggerMessage(EventId = 7207, Level = LogLevel.Information, Message = "Created base image {BasePath} for image {ImageRef}")]
    private partial void LogBaseCreated(string imageRef, string basePath);

    [LoggerMessage(EventId = 7209, Level = LogLevel.Information, Message = "Downloaded image {ImageRef} from the image service to {HostName} ({Bytes} bytes, verified)")]
    private partial void LogImageDownloaded(string imageRef, string hostName, long bytes);

    [LoggerMessage(EventId = 7208, Level = LogLevel.Information, Message = "Rebooted {InstanceId} (hard: {Hard})")]
    private partial void LogRebooted(string instanceId, bool hard);

    [LoggerMessage(EventId = 7210, Level = LogLevel.Information, Message = "Live migration {MigrationId} of {InstanceId} ended {Outcome}")]
    private partial void LogMigrationFinished(string instanceId, string migrationId, LiveMigrationOutcome outcome);

    [LoggerMessage(EventId = 7244, Level = LogLevel.Information, Message = "Re-attaching to live migration {MigrationId} of {InstanceId}, which QEMU reports {Status}")]
    private partial void LogMigrationReattaching(string instanceId, string migrationId, string status);

    [LoggerMessage(EventId = 7220, Level = LogLevel.Warning, Message = "Post-copy is not available for {InstanceId} on {HostName}: {Reason}")]
    private partial void LogPostCopyUnavailable(string instanceId, string hostName, string reason);

    [LoggerMessage(EventId = 7221, Level = LogLevel.Warning, Message = "Live migration clean-up step {Step} for {InstanceId} failed: {Reason}")]
    private partial void LogMigrationCleanupFailed(string instanceId, string step, string reason);

    [LoggerMessage(EventId = 7222, Level = LogLevel.Warning, Message = "Live migration {MigrationId} of {InstanceId}: a QMP step failed: {Reason}")]
    private partial void LogMigrationStepFailed(string instanceId, string migrationId, string reason);

    [LoggerMessage(EventId = 7223, Level = LogLevel.Warning, Message = "Live migration {MigrationId} of {InstanceId} failed in QEMU: {Reason}")]
    private partial void LogMigrationQemuFailed(string instanceId, string migrationId, string reason);

    [LoggerMessage(EventId = 7224, Level = LogLevel.Warning, Message = "Live migration {MigrationId} of {InstanceId}: the disk mirror failed")]
    private partial void LogMirrorFailed(string instanceId, string migrationId);

    [LoggerMessage(EventId = 7225, Level = LogLevel.Warning, Message = "Live migration {MigrationId} of {InstanceId} not completed after {TimeoutSeconds} s; action {TimeoutAction}")]
    private partial void LogCompletionTimeout(string instanceId, string migrationId, long timeoutSeconds, CompletionTimeoutAction timeoutAction);

    [LoggerMessage(EventId = 7226, Level = LogLevel.Information, Message = "Live migration {MigrationId} of {InstanceId}: downtime limit {DowntimeMs} ms after {ElapsedSeconds} s")]
    private partial void LogDowntimeStep(string instanceId, string migrationId, long downtimeMs, long elapsedSeconds);

    [LoggerMessage(EventId = 7227, Level = LogLevel.Information, Message = "Live migration {MigrationId} of {InstanceId}: force-complete pauses the guest (stop-and-copy now)")]
    private partial void LogForceCompleteByPause(string instanceId, string migrationId);

    [LoggerMessage(EventId = 7228, Level = LogLevel.Information, Message = "Live migration {MigrationId} of {InstanceId} switched to post-copy after {ElapsedMs} ms")]
    private partial void LogSwitchedToPostCopy(string instanceId, string migrationId, long elapsedMs);

    [LoggerMessage(EventId = 7229, Level = LogLevel.Warning, Message = "Live migration {MigrationId} of {InstanceId}: switching to post-copy failed: {Reason}")]
    private partial void LogPostCopyRefused(string instanceId, string migrationId, string reason);

    [LoggerMessage(EventId = 7230, Level = LogLevel.Critical, Message = "Live migration {MigrationId} of {InstanceId} broke during post-copy ({Status}: {Reason}); the guest's memory is split between both hosts and needs manual recovery")]
    private partial void LogPostCopyLost(string instanceId, string migrationId, string? status, string reason);

    [LoggerMessage(EventId = 7231, Level = LogLevel.Warning, Message = "Live migration {MigrationId} of {InstanceId} ended with the guest stopped; resumed it on the source")]
    private partial void LogResumedAfterFailedMigration(string instanceId, string migrationId);

    [LoggerMessage(EventId = 7232, Level = LogLevel.Warning, Message = "Live migration {MigrationId} of {InstanceId}: the post-copy stream broke ({Status}); resume attempt {Attempt} of {Attempts}")]
    private partial void LogPostCopyPaused(string instanceId, string migrationId, string? status, int attempt, int attempts);

    [LoggerMessage(EventId = 7233, Level = LogLevel.Information, Message = "Live migration {MigrationId} of {InstanceId}: resuming post-copy to {Uri}")]
    private partial void LogPostCopyResuming(string instanceId, string migrationId, string uri);

    [LoggerMessage(EventId = 7234, Level = LogLevel.Warning, Message = "Live migration {MigrationId} of {InstanceId}: post-copy resume attempt {Attempt} failed: {Reason}")]
    private partial void LogPostCopyResumeFailed(string instanceId, string migrationId, int attempt, string reason);

    [LoggerMessage(EventId = 7235, Level = LogLevel.Warning, Message = "Live migration {MigrationId} of {InstanceId}: no post-copy byte moved for {StallSeconds} s; cutting the stream to resume it")]
    private partial void LogPostCopyStalled(string instanceId, string migrationId, int stallSeconds);

    [LoggerMessage(EventId = 7236, Level = LogLevel.Information, Message = "Incoming post-copy migration of {InstanceId} on {HostName} listens again on {Uri}")]
    private partial void LogPostCopyRecoverListening(string instanceId, string hostName, string uri);

    [LoggerMessage(EventId = 7240, Level = LogLevel.Information, Message = "Serving the kept copy of {InstanceId} for {DestHost} on {Address}:{Port} ({FileCount} files)")]
    private partial void LogResizeServing(string instanceId, string destHost, string address, int port, int fileCount);

    [LoggerMessage(EventId = 7241, Level = LogLevel.Information, Message = "Finished the migration of {InstanceId} on {HostName}: {MemoryMb} MB, {RootGb} GB root (power on: {PowerOn})")]
    private partial void LogResizeFinished(string instanceId, string hostName, int memoryMb, int rootGb, bool powerOn);

    [LoggerMessage(EventId = 7242, Level = LogLevel.Information, Message = "Deleted the kept resize copy of {InstanceId} on {HostName}")]
    private partial void LogResizeConfirmed(string instanceId, string hostName);

    [LoggerMessage(EventId = 7243, Level = LogLevel.Information, Message = "Reverted the resize of {InstanceId} on {HostName} (power on: {PowerOn})")]
    private partial void LogResizeReverted(string instanceId, string hostName, bool powerOn);

    [LoggerMessage(EventId = 7250, Level = LogLevel.Information, Message = "Suspended {InstanceId}: its state is saved in {Path}")]
    private partial void LogSuspended(string instanceId, string path);

    [LoggerMessage(EventId = 7251, Level = LogLevel.Information, Message = "Resumed {InstanceId} from its saved state (QEMU pid {Pid})")]
    private partial void LogResumed(string instanceId, int pid);

    [LoggerMessage(EventId = 7260, Level = LogLevel.Debug, Message = "Plugged {Taps} into {Bridge}")]
    private partial void LogNicsPlugged(string taps, string bridge);

    [LoggerMessage(EventId = 7261, Level = LogLevel.Warning, Message = "announce-self for {InstanceId} failed: {Reason}")]
    private partial void LogAnnounceFailed(string instanceId, string reason);

    [LoggerMessage(EventId = 7270, Level = LogLevel.Warning, Message = "Volumes {VolumeIds} of {InstanceId} cannot be opened on {HostName}: their export at {Endpoint} is not reachable ({Reason})")]
    private partial void LogVolumeExportUnreachable(string instanceId, string volumeIds, string hostName, string endpoint, string reason);
}
