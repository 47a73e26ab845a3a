using Microsoft.Extensions.Logging;

namespace Ferry.ControlPlane.Conductor;

// EventIds of the conductor: 300–349.
public sealed partial class ConductorContext
{
    private static partial class Log
    {
        [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "{Step} of instance {InstanceId} (migration {MigrationId}) from {Source} to {Dest}: done in {DurationMs} ms")]
        public static partial void TaskDone(ILogger logger, string step, string instanceId, string migrationId, string source, string dest, long durationMs);

        [LoggerMessage(EventId = 301, Level = LogLevel.Warning, Message = "{Step} of instance {InstanceId} failed: {Error}")]
        public static partial void TaskFailed(ILogger logger, Exception? ex, string step, string instanceId, string error);

        [LoggerMessage(EventId = 302, Level = LogLevel.Warning,
            Message = "{Step} of instance {InstanceId} delivered again (the conductor running it died): migration {MigrationId} of that run rolled back, running it anew")]
        public static partial void TakenOver(ILogger logger, string step, string instanceId, string migrationId);

        [LoggerMessage(EventId = 303, Level = LogLevel.Warning, Message = "{Step} of instance {InstanceId} dropped: the server is no longer {Expected} (task_state {Actual}), so its move was ended or never wanted")]
        public static partial void MoveDropped(ILogger logger, string step, string instanceId, string expected, string actual);
    }
}
