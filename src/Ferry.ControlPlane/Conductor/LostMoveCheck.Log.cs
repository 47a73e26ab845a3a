using Microsoft.Extensions.Logging;

namespace Ferry.ControlPlane.Conductor;

public sealed partial class LostMoveCheck
{
    private static partial class Log
    {
        [LoggerMessage(EventId = 3110, Level = LogLevel.Warning, Message = "Instance {InstanceId}: no conductor took its move ({TaskState}, request {RequestId}) within {Timeout}: task_state taken back")]
        public static partial void Ended(ILogger logger, string instanceId, string taskState, string requestId, TimeSpan timeout);

        [LoggerMessage(EventId = 3111, Level = LogLevel.Error, Message = "The lost move check failed")]
        public static partial void CheckFailed(ILogger logger, Exception ex);
    }
}
