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

    [LoggerMessage(EventId = 7206, Level = LogLevel.Warning, Message = "QEMU of {InstanceId} exited (pid {Pid})")]
    private partial void LogProcessExited(string instanceId, int pid);

    [LoggerMessage(EventId = 7207, Level = LogLevel.Information, Message = "Created base image {BasePath} for image {ImageRef}")]
    private partial void LogBaseCreated(string imageRef, string basePath);

    [LoggerMessage(EventId = 7208, Level = LogLevel.Information, Message = "Rebooted {InstanceId} (hard: {Hard})")]
    private partial void LogRebooted(string instanceId, bool hard);

    [LoggerMessage(EventId = 7210, Level = LogLevel.Information, Message = "Live migration {MigrationId} of {InstanceId} ended {Outcome}")]
    private partial void LogMigrationFinished(string instanceId, string migrationId, LiveMigrationOutcome outcome);
}
