namespace Ferry.Core.Domain;

/// <summary>What the scheduler needs to pick hosts for one instance (nova/objects/request_spec.py).</summary>
public sealed record RequestSpec
{
    public required string InstanceUuid { get; init; }
    public required string ProjectId { get; init; }
    public required string UserId { get; init; }
    public required Flavor Flavor { get; init; }
    public Dictionary<string, string> ImageProperties { get; init; } = [];
    /// <summary>Boots from a volume: its root disk is not local, so the host is not asked for it (Nova's is_bfv).</summary>
    public bool IsBfv { get; init; }
    public string? AvailabilityZone { get; init; }
    /// <summary>Hosts that must not be chosen (the source host on a move, hosts already tried).</summary>
    public List<string> IgnoreHosts { get; init; } = [];
    /// <summary>A host the operator asked for (validated by the scheduler, not forced).</summary>
    public string? RequestedHost { get; init; }
    /// <summary>Hints as Nova passes them: same_host / different_host hold instance uuids.</summary>
    public Dictionary<string, List<string>> SchedulerHints { get; init; } = [];
    /// <summary>
    /// By hint (same_host, different_host): the distinct hosts its instances run on, read by whoever builds the spec (as
    /// <see cref="ServerGroupPolicy.MemberHosts"/>), so the scheduler's filters read no database.
    /// </summary>
    public Dictionary<string, List<string>> HintedHosts { get; init; } = [];
    public ServerGroupPolicy? Group { get; init; }
    /// <summary>Consumer whose current allocation the claim is made for (the instance).</summary>
    public bool IsMove { get; init; }
}

/// <summary>A server group's policy and where its members run now.</summary>
public sealed record ServerGroupPolicy
{
    public required string Uuid { get; init; }
    public required string Policy { get; init; }
    public int MaxServerPerHost { get; init; } = 1;
    /// <summary>Host of each member other than the instance being scheduled.</summary>
    public List<string> MemberHosts { get; init; } = [];
}

/// <summary>One chosen host, with the allocation the scheduler claimed there.</summary>
public sealed record Selection
{
    public required string ServiceHost { get; init; }
    public required string Nodename { get; init; }
    public required string ComputeNodeUuid { get; init; }
    public Dictionary<string, int> Resources { get; init; } = [];
    public string AvailabilityZone { get; init; } = "nova";
}
