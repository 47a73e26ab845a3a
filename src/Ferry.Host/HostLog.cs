using Microsoft.Extensions.Logging;

namespace Ferry.Host;

/// <summary>What the all-in-one logs about itself: the first and last lines of a run's log file.</summary>
internal static partial class HostLog
{
    [LoggerMessage(EventId = 9001, Level = LogLevel.Information,
        Message = "Ferry starting: {Hosts} {Driver} hosts (shared storage {SharedStorage}), auth {Auth}, data directory {DataDirectory}, " +
                  "compute API {ComputeApiUrl}, placement {PlacementUrl}, images {ImageUrl}, log level {LogLevel}")]
    public static partial void Starting(ILogger logger, int hosts, string driver, bool sharedStorage, string auth, string dataDirectory,
        string computeApiUrl, string placementUrl, string imageUrl, LogLevel logLevel);

    [LoggerMessage(EventId = 9002, Level = LogLevel.Information, Message = "Ferry stopping (guests kept running: {GuestsKept})")]
    public static partial void Stopping(ILogger logger, bool guestsKept);
}
