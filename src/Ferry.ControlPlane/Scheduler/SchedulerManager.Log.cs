using Microsoft.Extensions.Logging;

namespace Ferry.ControlPlane.Scheduler;

public sealed partial class SchedulerManager
{
    // EventIds 350–399 belong to the scheduler (300–349 are the conductor's).
    private static partial class Log
    {
        [LoggerMessage(EventId = 350, Level = LogLevel.Information, Message = "Got no allocation candidates from placement for instance {InstanceId}")]
        public static partial void NoCandidates(ILogger logger, string instanceId);

        [LoggerMessage(EventId = 351, Level = LogLevel.Information, Message = "Filter {Filter} returned 0 hosts for instance {InstanceId}")]
        public static partial void FilterReturnedNoHosts(ILogger logger, string instanceId, string filter);

        [LoggerMessage(EventId = 352, Level = LogLevel.Debug, Message = "Unable to claim resources on {Host} for instance {InstanceId}: {Reason}")]
        public static partial void ClaimConflict(ILogger logger, string instanceId, string host, string reason);

        [LoggerMessage(EventId = 353, Level = LogLevel.Warning, Message = "Could not claim any of {HostCount} hosts for instance {InstanceId}")]
        public static partial void NoClaim(ILogger logger, string instanceId, int hostCount);

        [LoggerMessage(EventId = 354, Level = LogLevel.Debug, Message = "Selected host {Host} (node {Node}) for instance {InstanceId} out of {HostCount} hosts")]
        public static partial void Selected(ILogger logger, string instanceId, string host, string node, int hostCount);
    }
}
