using Microsoft.Extensions.Logging;

namespace Ferry.ControlPlane.Api;

internal sealed partial class ComputeApi
{
    private static partial class Log
    {
        [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Cast {Method} for instance {InstanceId} ({RequestId})")]
        public static partial void Cast(ILogger logger, string method, string instanceId, string requestId);

        [LoggerMessage(EventId = 3002, Level = LogLevel.Warning, Message = "Instance {InstanceId} reset to vm_state {VmState} ({RequestId})")]
        public static partial void ResetState(ILogger logger, string instanceId, string vmState, string requestId);

        [LoggerMessage(EventId = 3003, Level = LogLevel.Warning, Message = "Host {Host} of instance {InstanceId} is down: deleting it from the database ({RequestId})")]
        public static partial void LocalDelete(ILogger logger, string host, string instanceId, string requestId);

        [LoggerMessage(EventId = 3004, Level = LogLevel.Warning, Message = "Volume {VolumeId} of deleted instance {InstanceId} was not deleted with it: {Reason}")]
        public static partial void VolumeKept(ILogger logger, string volumeId, string instanceId, string reason);
    }
}
