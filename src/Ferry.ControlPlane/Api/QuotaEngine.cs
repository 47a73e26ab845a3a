using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Core.Errors;

namespace Ferry.ControlPlane.Api;

/// <summary>One resource's limit and what is in use (Nova's get_project_quotas with usages).</summary>
internal sealed record QuotaUsage(long Limit, long InUse);

/// <summary>
/// Nova's DbQuotaDriver (nova/quota.py) over <see cref="QuotaStore"/>: the effective limit of each resource is
/// the user's row, else the project's, else the <c>default</c> quota class's, else the configured default; usage
/// is counted from the instances, key pairs and server groups. Checks raise <see cref="OverQuotaException"/>
/// with Nova's messages.
/// </summary>
internal sealed class QuotaEngine(QuotaStore store, InstanceStore instances, ServerGroupStore groups, KeyPairStore keypairs)
{
    public const string DefaultClass = "default";

    /// <summary>Serializes quota check and instance rows of concurrent creates, so two requests cannot both take the last slot.</summary>
    private readonly SemaphoreSlim _createGate = new(1, 1);

    /// <summary>Every resource, sorted by name as Nova's QuotaEngine.resources, with Nova's [quota] defaults.</summary>
    public static readonly IReadOnlyList<(string Name, long Default)> Resources =
    [
        ("cores", 20),
        ("fixed_ips", -1),
        ("floating_ips", -1),
        ("injected_file_content_bytes", 10240),
        ("injected_file_path_bytes", 255),
        ("injected_files", 5),
        ("instances", 10),
        ("key_pairs", 100),
        ("metadata_items", 128),
        ("ram", 51200),
        ("security_group_rules", -1),
        ("security_groups", -1),
        ("server_group_members", 10),
        ("server_groups", 10),
    ];

    /// <summary>Network quotas (nova-network's) that microversion 2.36 hides in os-quota-sets (2.50 in os-quota-class-sets).</summary>
    public static readonly IReadOnlySet<string> NetworkResources = new HashSet<string> { "fixed_ips", "floating_ips", "security_group_rules", "security_groups" };

    /// <summary>Personality-file quotas that microversion 2.57 hides.</summary>
    public static readonly IReadOnlySet<string> InjectedFileResources = new HashSet<string> { "injected_files", "injected_file_content_bytes", "injected_file_path_bytes" };

    public static bool IsResource(string name) => Resources.Any(r => r.Name == name);

    /// <summary>Configured defaults overridden by the <c>default</c> quota class (get_defaults).</summary>
    public async Task<Dictionary<string, long>> DefaultsAsync(CancellationToken cancellationToken)
    {
        var byClass = await store.ClassLimitsAsync(DefaultClass, cancellationToken);
        return Resources.ToDictionary(r => r.Name, r => byClass.GetValueOrDefault(r.Name, r.Default));
    }

    /// <summary>A quota class's limits: its rows over the configured defaults (get_class_quotas).</summary>
    public async Task<Dictionary<string, long>> ClassQuotasAsync(string className, CancellationToken cancellationToken)
    {
        var byClass = await store.ClassLimitsAsync(className, cancellationToken);
        return Resources.ToDictionary(r => r.Name, r => byClass.GetValueOrDefault(r.Name, r.Default));
    }

    /// <summary>The project's limits and usage (get_project_quotas).</summary>
    public async Task<Dictionary<string, QuotaUsage>> ProjectQuotasAsync(string projectId, CancellationToken cancellationToken)
    {
        var defaults = await DefaultsAsync(cancellationToken);
        var own = await store.LimitsAsync(projectId, null, cancellationToken);
        var usage = await UsageAsync(projectId, userId: null, cancellationToken);
        return Resources.ToDictionary(r => r.Name, r => new QuotaUsage(own.GetValueOrDefault(r.Name, defaults[r.Name]), usage.GetValueOrDefault(r.Name)));
    }

    /// <summary>One user's limits in a project (its rows over the project's) and its usage (get_user_quotas).</summary>
    public async Task<Dictionary<string, QuotaUsage>> UserQuotasAsync(string projectId, string userId, CancellationToken cancellationToken)
    {
        var project = await ProjectQuotasAsync(projectId, cancellationToken);
        var own = await store.LimitsAsync(projectId, userId, cancellationToken);
        var usage = await UsageAsync(projectId, userId, cancellationToken);
        return Resources.ToDictionary(r => r.Name, r => new QuotaUsage(own.GetValueOrDefault(r.Name, project[r.Name].Limit), usage.GetValueOrDefault(r.Name)));
    }

    /// <summary>
    /// The range a new limit must lie in (get_settable_quotas): for a project at least what is used and what its
    /// users' limits add up to; for a user at least what the user uses and at most what the project has left.
    /// </summary>
    public async Task<Dictionary<string, (long Minimum, long Maximum)>> SettableQuotasAsync(string projectId, string? userId, CancellationToken cancellationToken)
    {
        var project = await ProjectQuotasAsync(projectId, cancellationToken);
        var userLimits = await store.UserLimitsAsync(projectId, cancellationToken);
        var result = new Dictionary<string, (long, long)>();
        if (userId is null)
        {
            foreach (var (name, q) in project)
            {
                // A project limit below the sum of its users' limits would leave them unreachable.
                var sumOfUsers = userLimits.TryGetValue(name, out var list) && q.Limit != -1 ? list.Sum() : 0;
                result[name] = (Math.Max(sumOfUsers, q.InUse), -1);
            }
            return result;
        }
        var mine = await store.LimitsAsync(projectId, userId, cancellationToken);
        foreach (var (name, q) in await UserQuotasAsync(projectId, userId, cancellationToken))
        {
            var projectLimit = project[name].Limit;
            long maximum;
            if (projectLimit == -1 || (userLimits.TryGetValue(name, out var all) && all.Contains(-1)))
            {
                maximum = -1;
            }
            else
            {
                var remains = projectLimit - (userLimits.TryGetValue(name, out var set) ? set.Sum() : 0);
                maximum = remains + mine.GetValueOrDefault(name, 0);
            }
            result[name] = (q.InUse, maximum);
        }
        return result;
    }

    /// <summary>
    /// check_num_instances_quota: how many of <paramref name="minCount"/>..<paramref name="maxCount"/> instances of
    /// <paramref name="flavor"/> fit the project's (and, where the user has limits of its own, the user's)
    /// instances, cores and ram quotas; throws TooManyInstances when not even <paramref name="minCount"/> fit.
    /// </summary>
    public async Task<int> CheckInstancesAsync(string projectId, string userId, Flavor flavor, int minCount, int maxCount, CancellationToken cancellationToken)
    {
        var userScoped = (await store.LimitsAsync(projectId, userId, cancellationToken)).Keys.Any(k => k is "instances" or "cores" or "ram");
        var scopes = userScoped
            ? new[] { await ProjectQuotasAsync(projectId, cancellationToken), await UserQuotasAsync(projectId, userId, cancellationToken) }
            : [await ProjectQuotasAsync(projectId, cancellationToken)];
        var deltas = new Dictionary<string, long> { ["instances"] = maxCount, ["cores"] = (long)maxCount * flavor.Vcpus, ["ram"] = (long)maxCount * flavor.MemoryMb };
        foreach (var quotas in scopes)
        {
            var overs = Overs(quotas, deltas);
            if (overs.Count == 0)
            {
                continue;
            }
            // How many fit: the instance headroom, reduced by what the cores and ram headroom allow.
            long allowed = Headroom(quotas, "instances") ?? long.MaxValue;
            if (flavor.Vcpus > 0 && Headroom(quotas, "cores") is { } cores)
            {
                allowed = Math.Min(allowed, cores / flavor.Vcpus);
            }
            if (flavor.MemoryMb > 0 && Headroom(quotas, "ram") is { } ram)
            {
                allowed = Math.Min(allowed, ram / flavor.MemoryMb);
            }
            if (allowed >= minCount && allowed < maxCount)
            {
                return await CheckInstancesAsync(projectId, userId, flavor, minCount, (int)allowed, cancellationToken);
            }
            var requested = new Dictionary<string, string>
            {
                ["instances"] = minCount == maxCount ? $"{minCount}" : $"{minCount}-{maxCount}",
                ["cores"] = $"{deltas["cores"]}",
                ["ram"] = $"{deltas["ram"]}",
            };
            throw TooMany(overs, requested, quotas);
        }
        return maxCount;
    }

    /// <summary>
    /// Held by a server create from its quota check until its instance rows exist (Nova rechecks after creating
    /// the rows instead; holding the gate gives the same guarantee without building rows that must be undone).
    /// </summary>
    public async Task<IDisposable> EnterCreateAsync(CancellationToken cancellationToken)
    {
        await _createGate.WaitAsync(cancellationToken);
        return new Releaser(_createGate);
    }

    private sealed class Releaser(SemaphoreSlim gate) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                gate.Release();
            }
        }
    }

    /// <summary>
    /// What a server create must fit, in Nova's order: metadata items, then the number of instances (returns how
    /// many of min_count..max_count to build), then the server group's members.
    /// </summary>
    public async Task<int> CheckCreateAsync(RequestContext ctx, ServerCreateSpec spec, ServerGroupRow? group, CancellationToken cancellationToken)
    {
        await CheckMetadataItemsAsync(ctx.ProjectId, ctx.UserId, spec.Metadata.Count, cancellationToken);
        var count = await CheckInstancesAsync(ctx.ProjectId, ctx.UserId, spec.Flavor, spec.MinCount, spec.MaxCount, cancellationToken);
        if (group is not null)
        {
            await CheckServerGroupMembersAsync(ctx.ProjectId, ctx.UserId, group.Members.Count, count, cancellationToken);
        }
        return count;
    }

    /// <summary>
    /// _check_quota_for_upsize (also for a revert, from the new flavor back to the old): a resize may grow cores and ram by the difference between the flavors; a
    /// downsize needs no quota.
    /// </summary>
    public async Task CheckUpsizeAsync(Instance instance, Flavor current, Flavor newFlavor, CancellationToken cancellationToken)
    {
        var deltas = new Dictionary<string, long>();
        if (newFlavor.Vcpus > current.Vcpus)
        {
            deltas["cores"] = newFlavor.Vcpus - current.Vcpus;
        }
        if (newFlavor.MemoryMb > current.MemoryMb)
        {
            deltas["ram"] = newFlavor.MemoryMb - current.MemoryMb;
        }
        if (deltas.Count == 0)
        {
            return;
        }
        var userScoped = (await store.LimitsAsync(instance.ProjectId, instance.UserId, cancellationToken)).Keys.Any(k => k is "cores" or "ram");
        var scopes = userScoped
            ? new[] { await ProjectQuotasAsync(instance.ProjectId, cancellationToken), await UserQuotasAsync(instance.ProjectId, instance.UserId, cancellationToken) }
            : [await ProjectQuotasAsync(instance.ProjectId, cancellationToken)];
        foreach (var quotas in scopes)
        {
            var overs = Overs(quotas, deltas);
            if (overs.Count > 0)
            {
                throw TooMany(overs, deltas.ToDictionary(d => d.Key, d => $"{d.Value}"), quotas);
            }
        }
    }

    /// <summary>Server metadata on create: MetadataLimitExceeded.</summary>
    public async Task CheckMetadataItemsAsync(string projectId, string userId, int count, CancellationToken cancellationToken)
    {
        var limit = await EffectiveLimitAsync(projectId, userId, "metadata_items", cancellationToken);
        if (limit >= 0 && count > limit)
        {
            throw new OverQuotaException($"Maximum number of metadata items exceeds {limit}");
        }
    }

    /// <summary>A new key pair: KeypairLimitExceeded when the user already holds the limit.</summary>
    public async Task CheckKeyPairsAsync(string projectId, string userId, CancellationToken cancellationToken)
    {
        var limit = await EffectiveLimitAsync(projectId, userId, "key_pairs", cancellationToken);
        if (limit >= 0 && await keypairs.CountAsync(userId, cancellationToken) + 1 > limit)
        {
            throw new OverQuotaException("Quota exceeded, too many key pairs.");
        }
    }

    /// <summary>A new server group in the project.</summary>
    public async Task CheckServerGroupsAsync(string projectId, string userId, CancellationToken cancellationToken)
    {
        var limit = await EffectiveLimitAsync(projectId, userId, "server_groups", cancellationToken);
        if (limit >= 0 && (await groups.ListAsync(projectId, cancellationToken)).Count + 1 > limit)
        {
            throw new OverQuotaException("Quota exceeded, too many server groups.");
        }
    }

    /// <summary>One more member in a server group.</summary>
    public async Task CheckServerGroupMembersAsync(string projectId, string userId, int currentMembers, int adding, CancellationToken cancellationToken)
    {
        var limit = await EffectiveLimitAsync(projectId, userId, "server_group_members", cancellationToken);
        if (limit >= 0 && currentMembers + adding > limit)
        {
            throw new OverQuotaException("Quota exceeded, too many servers in group");
        }
    }

    private async Task<long> EffectiveLimitAsync(string projectId, string userId, string resource, CancellationToken cancellationToken) =>
        (await store.LimitsAsync(projectId, userId, cancellationToken)).TryGetValue(resource, out var own) ? own
        : (await store.LimitsAsync(projectId, null, cancellationToken)).TryGetValue(resource, out var project) ? project
        : (await DefaultsAsync(cancellationToken))[resource];

    /// <summary>Usage of the countable resources; key_pairs and server_group_members are not counted here (Nova: always 0).</summary>
    private async Task<Dictionary<string, long>> UsageAsync(string projectId, string? userId, CancellationToken cancellationToken)
    {
        var mine = await instances.UsageOfProjectAsync(projectId, userId, cancellationToken);
        return new Dictionary<string, long>
        {
            ["instances"] = mine.Instances,
            ["cores"] = mine.Cores,
            ["ram"] = mine.RamMb,
            ["server_groups"] = (await groups.ListAsync(projectId, cancellationToken)).Count(g => userId is null || g.UserId == userId),
        };
    }

    private static List<string> Overs(Dictionary<string, QuotaUsage> quotas, Dictionary<string, long> deltas) =>
        deltas.Where(d => d.Value > 0 && quotas[d.Key] is { Limit: >= 0 } q && q.InUse + d.Value > q.Limit)
            .Select(d => d.Key).Order(StringComparer.Ordinal).ToList();

    private static long? Headroom(Dictionary<string, QuotaUsage> quotas, string resource) =>
        quotas[resource] is { Limit: >= 0 } q ? Math.Max(0, q.Limit - q.InUse) : null;

    /// <summary>TooManyInstances: "Quota exceeded for cores, ram: Requested 4, 4096, but already used 2, 512 of 4, 2048 cores, ram".</summary>
    private static OverQuotaException TooMany(List<string> overs, Dictionary<string, string> requested, Dictionary<string, QuotaUsage> quotas)
    {
        var names = string.Join(", ", overs);
        var reqs = string.Join(", ", overs.Select(o => requested[o]));
        var used = string.Join(", ", overs.Select(o => quotas[o].InUse));
        var allowed = string.Join(", ", overs.Select(o => quotas[o].Limit));
        return new OverQuotaException($"Quota exceeded for {names}: Requested {reqs}, but already used {used} of {allowed} {names}");
    }
}
