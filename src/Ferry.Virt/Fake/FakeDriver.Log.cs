using Microsoft.Extensions.Logging;

namespace Ferry.Virt.Fake;

// EventIds 7100–7199 belong to the fake driver.
public sealed partial class FakeDriver
{
    [LoggerMessage(EventId = 7100, Level = LogLevel.Information, Message = "Fake host {HostName} initialized with {GuestCount} guests")]
    private partial void LogHostInitialized(string hostName, int guestCount);

    [LoggerMessage(EventId = 7101, Level = LogLevel.Information, Message = "Spawned {InstanceId} on {HostName} (reuse disks: {ReuseDisks})")]
    private partial void LogSpawned(string instanceId, string hostName, bool reuseDisks);

    [LoggerMessage(EventId = 7102, Level = LogLevel.Information, Message = "Destroyed {InstanceId} on {HostName} (destroy disks: {DestroyDisks})")]
    private partial void LogDestroyed(string instanceId, string hostName, bool destroyDisks);

    [LoggerMessage(EventId = 7110, Level = LogLevel.Information, Message = "Live migration {MigrationId} of {InstanceId} from {HostName} to {DestHost} started")]
    private partial void LogMigrationStarted(string instanceId, string hostName, string destHost, string migrationId);

    [LoggerMessage(EventId = 7111, Level = LogLevel.Debug, Message = "Live migration of {InstanceId}: round {Iteration} ended at {ClockSeconds:F3}s simulated, {RemainingBytes} bytes dirty, expected downtime {ExpectedDowntimeMs} ms")]
    private partial void LogRound(string instanceId, int iteration, double clockSeconds, long remainingBytes, long expectedDowntimeMs);

    [LoggerMessage(EventId = 7112, Level = LogLevel.Warning, Message = "Live migration of {InstanceId} hit its completion timeout at {ClockSeconds:F1}s simulated; action {TimeoutAction}")]
    private partial void LogCompletionTimeout(string instanceId, double clockSeconds, CompletionTimeoutAction timeoutAction);

    [LoggerMessage(EventId = 7113, Level = LogLevel.Warning, Message = "Live migration of {InstanceId} failed by injection at round {Iteration}")]
    private partial void LogRoundFailed(string instanceId, int iteration);

    [LoggerMessage(EventId = 7114, Level = LogLevel.Warning, Message = "Live migration of {InstanceId} gave up after {Iteration} rounds without simulated time")]
    private partial void LogRoundCapReached(string instanceId, int iteration);

    [LoggerMessage(EventId = 7115, Level = LogLevel.Information, Message = "Live migration {MigrationId} of {InstanceId} ended {Outcome}")]
    private partial void LogMigrationFinished(string instanceId, string migrationId, LiveMigrationOutcome outcome);

    [LoggerMessage(EventId = 7116, Level = LogLevel.Warning, Message = "Live migration {MigrationId} of {InstanceId}: the post-copy stream broke with {MissingBytes} bytes still to send")]
    private partial void LogPostCopyStreamBroke(string instanceId, string migrationId, long missingBytes);

    [LoggerMessage(EventId = 7117, Level = LogLevel.Warning, Message = "Live migration {MigrationId} of {InstanceId}: post-copy resume attempt {Attempt} of {Attempts} failed: {Reason}")]
    private partial void LogPostCopyResumeFailed(string instanceId, string migrationId, int attempt, int attempts, string reason);

    [LoggerMessage(EventId = 7118, Level = LogLevel.Information, Message = "Live migration {MigrationId} of {InstanceId}: resuming post-copy to {Uri} (attempt {Attempt} of {Attempts})")]
    private partial void LogPostCopyResuming(string instanceId, string migrationId, int attempt, int attempts, string uri);

    [LoggerMessage(EventId = 7119, Level = LogLevel.Critical, Message = "Live migration {MigrationId} of {InstanceId}: gave up resuming the post-copy stream after {Attempts} attempts; the guest's memory is split between {HostName} and {DestHost} and needs manual recovery")]
    private partial void LogPostCopyGaveUp(string instanceId, string migrationId, int attempts, string hostName, string destHost);

    [LoggerMessage(EventId = 7120, Level = LogLevel.Information, Message = "Incoming post-copy migration of {InstanceId} on {HostName} listens again on {Uri}")]
    private partial void LogPostCopyRecoverListening(string instanceId, string hostName, string uri);
}
