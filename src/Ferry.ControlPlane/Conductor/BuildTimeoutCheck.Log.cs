using Microsoft.Extensions.Logging;

namespace Ferry.ControlPlane.Conductor;

public sealed partial class BuildTimeoutCheck
{
    private static partial class Log
    {
        [LoggerMessage(EventId = 3100, Level = LogLevel.Warning, Message = "Instance {InstanceId} build timed out on {Host} after {Timeout}: set to error state")]
        public static partial void TimedOut(ILogger logger, string instanceId, string host, TimeSpan timeout);

        [LoggerMessage(EventId = 3101, Level = LogLevel.Error, Message = "The build timeout check failed")]
        public static partial void CheckFailed(ILogger logger, Exception ex);
    }
}
