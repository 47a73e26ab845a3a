using Microsoft.Extensions.Logging;

namespace Ferry.Compute;

public sealed partial class LiveMigrationSource
{
    private static partial class Log
    {
        [LoggerMessage(EventId = 240, Level = LogLevel.Information, Message = "live migration of instance {InstanceId} (migration {MigrationId}) from {Host} to {Dest}: {Percent}% copied, {RemainingMiB} MiB left")]
        public static partial void Progress(ILogger logger, string instanceId, string migrationId, string host, string dest, int percent, long remainingMiB);
    }
}
