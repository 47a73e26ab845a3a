using Ferry.Core.Errors;

namespace Ferry.Virt;

/// <summary>
/// This host cannot reach the export its volumes are served from (the storage network is cut, or filtered), so it cannot
/// give a guest those volumes: the step that needed them (a start, a migration's destination, an attach) fails at once
/// rather than wait on QEMU's own connect.
/// </summary>
public sealed class VolumeExportUnreachableException(IReadOnlyList<string> volumeIds, string endpoint, string hostName, string reason)
    : FerryException($"{(volumeIds.Count == 1 ? "Volume" : "Volumes")} {string.Join(", ", volumeIds)} cannot be opened on {hostName}: " +
        $"the export at {endpoint} is not reachable from there ({reason}).", 500);
