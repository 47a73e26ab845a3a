using Microsoft.Extensions.Logging;

namespace Ferry.Compute;

// EventIds of the compute agent: 200–239 (this file, ComputeManager, PowerStateSync, StartupRecovery), 240–249 moves.
public sealed partial class ComputeContext
{
    /// <summary>A move's request that arrived after the move ended (redelivered by the broker to a restarted agent): dropped.</summary>
    public void LogStaleRequest(string step, string instanceUuid, string migrationUuid, string reason) =>
        Log.StaleRequest(Logger, step, instanceUuid, migrationUuid, Host, reason);

    private static partial class Log
    {
        /// <summary>One line per step of every flow: what an operator follows a move by.</summary>
        [LoggerMessage(EventId = 203, Level = LogLevel.Information, Message = "{Step} of instance {InstanceId} (migration {MigrationId}) on {Host}: done in {DurationMs} ms")]
        public static partial void StepDone(ILogger logger, string step, string instanceId, string migrationId, string host, long durationMs);

        [LoggerMessage(EventId = 200, Level = LogLevel.Warning, Message = "{Step} of instance {InstanceId} (migration {MigrationId}) on {Host}: failed after {DurationMs} ms: {Error}")]
        public static partial void StepFailed(ILogger logger, Exception ex, string step, string instanceId, string migrationId, string host, long durationMs, string error);

        [LoggerMessage(EventId = 204, Level = LogLevel.Warning,
            Message = "{Step} of instance {InstanceId} (migration {MigrationId}) on {Host}: not run, the move is over ({Reason}); a request delivered again after this agent was killed")]
        public static partial void StaleRequest(ILogger logger, string step, string instanceId, string migrationId, string host, string reason);

        [LoggerMessage(EventId = 205, Level = LogLevel.Warning, Message = "The start of {Step} of instance {InstanceId} was not sent (its finish records the event whole)")]
        public static partial void EventStartNotSent(ILogger logger, Exception ex, string step, string instanceId);
    }
}
