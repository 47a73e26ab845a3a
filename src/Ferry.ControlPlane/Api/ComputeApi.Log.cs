using Microsoft.Extensions.Logging;

namespace Ferry.ControlPlane.Api;

internal sealed partial class ComputeApi
{
    private static partial class Log
    {
        [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Cast {Method} for instance {InstanceId} ({RequestId})")]
        public static partial void Cast(ILogger logger, string method, string instanceId, string requestId);
    }
}
