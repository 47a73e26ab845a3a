using Microsoft.Extensions.Logging;

namespace Ferry.Virt.Storage;

// EventIds 7300–7349 belong to the qemu-storage-daemon volume backend.
public sealed partial class QemuStorageDaemonBackend
{
    [LoggerMessage(EventId = 7300, Level = LogLevel.Information, Message = "Started qemu-storage-daemon for {RunDirectory} as pid {Pid}")]
    private partial void LogDaemonStarted(string runDirectory, int pid);

    [LoggerMessage(EventId = 7301, Level = LogLevel.Information, Message = "Adopted the running qemu-storage-daemon of {RunDirectory} (pid {Pid})")]
    private partial void LogDaemonAdopted(string runDirectory, int pid);

    [LoggerMessage(EventId = 7302, Level = LogLevel.Information, Message = "qemu-storage-daemon pid {Pid} serves NBD on {ListenAddress}:{Port}")]
    private partial void LogNbdServerStarted(int pid, string listenAddress, int port);

    [LoggerMessage(EventId = 7303, Level = LogLevel.Information, Message = "Reconciled qemu-storage-daemon pid {Pid}: {VolumeCount} volume files, {ExportedCount} exported again, {RemovedCount} stale exports removed")]
    private partial void LogReconciled(int pid, int volumeCount, int exportedCount, int removedCount);

    [LoggerMessage(EventId = 7304, Level = LogLevel.Information, Message = "Created volume {VolumeId} ({SizeGb} GiB{FromImage})")]
    private partial void LogVolumeCreated(string volumeId, int sizeGb, string fromImage);

    [LoggerMessage(EventId = 7305, Level = LogLevel.Information, Message = "Extended volume {VolumeId} from {OldBytes} to {NewBytes} bytes")]
    private partial void LogVolumeExtended(string volumeId, long oldBytes, long newBytes);

    [LoggerMessage(EventId = 7306, Level = LogLevel.Information, Message = "Deleted volume {VolumeId}")]
    private partial void LogVolumeDeleted(string volumeId);

    [LoggerMessage(EventId = 7307, Level = LogLevel.Information, Message = "Stopped qemu-storage-daemon pid {Pid} (killed: {Killed})")]
    private partial void LogDaemonStopped(int pid, bool killed);
}
