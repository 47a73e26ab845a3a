using Ferry.Core.Domain;

namespace Ferry.ControlPlane.Api;

/// <summary>A validated create-server request.</summary>
internal sealed record ServerCreateSpec
{
    public required string Name { get; init; }
    public required Flavor Flavor { get; init; }
    public Image? Image { get; init; }
    public string? AvailabilityZone { get; init; }
    public string? RequestedHost { get; init; }
    public Dictionary<string, string> Metadata { get; init; } = [];
    public bool ConfigDrive { get; init; }
    public bool VolumeBacked { get; init; }
    /// <summary>The volumes asked for (block_device_mapping_v2), devices given; existing ones are reserved at create.</summary>
    public List<BlockDeviceMapping> BlockDevices { get; init; } = [];
    public string? KeyName { get; init; }
    /// <summary>Base64, as the user sent it (Nova keeps it encoded too); the config drive carries it decoded.</summary>
    public string? UserData { get; init; }
    public string? GroupUuid { get; init; }
    public Dictionary<string, List<string>> SchedulerHints { get; init; } = [];
    /// <summary>min_count / max_count: build as many as quota allows in this range (Nova's multiple create).</summary>
    public int MinCount { get; init; } = 1;
    public int MaxCount { get; init; } = 1;
    /// <summary>The networks and ports the compute host makes the server's NICs on (checked already).</summary>
    public List<RequestedNetwork> RequestedNetworks { get; init; } = [];
}
