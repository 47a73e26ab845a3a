using System.Collections.Frozen;
using System.Data.Common;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Errors;

namespace Ferry.ControlPlane.Placement;

/// <summary>
/// Placement cached whole in memory and written through to the database, which stays authoritative. The cache's lock
/// is held only for work in memory, never across a database round trip. A write is planned and validated against the
/// cache (capacity, the caller's generations) under that lock, committed with no lock held, each touched provider's and
/// consumer's row conditional on the generation the plan was made from (<c>UPDATE … WHERE generation = g</c>: the row
/// count decides), and applied to the cache after the commit under the lock again. So writes to different providers
/// commit in parallel, and two writers (threads or replicas) can never both claim the last of an inventory: the loser's
/// conditional update hits no row, it reloads the providers it touched and plans again, as Placement's
/// ConcurrentUpdateDetected retry does. Per-provider usage is maintained on each allocation write (Placement recomputes
/// it with SQL; here it is a lookup), which keeps candidates cheap.
/// <para>
/// On a shared database (PostgreSQL, several placement replicas) each write also logs the providers it changed in
/// <c>placement_log</c>, in its own transaction and under its transaction id, with no row in common with other writers.
/// Before it answers a read, a replica reads the log from the oldest transaction that was still running when it last
/// looked (every older one was committed and seen then) and reloads the providers whose generation or name its cache
/// does not have (and their consumers). Those refreshes run one at a time (<see cref="_sequence"/>), and a caller
/// shares one that began after it arrived, so a burst of reads costs one round trip; a write's application to the cache
/// is sequenced with them too, so a reload read before a commit never overwrites what the commit applied after it. A
/// write plans from the cache without a refresh first: the conditional updates catch a stale cache, and an answer
/// that refuses or changes nothing is given only after a refresh confirms it.
/// </para>
/// <para>
/// On SQLite (one process, one connection that serialises every write anyway) the cache is authoritative: writes run
/// one at a time from plan to application (<see cref="_sequence"/>), reads never wait for them.
/// </para>
/// </summary>
public sealed class PlacementService : IPlacementService
{
    private static readonly FrozenSet<string> s_noTraits = FrozenSet<string>.Empty;

    private readonly FerryDatabase _database;

    /// <summary>Guards the cache's dictionaries; held only for work in memory.</summary>
    private readonly Lock _gate = new();

    /// <summary>
    /// Shared database: one refresh (log read, reload, application) or one write's application to the cache at a time.
    /// SQLite: one write at a time, plan to application.
    /// </summary>
    private readonly SemaphoreSlim _sequence = new(1, 1);

    private readonly Dictionary<string, ProviderState> _providers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ConsumerState> _consumers = new(StringComparer.Ordinal);

    /// <summary>Attempts of one write against a cache that keeps turning out stale before it answers 409.</summary>
    private const int MaxAttempts = 50;

    /// <summary>
    /// How long change-log rows are kept; a replica that has not read the log for half of it compares every provider
    /// instead (the rows it needs may be gone). Old rows are deleted by every <see cref="LogPurgeEvery"/>-th write.
    /// </summary>
    private static readonly TimeSpan s_logKept = TimeSpan.FromMinutes(10);
    private const long LogPurgeEvery = 1_000;

    /// <summary>
    /// Shared database only: the oldest transaction id that was still running when the log was last read. Every
    /// transaction with a smaller id had ended then, and its changes were seen; later ones are read from the log.
    /// </summary>
    private long _watermark;
    private long _lastLook;
    private long _writes;

    /// <summary>Refreshes begun (under <see cref="_sequence"/>), and the number of the last one that completed.</summary>
    private long _refreshesBegun;
    private long _lastRefreshed;

    /// <summary>Under <see cref="_gate"/>: providers the next refresh compares with the database (a write found them stale).</summary>
    private readonly HashSet<string> _compare = new(StringComparer.Ordinal);

    /// <summary>Under <see cref="_gate"/>: providers the next refresh reloads whatever their generation (a commit could not be applied).</summary>
    private readonly HashSet<string> _suspect = new(StringComparer.Ordinal);

    /// <summary>Under <see cref="_gate"/>: the next refresh compares every provider.</summary>
    private bool _compareAll;

    public PlacementService(FerryDatabase database)
    {
        _database = database;
        _database.Migrate(PlacementSchema.Component, PlacementSchema.Scripts);
        _lastLook = System.Diagnostics.Stopwatch.GetTimestamp();
        // Once, when the singleton is first resolved at start (StartFerryPlacement), before anything can call it.
        _database.SnapshotAsync(async (c, t, ct) =>
        {
            _watermark = _database.IsShared ? await ReadWatermarkAsync(c, t, ct) : 0; // the snapshot's own: what it cannot see comes later
            await LoadAsync(c, t, ct);
            return 0;
        }, CancellationToken.None).GetAwaiter().GetResult();
    }

    public Task<ResourceProvider> EnsureProviderAsync(string uuid, string name, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(uuid);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        return MutateAsync(() =>
        {
            if (_providers.TryGetValue(uuid, out var existing) && existing.Record.Name == name)
            {
                return Change.None(existing.Record);
            }
            foreach (var other in _providers.Values)
            {
                if (other.Record.Name == name && other.Record.Uuid != uuid)
                {
                    throw new PlacementConflictException($"Conflicting resource provider name: {name} already exists.");
                }
            }

            if (existing is null)
            {
                var record = new ResourceProvider(uuid, name, 0);
                // Hits no row when another replica created it first.
                return new Change<ResourceProvider>(record, [uuid],
                    w => w.MustHit("INSERT INTO resource_providers(uuid, name, generation) VALUES (@u, @n, 0) ON CONFLICT(uuid) DO NOTHING",
                        ("@u", uuid), ("@n", name)),
                    [(uuid, null)], [],
                    () => _providers[uuid] = new ProviderState(record));
            }

            // A rename does not change the generation (Placement's ResourceProvider.save).
            var renamed = existing.Record with { Name = name };
            return new Change<ResourceProvider>(renamed, [uuid],
                w => w.MustHit("UPDATE resource_providers SET name = @n WHERE uuid = @u AND generation = @g", ("@u", uuid), ("@n", name), ("@g", renamed.Generation)),
                [(uuid, renamed.Generation)], [],
                () =>
                {
                    var provider = _providers[uuid];
                    provider.Record = provider.Record with { Name = name };
                    provider.Summary = null;
                });
        }, cancellationToken);
    }

    public async Task<ResourceProvider?> GetProviderAsync(string uuid, CancellationToken cancellationToken)
    {
        await RefreshAsync(cancellationToken);
        lock (_gate)
        {
            return _providers.TryGetValue(uuid, out var state) ? state.Record : null;
        }
    }

    public async Task<IReadOnlyList<ResourceProvider>> ListProvidersAsync(CancellationToken cancellationToken)
    {
        await RefreshAsync(cancellationToken);
        lock (_gate)
        {
            var list = new List<ResourceProvider>(_providers.Count);
            foreach (var state in _providers.Values)
            {
                list.Add(state.Record);
            }
            return list;
        }
    }

    public Task DeleteProviderAsync(string uuid, CancellationToken cancellationToken) =>
        MutateAsync(() =>
        {
            if (!_providers.TryGetValue(uuid, out var provider))
            {
                return Change.None(0);
            }

            // Every consumer loses its part on this provider (whole consumers vanish when nothing is left).
            var writes = new List<ConsumerWrite>(provider.Consumers.Count);
            foreach (var consumerUuid in provider.Consumers.Keys)
            {
                var consumer = _consumers[consumerUuid];
                var remaining = new Dictionary<string, Dictionary<string, long>>(consumer.Allocations, StringComparer.Ordinal);
                remaining.Remove(uuid);
                writes.Add(new ConsumerWrite(consumerUuid, remaining, consumer.ProjectId, consumer.UserId));
            }
            var plan = Plan(writes, checkCapacity: false, deletedProvider: uuid);

            var generation = provider.Record.Generation;
            return new Change<int>(0, [uuid, .. plan.ProviderGenerations.Select(g => g.Rp)],
                w =>
                {
                    Persist(w, plan);
                    w.MustHit("DELETE FROM resource_providers WHERE uuid = @u AND generation = @g", ("@u", uuid), ("@g", generation));
                    w.Add("DELETE FROM inventories WHERE rp = @u", ("@u", uuid));
                    w.Add("DELETE FROM traits WHERE rp = @u", ("@u", uuid));
                    w.Add("DELETE FROM allocations WHERE rp = @u", ("@u", uuid));
                },
                [(uuid, generation), .. BaseOf(plan)], ConsumersBaseOf(plan),
                () =>
                {
                    Apply(plan);
                    _providers.Remove(uuid);
                });
        }, cancellationToken);

    public Task<ResourceProvider> SetInventoriesAsync(string providerUuid, long? expectedGeneration, IReadOnlyDictionary<string, Inventory> inventories,
        CancellationToken cancellationToken)
    {
        foreach (var (rc, inventory) in inventories)
        {
            ValidateInventory(rc, inventory);
        }
        var copy = new Dictionary<string, Inventory>(inventories, StringComparer.Ordinal);
        return MutateAsync(() =>
        {
            var provider = Provider(providerUuid);
            CheckProviderGeneration(provider, expectedGeneration);
            foreach (var (rc, used) in provider.Usage)
            {
                if (used == 0)
                {
                    continue;
                }
                if (!copy.ContainsKey(rc))
                {
                    throw new PlacementConflictException(
                        $"Inventory for '{rc}' on resource provider '{providerUuid}' in use.");
                }
                // Capacity below usage is allowed, as in Placement: a host restarted with more
                // reserved memory must still report; it just takes nothing new until usage drops.
            }

            var generation = provider.Record.Generation + 1;
            var result = provider.Record with { Generation = generation };
            return new Change<ResourceProvider>(result, [providerUuid],
                w =>
                {
                    w.Add("DELETE FROM inventories WHERE rp = @u", ("@u", providerUuid));
                    if (copy.Count > 0)
                    {
                        // One statement for all the classes (a host's three were three).
                        var rows = copy.Select((_, i) => $"(@u, @rc{i}, @total{i}, @reserved{i}, @min{i}, @max{i}, @step{i}, @ratio{i})");
                        w.Add("INSERT INTO inventories(rp, rc, total, reserved, min_unit, max_unit, step_size, allocation_ratio) VALUES " + string.Join(", ", rows),
                            [("@u", providerUuid), .. copy.SelectMany((entry, i) => new (string, object?)[]
                            {
                                ($"@rc{i}", entry.Key), ($"@total{i}", entry.Value.Total), ($"@reserved{i}", entry.Value.Reserved),
                                ($"@min{i}", entry.Value.MinUnit), ($"@max{i}", entry.Value.MaxUnit), ($"@step{i}", entry.Value.StepSize),
                                ($"@ratio{i}", entry.Value.AllocationRatio),
                            })]);
                    }
                    SaveGeneration(w, providerUuid, generation);
                },
                [(providerUuid, generation - 1)], [],
                () =>
                {
                    var applied = _providers[providerUuid];
                    applied.Inventories = copy;
                    applied.Bump();
                });
        }, cancellationToken);
    }

    public async Task<IReadOnlyDictionary<string, Inventory>> GetInventoriesAsync(string providerUuid, CancellationToken cancellationToken)
    {
        await RefreshAsync(cancellationToken);
        lock (_gate)
        {
            return new Dictionary<string, Inventory>(Provider(providerUuid).Inventories, StringComparer.Ordinal);
        }
    }

    public Task SetTraitsAsync(string providerUuid, long? expectedGeneration, IReadOnlyCollection<string> traits, CancellationToken cancellationToken)
    {
        foreach (var trait in traits)
        {
            if (string.IsNullOrWhiteSpace(trait))
            {
                throw new BadRequestException("Trait names must not be empty.");
            }
        }
        var set = traits.ToFrozenSet(StringComparer.Ordinal);
        return MutateAsync(() =>
        {
            var provider = Provider(providerUuid);
            CheckProviderGeneration(provider, expectedGeneration);
            var generation = provider.Record.Generation + 1;
            return new Change<int>(0, [providerUuid],
                w =>
                {
                    w.Add("DELETE FROM traits WHERE rp = @u", ("@u", providerUuid));
                    foreach (var trait in set)
                    {
                        w.Add("INSERT INTO traits(rp, trait) VALUES (@u, @t)", ("@u", providerUuid), ("@t", trait));
                    }
                    SaveGeneration(w, providerUuid, generation);
                },
                [(providerUuid, generation - 1)], [],
                () =>
                {
                    var applied = _providers[providerUuid];
                    applied.Traits = set;
                    applied.Bump();
                });
        }, cancellationToken);
    }

    public async Task<IReadOnlySet<string>> GetTraitsAsync(string providerUuid, CancellationToken cancellationToken)
    {
        await RefreshAsync(cancellationToken);
        lock (_gate)
        {
            return Provider(providerUuid).Traits;
        }
    }

    // One refresh for every provider: a catalog delete at 10,000 providers asked them one by one (a refresh each).
    public async Task<bool> IsResourceClassInventoriedAsync(string resourceClass, CancellationToken cancellationToken)
    {
        await RefreshAsync(cancellationToken);
        lock (_gate)
        {
            foreach (var state in _providers.Values)
            {
                if (state.Inventories.ContainsKey(resourceClass))
                {
                    return true;
                }
            }
            return false;
        }
    }

    public async Task<IReadOnlySet<string>> GetAssociatedTraitsAsync(CancellationToken cancellationToken)
    {
        await RefreshAsync(cancellationToken);
        lock (_gate)
        {
            var traits = new HashSet<string>(StringComparer.Ordinal);
            foreach (var state in _providers.Values)
            {
                traits.UnionWith(state.Traits);
            }
            return traits;
        }
    }

    public async Task<IReadOnlyDictionary<string, long>> GetProviderUsagesAsync(string providerUuid, CancellationToken cancellationToken)
    {
        await RefreshAsync(cancellationToken);
        lock (_gate)
        {
            var provider = Provider(providerUuid);
            var usages = new Dictionary<string, long>(StringComparer.Ordinal);
            foreach (var rc in provider.Inventories.Keys)
            {
                usages[rc] = 0;
            }
            foreach (var (rc, used) in provider.Usage)
            {
                if (used != 0 || usages.ContainsKey(rc))
                {
                    usages[rc] = used;
                }
            }
            return usages;
        }
    }

    public async Task<IReadOnlyDictionary<string, long>> GetUsagesAsync(string? projectId, string? userId, CancellationToken cancellationToken)
    {
        await RefreshAsync(cancellationToken);
        lock (_gate)
        {
            var usages = new Dictionary<string, long>(StringComparer.Ordinal);
            if (projectId is null && userId is null)
            {
                foreach (var provider in _providers.Values)
                {
                    foreach (var (rc, used) in provider.Usage)
                    {
                        if (used != 0)
                        {
                            usages[rc] = usages.GetValueOrDefault(rc) + used;
                        }
                    }
                }
                return usages;
            }
            foreach (var consumer in _consumers.Values)
            {
                if ((projectId is not null && consumer.ProjectId != projectId) || (userId is not null && consumer.UserId != userId))
                {
                    continue;
                }
                foreach (var resources in consumer.Allocations.Values)
                {
                    foreach (var (rc, used) in resources)
                    {
                        usages[rc] = usages.GetValueOrDefault(rc) + used;
                    }
                }
            }
            return usages;
        }
    }

    public async Task<ConsumerAllocations> GetAllocationsAsync(string consumerUuid, CancellationToken cancellationToken)
    {
        await RefreshAsync(cancellationToken);
        lock (_gate)
        {
            if (!_consumers.TryGetValue(consumerUuid, out var consumer))
            {
                return new ConsumerAllocations();
            }
            return new ConsumerAllocations
            {
                Allocations = Copy(consumer.Allocations),
                ConsumerGeneration = consumer.Generation,
                ProjectId = consumer.ProjectId,
                UserId = consumer.UserId,
            };
        }
    }

    public async Task<IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>>> GetProviderAllocationsAsync(string providerUuid, CancellationToken cancellationToken)
    {
        await RefreshAsync(cancellationToken);
        lock (_gate)
        {
            var provider = Provider(providerUuid);
            var result = new Dictionary<string, IReadOnlyDictionary<string, long>>(provider.Consumers.Count, StringComparer.Ordinal);
            foreach (var (consumer, resources) in provider.Consumers)
            {
                // The inner dictionaries are never mutated once stored, so they can be handed out.
                result[consumer] = resources;
            }
            return result;
        }
    }

    public Task<ConsumerAllocations> PutAllocationsAsync(string consumerUuid, AllocationRequest request, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(consumerUuid);
        return MutateAsync(() =>
        {
            CheckConsumerGeneration(consumerUuid, request.ConsumerGeneration);
            var plan = Plan([new ConsumerWrite(consumerUuid, request.Allocations, request.ProjectId, request.UserId)], checkCapacity: true);
            var planned = plan.Consumers[0];
            var result = planned.Generation is { } generation
                ? new ConsumerAllocations { Allocations = Copy(planned.Allocations), ConsumerGeneration = generation, ProjectId = planned.ProjectId, UserId = planned.UserId }
                : new ConsumerAllocations();
            return Commit(result, plan);
        }, cancellationToken);
    }

    public Task<bool> DeleteAllocationsAsync(string consumerUuid, CancellationToken cancellationToken) =>
        MutateAsync(() =>
            _consumers.TryGetValue(consumerUuid, out var consumer)
                ? Commit(true, Plan([new ConsumerWrite(consumerUuid, [], consumer.ProjectId, consumer.UserId)], checkCapacity: false))
                : Change.None(false),
            cancellationToken);

    public Task PostAllocationsAsync(IReadOnlyDictionary<string, AllocationRequest> requests, CancellationToken cancellationToken)
    {
        foreach (var consumerUuid in requests.Keys)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(consumerUuid);
        }
        return MutateAsync(() =>
        {
            var writes = new List<ConsumerWrite>(requests.Count);
            foreach (var (consumerUuid, request) in requests)
            {
                CheckConsumerGeneration(consumerUuid, request.ConsumerGeneration);
                writes.Add(new ConsumerWrite(consumerUuid, request.Allocations, request.ProjectId, request.UserId));
            }
            return Commit(0, Plan(writes, checkCapacity: true));
        }, cancellationToken);
    }

    public Task<bool> MoveAllocationsAsync(string sourceConsumer, string targetConsumer, CancellationToken cancellationToken)
    {
        if (sourceConsumer == targetConsumer)
        {
            throw new BadRequestException("Cannot move allocations of a consumer to itself.");
        }
        return MutateAsync(() =>
        {
            if (!_consumers.TryGetValue(sourceConsumer, out var source))
            {
                return Change.None(false);
            }
            // As Nova's move_allocations: both consumers are written with the source's project and user.
            return Commit(true, Plan(
                [
                    new ConsumerWrite(sourceConsumer, [], source.ProjectId, source.UserId),
                    new ConsumerWrite(targetConsumer, source.Allocations, source.ProjectId, source.UserId),
                ],
                checkCapacity: true));
        }, cancellationToken);
    }

    public Task RemoveProviderFromAllocationAsync(string consumerUuid, string providerUuid, CancellationToken cancellationToken) =>
        MutateAsync(() =>
        {
            if (!_consumers.TryGetValue(consumerUuid, out var consumer) || !consumer.Allocations.ContainsKey(providerUuid))
            {
                return Change.None(0);
            }
            var remaining = new Dictionary<string, Dictionary<string, long>>(consumer.Allocations, StringComparer.Ordinal);
            remaining.Remove(providerUuid);
            return Commit(0, Plan([new ConsumerWrite(consumerUuid, remaining, consumer.ProjectId, consumer.UserId)], checkCapacity: false));
        }, cancellationToken);

    public async Task<AllocationCandidates> GetAllocationCandidatesAsync(
        IReadOnlyDictionary<string, long> resources,
        IReadOnlyCollection<string>? requiredTraits,
        IReadOnlyCollection<string>? forbiddenTraits,
        string? inTree,
        int limit,
        CancellationToken cancellationToken)
    {
        var wanted = resources.ToArray();
        foreach (var (rc, amount) in wanted)
        {
            if (amount <= 0)
            {
                throw new BadRequestException($"Invalid amount {amount} requested for resource class {rc}.");
            }
        }
        // Arrays, so the per-provider loops below neither allocate enumerators nor dispatch through interfaces.
        var required = requiredTraits is { Count: > 0 } ? requiredTraits.ToArray() : [];
        var forbidden = forbiddenTraits is { Count: > 0 } ? forbiddenTraits.ToArray() : [];
        if (limit <= 0)
        {
            return new AllocationCandidates([], new Dictionary<string, ProviderSummary>());
        }

        await RefreshAsync(cancellationToken);
        List<string> uuids;
        Dictionary<string, ProviderSummary> summaries;
        lock (_gate)
        {
            var expected = inTree is not null ? 1 : Math.Min(limit, _providers.Count);
            uuids = new List<string>(expected);
            summaries = new Dictionary<string, ProviderSummary>(expected, StringComparer.Ordinal);
            if (inTree is not null)
            {
                if (_providers.TryGetValue(inTree, out var only))
                {
                    Consider(only);
                }
            }
            else
            {
                foreach (var provider in _providers.Values)
                {
                    if (Consider(provider) && uuids.Count >= limit)
                    {
                        break;
                    }
                }
            }
        }
        return new AllocationCandidates(uuids, summaries);

        bool Consider(ProviderState provider)
        {
            if (!Fits(provider, wanted) || !HasTraits(provider, required, forbidden))
            {
                return false;
            }
            uuids.Add(provider.Record.Uuid);
            summaries[provider.Record.Uuid] = provider.Summary ??= BuildSummary(provider);
            return true;
        }
    }

    private static bool Fits(ProviderState provider, KeyValuePair<string, long>[] wanted)
    {
        foreach (var (rc, amount) in wanted)
        {
            if (!provider.Inventories.TryGetValue(rc, out var inventory)
                || amount < inventory.MinUnit
                || amount > inventory.MaxUnit
                || amount % inventory.StepSize != 0
                || provider.Usage.GetValueOrDefault(rc) + amount > inventory.Capacity)
            {
                return false;
            }
        }
        return true;
    }

    private static bool HasTraits(ProviderState provider, string[] required, string[] forbidden)
    {
        foreach (var trait in required)
        {
            if (!provider.Traits.Contains(trait))
            {
                return false;
            }
        }
        foreach (var trait in forbidden)
        {
            if (provider.Traits.Contains(trait))
            {
                return false;
            }
        }
        return true;
    }

    private static ProviderSummary BuildSummary(ProviderState provider)
    {
        var resources = new Dictionary<string, (long Capacity, long Used)>(provider.Inventories.Count, StringComparer.Ordinal);
        foreach (var (rc, inventory) in provider.Inventories)
        {
            resources[rc] = (inventory.Capacity, provider.Usage.GetValueOrDefault(rc));
        }
        return new ProviderSummary(provider.Record.Uuid, provider.Record.Name, resources, provider.Traits);
    }

    private static void ValidateInventory(string rc, Inventory inventory)
    {
        if (string.IsNullOrWhiteSpace(rc))
        {
            throw new BadRequestException("Resource class names must not be empty.");
        }
        if (inventory.Total < 1 || inventory.Reserved < 0 || inventory.MinUnit < 1 || inventory.MaxUnit < 1
            || inventory.StepSize < 1 || !(inventory.AllocationRatio > 0))
        {
            throw new BadRequestException($"Invalid inventory for {rc}: total, min_unit, max_unit and step_size must be >= 1, reserved >= 0 and allocation_ratio > 0.");
        }
        if (inventory.Reserved > inventory.Total)
        {
            throw new BadRequestException($"Unable to update inventory: invalid inventory for '{rc}': reserved ({inventory.Reserved}) exceeds total ({inventory.Total}).");
        }
        if (inventory.MinUnit > inventory.MaxUnit)
        {
            throw new BadRequestException($"Unable to update inventory: invalid inventory for '{rc}': min_unit exceeds max_unit.");
        }
    }

    private ProviderState Provider(string uuid) =>
        _providers.TryGetValue(uuid, out var state)
            ? state
            : throw new NotFoundException($"No resource provider with uuid {uuid} found");

    private static void CheckProviderGeneration(ProviderState provider, long? expected)
    {
        if (expected is { } generation && generation != provider.Record.Generation)
        {
            throw new PlacementConflictException(
                $"resource provider generation conflict: resource provider {provider.Record.Uuid} is at generation " +
                $"{provider.Record.Generation}, not {generation}. Please update the generation and try again.");
        }
    }

    private void CheckConsumerGeneration(string consumerUuid, long? expected)
    {
        var actual = _consumers.TryGetValue(consumerUuid, out var consumer) ? consumer.Generation : (long?)null;
        if (actual != expected)
        {
            throw new PlacementConflictException(
                $"consumer generation conflict - expected {expected?.ToString() ?? "null"} but got {actual?.ToString() ?? "null"}");
        }
    }

    /// <summary>
    /// Validates a set of consumer replacements against the current state and works out the result:
    /// new consumer generations and the providers whose generation moves. Changes nothing.
    /// </summary>
    private WritePlan Plan(IReadOnlyList<ConsumerWrite> writes, bool checkCapacity, string? deletedProvider = null)
    {
        // Net change per provider and class: the consumers' old amounts no longer count against them.
        var delta = new Dictionary<(string Rp, string Rc), long>();
        var touched = new HashSet<string>(StringComparer.Ordinal);
        var consumers = new List<PlannedConsumer>(writes.Count);
        foreach (var write in writes)
        {
            var allocations = new Dictionary<string, Dictionary<string, long>>(write.Allocations.Count, StringComparer.Ordinal);
            foreach (var (rp, resources) in write.Allocations)
            {
                if (resources.Count == 0)
                {
                    continue;
                }
                if (!_providers.TryGetValue(rp, out var provider) || rp == deletedProvider)
                {
                    throw new BadRequestException($"Allocation for resource provider '{rp}' that does not exist.");
                }
                foreach (var (rc, amount) in resources)
                {
                    if (amount < 1)
                    {
                        throw new BadRequestException($"Unable to allocate inventory: amount {amount} of {rc} on resource provider '{rp}' must be at least 1.");
                    }
                    if (!provider.Inventories.TryGetValue(rc, out var inventory))
                    {
                        throw new PlacementConflictException(
                            $"Unable to allocate inventory: Inventory for '{rc}' on resource provider '{rp}' invalid.");
                    }
                    if (checkCapacity && (amount < inventory.MinUnit || amount > inventory.MaxUnit || amount % inventory.StepSize != 0))
                    {
                        throw new PlacementConflictException(
                            $"Unable to allocate inventory: Unable to create allocation for '{rc}' on resource provider '{rp}'. " +
                            $"The requested amount would violate inventory constraints (min_unit {inventory.MinUnit}, " +
                            $"max_unit {inventory.MaxUnit}, step_size {inventory.StepSize}).");
                    }
                    delta[(rp, rc)] = delta.GetValueOrDefault((rp, rc)) + amount;
                }
                allocations[rp] = new Dictionary<string, long>(resources, StringComparer.Ordinal);
                touched.Add(rp);
            }

            long? generation = null;
            if (_consumers.TryGetValue(write.Consumer, out var old))
            {
                foreach (var (rp, resources) in old.Allocations)
                {
                    foreach (var (rc, amount) in resources)
                    {
                        delta[(rp, rc)] = delta.GetValueOrDefault((rp, rc)) - amount;
                    }
                    touched.Add(rp);
                }
                generation = old.Generation;
            }
            if (allocations.Count > 0)
            {
                generation = (generation ?? 0) + 1;
            }
            consumers.Add(new PlannedConsumer(write.Consumer, allocations, write.ProjectId, write.UserId, allocations.Count > 0 ? generation : null, old?.Generation));
        }

        if (checkCapacity)
        {
            foreach (var ((rp, rc), change) in delta)
            {
                // Only growth is checked, so handing an allocation over (a move) never fails on a
                // provider whose inventory shrank below its usage.
                if (change <= 0)
                {
                    continue;
                }
                var provider = _providers[rp];
                var inventory = provider.Inventories[rc];
                var used = provider.Usage.GetValueOrDefault(rc);
                if (used + change > inventory.Capacity)
                {
                    throw new PlacementConflictException(
                        $"Unable to allocate inventory: Unable to create allocation for '{rc}' on resource provider '{rp}'. " +
                        $"The requested amount would exceed the capacity (used {used}, requested {change}, capacity {inventory.Capacity}).");
                }
            }
        }

        touched.Remove(deletedProvider ?? "");
        var generations = new List<(string Rp, long Generation)>(touched.Count);
        foreach (var rp in touched)
        {
            generations.Add((rp, _providers[rp].Record.Generation + 1));
        }
        return new WritePlan(consumers, generations);
    }


    /// <summary>
    /// Writes a plan, each consumer and provider row conditional on the generation the plan was made from
    /// (consumers first, then providers, each in uuid order, so concurrent writers lock rows in one order).
    /// </summary>
    private static void Persist(WriteStatements write, WritePlan plan)
    {
        foreach (var consumer in plan.Consumers.OrderBy(c => c.Uuid, StringComparer.Ordinal))
        {
            if (consumer.OldGeneration is { } old)
            {
                if (consumer.Generation is { } next)
                {
                    write.MustHit("UPDATE consumers SET project_id = @p, user_id = @u, generation = @g WHERE uuid = @c AND generation = @old",
                        ("@c", consumer.Uuid), ("@p", consumer.ProjectId), ("@u", consumer.UserId), ("@g", next), ("@old", old));
                }
                else
                {
                    write.MustHit("DELETE FROM consumers WHERE uuid = @c AND generation = @old", ("@c", consumer.Uuid), ("@old", old));
                }
            }
            else if (consumer.Generation is { } first)
            {
                write.MustHit("INSERT INTO consumers(uuid, project_id, user_id, generation) VALUES (@c, @p, @u, @g) ON CONFLICT(uuid) DO NOTHING",
                    ("@c", consumer.Uuid), ("@p", consumer.ProjectId), ("@u", consumer.UserId), ("@g", first));
            }
            else
            {
                continue; // Absent before and after: nothing of it to write.
            }
            write.Add("DELETE FROM allocations WHERE consumer = @c", ("@c", consumer.Uuid));
            foreach (var (rp, resources) in consumer.Allocations)
            {
                foreach (var (rc, used) in resources)
                {
                    write.Add("INSERT INTO allocations(consumer, rp, rc, used) VALUES (@c, @rp, @rc, @n)",
                        ("@c", consumer.Uuid), ("@rp", rp), ("@rc", rc), ("@n", used));
                }
            }
        }
        foreach (var (rp, generation) in plan.ProviderGenerations.OrderBy(g => g.Rp, StringComparer.Ordinal))
        {
            SaveGeneration(write, rp, generation);
        }
    }

    /// <summary>Applies a persisted plan to memory; cannot fail.</summary>
    private void Apply(WritePlan plan)
    {
        foreach (var planned in plan.Consumers)
        {
            if (_consumers.TryGetValue(planned.Uuid, out var old))
            {
                foreach (var (rp, resources) in old.Allocations)
                {
                    var provider = _providers[rp];
                    provider.Consumers.Remove(planned.Uuid);
                    foreach (var (rc, amount) in resources)
                    {
                        provider.Usage[rc] = provider.Usage.GetValueOrDefault(rc) - amount;
                    }
                }
            }
            if (planned.Generation is not { } generation)
            {
                _consumers.Remove(planned.Uuid);
                continue;
            }
            foreach (var (rp, resources) in planned.Allocations)
            {
                var provider = _providers[rp];
                provider.Consumers[planned.Uuid] = resources;
                foreach (var (rc, amount) in resources)
                {
                    provider.Usage[rc] = provider.Usage.GetValueOrDefault(rc) + amount;
                }
            }
            _consumers[planned.Uuid] = new ConsumerState(planned.ProjectId, planned.UserId, generation, planned.Allocations);
        }
        foreach (var (rp, _) in plan.ProviderGenerations)
        {
            _providers[rp].Bump();
        }
    }


    private static List<(string Rp, long? Generation)> BaseOf(WritePlan plan) =>
        [.. plan.ProviderGenerations.Select(g => (g.Rp, (long?)(g.Generation - 1)))];

    private static List<(string Consumer, long? Generation)> ConsumersBaseOf(WritePlan plan) =>
        [.. plan.Consumers.Select(c => (c.Uuid, c.OldGeneration))];

    /// <summary>A write of allocations made from <paramref name="plan"/>, answering <paramref name="result"/>.</summary>
    private Change<T> Commit<T>(T result, WritePlan plan) =>
        new(result, [.. plan.ProviderGenerations.Select(g => g.Rp)], w => Persist(w, plan), BaseOf(plan), ConsumersBaseOf(plan), () => Apply(plan));

    /// <summary>
    /// Plans a write from the cache under its lock, commits it with no lock held, and applies it to the cache. When the
    /// database shows the cache was stale (a conditional update hit no row), the providers of the write are compared again
    /// and it is planned again, so validation (capacity, generations) always ends against what is committed. On a shared
    /// database a refusal (an exception from the plan) or a write that changes nothing is answered only from a cache
    /// refreshed after the call began.
    /// </summary>
    private async Task<T> MutateAsync<T>(Func<Change<T>> plan, CancellationToken cancellationToken)
    {
        if (!_database.IsShared)
        {
            // SQLite: the one connection serialises every write anyway; holding the sequence from plan to application
            // keeps the cache authoritative, and nothing here waits on another process.
            await _sequence.WaitAsync(cancellationToken);
            try
            {
                Change<T> change;
                lock (_gate)
                {
                    change = plan();
                }
                if (change.Build is not null)
                {
                    await WriteThroughAsync(change, cancellationToken);
                    lock (_gate)
                    {
                        change.Apply();
                    }
                }
                return change.Result;
            }
            catch (StaleCacheException)
            {
                // A row changed under the cache by hand: Placement's ConcurrentUpdateDetected.
                throw new PlacementConflictException("Another thread concurrently updated the data. Please retry your update");
            }
            finally
            {
                _sequence.Release();
            }
        }

        var refreshed = false;
        for (var attempt = 1; ; attempt++)
        {
            Change<T> change;
            try
            {
                lock (_gate)
                {
                    change = plan();
                }
            }
            catch (FerryException) when (!refreshed)
            {
                // Perhaps refused from a stale cache (a consumer generation another replica moved, a provider it created).
                await RefreshAsync(cancellationToken);
                refreshed = true;
                continue;
            }
            if (change.Build is null)
            {
                if (refreshed)
                {
                    return change.Result;
                }
                await RefreshAsync(cancellationToken);
                refreshed = true;
                continue;
            }
            try
            {
                await WriteThroughAsync(change, cancellationToken);
            }
            catch (StaleCacheException) when (attempt < MaxAttempts)
            {
                // Another writer committed first: compare its providers (after a few rounds, every provider: a row
                // changed by hand logs nothing), reload what changed, and plan again.
                lock (_gate)
                {
                    _compare.UnionWith(change.Providers);
                    _compareAll |= attempt >= 5;
                }
                await RefreshAsync(cancellationToken);
                refreshed = true;
                continue;
            }
            catch (StaleCacheException)
            {
                // Placement's ConcurrentUpdateDetected.
                throw new PlacementConflictException("Another thread concurrently updated the data. Please retry your update");
            }
            await ApplyCommittedAsync(change);
            return change.Result;
        }
    }

    /// <summary>
    /// Applies a committed write to the cache, sequenced with refreshes. When the cache no longer holds what the write was
    /// planned from (a refresh already loaded it, or something older), nothing is applied and its providers are reloaded
    /// by the next refresh instead.
    /// </summary>
    private async Task ApplyCommittedAsync<T>(Change<T> change)
    {
        await _sequence.WaitAsync(CancellationToken.None);
        try
        {
            lock (_gate)
            {
                var current = change.ProviderBase.All(b => (_providers.TryGetValue(b.Rp, out var p) ? p.Record.Generation : (long?)null) == b.Generation)
                    && change.ConsumerBase.All(b => (_consumers.TryGetValue(b.Consumer, out var c) ? c.Generation : (long?)null) == b.Generation);
                if (current)
                {
                    change.Apply();
                }
                else
                {
                    _suspect.UnionWith(change.Providers);
                }
            }
        }
        finally
        {
            _sequence.Release();
        }
    }

    /// <summary>
    /// Writes in one transaction; on a shared database the same transaction logs the providers the write changed, under
    /// its transaction id, so other replicas reload only those (and no row is shared by writers of different providers).
    /// </summary>
    private async Task WriteThroughAsync<T>(Change<T> change, CancellationToken cancellationToken)
    {
        var write = new WriteStatements();
        // The log first: it goes to the server with the write's statements up to its first conditional one.
        if (_database.IsShared)
        {
            var changed = change.Providers.Distinct(StringComparer.Ordinal).ToArray();
            write.Add("INSERT INTO placement_log(txid, rp, logged_at) " +
                "SELECT pg_current_xact_id()::text::bigint, rp, extract(epoch from now())::bigint FROM unnest(@rps) AS rp",
                ("@rps", changed));
            if (Interlocked.Increment(ref _writes) % LogPurgeEvery == 0)
            {
                write.Add("DELETE FROM placement_log WHERE logged_at < extract(epoch from now())::bigint - @kept",
                    ("@kept", (long)s_logKept.TotalSeconds));
            }
        }
        change.Build!(write);
        await _database.WriteAsync(write.RunAsync, cancellationToken);
    }

    /// <summary>The oldest transaction id still running as of the statement's (or REPEATABLE READ transaction's) snapshot.</summary>
    private static async Task<long> ReadWatermarkAsync(DbConnection connection, DbTransaction? transaction, CancellationToken cancellationToken)
    {
        await using var read = FerryDatabase.Command(connection, transaction, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint");
        return Convert.ToInt64(await read.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// On a shared database, brings the cache up to what was committed before the call: shares a refresh that began
    /// after the call did, or runs one.
    /// </summary>
    private async Task RefreshAsync(CancellationToken cancellationToken)
    {
        if (!_database.IsShared)
        {
            return;
        }
        var arrival = Volatile.Read(ref _refreshesBegun);
        await _sequence.WaitAsync(cancellationToken);
        try
        {
            if (_lastRefreshed > arrival)
            {
                return; // one that began after this call arrived has completed
            }
            var number = Interlocked.Increment(ref _refreshesBegun);
            await RefreshOnceAsync(cancellationToken);
            _lastRefreshed = number;
        }
        finally
        {
            _sequence.Release();
        }
    }

    /// <summary>
    /// Under <see cref="_sequence"/>: reads (one round trip) the providers logged by transactions at or after the
    /// watermark with their committed generation and name, and reloads those the cache has otherwise, with every consumer
    /// that has (or had) allocations on them; the providers in <see cref="_compare"/> are compared too, those in
    /// <see cref="_suspect"/> reloaded, and <see cref="_compareAll"/> (or a cache idle longer than the log keeps)
    /// compares every provider. The database is read with no lock held; the cache changes under the lock at the end.
    /// </summary>
    private async Task RefreshOnceAsync(CancellationToken cancellationToken)
    {
        var looked = System.Diagnostics.Stopwatch.GetTimestamp();
        string[] compare;
        string[] forced;
        bool whole;
        lock (_gate)
        {
            compare = [.. _compare];
            forced = [.. _suspect];
            whole = _compareAll || System.Diagnostics.Stopwatch.GetElapsedTime(Interlocked.Read(ref _lastLook), looked) > s_logKept / 2;
        }
        long next;
        if (whole)
        {
            (next, var reload) = await _database.SnapshotAsync(async (c, t, ct) =>
                (await ReadWatermarkAsync(c, t, ct), await ReadReloadAsync(c, t, null, forced, ct)), cancellationToken);
            lock (_gate)
            {
                ApplyReload(reload);
                _compareAll = false;
            }
        }
        else
        {
            var logged = await _database.ReadAsync(async (c, ct) =>
            {
                await using var read = FerryDatabase.Command(c, null,
                    "SELECT w.xmin, l.rp, p.name, p.generation " +
                    "FROM (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin) w " +
                    "LEFT JOIN (SELECT DISTINCT rp FROM placement_log WHERE txid >= @w) l ON true " +
                    "LEFT JOIN resource_providers p ON p.uuid = l.rp",
                    ("@w", Interlocked.Read(ref _watermark)));
                return await Rows.ReadAllAsync(read, r => (
                    Xmin: r.GetInt64(0),
                    Rp: r.IsDBNull(1) ? null : r.GetString(1),
                    Name: r.IsDBNull(2) ? null : r.GetString(2),
                    Generation: r.IsDBNull(3) ? (long?)null : r.GetInt64(3)), ct);
            }, cancellationToken);
            next = logged[0].Xmin;
            var stale = new HashSet<string>(compare, StringComparer.Ordinal);
            stale.UnionWith(forced);
            lock (_gate)
            {
                foreach (var (_, rp, name, generation) in logged)
                {
                    if (rp is null)
                    {
                        continue;
                    }
                    var cached = _providers.GetValueOrDefault(rp);
                    if (generation is null ? cached is not null : cached is null || cached.Record.Generation != generation || cached.Record.Name != name)
                    {
                        stale.Add(rp);
                    }
                }
            }
            if (stale.Count > 0)
            {
                var reload = await _database.SnapshotAsync((c, t, ct) => ReadReloadAsync(c, t, [.. stale], forced, ct), cancellationToken);
                lock (_gate)
                {
                    ApplyReload(reload);
                }
            }
        }
        lock (_gate)
        {
            _compare.ExceptWith(compare);
            _suspect.ExceptWith(forced);
            _watermark = Math.Max(_watermark, next);
            _lastLook = looked;
        }
    }

    /// <summary>What a refresh read: the providers changed or gone, and the rows to load for them and their consumers.</summary>
    private sealed record Reload(
        Dictionary<string, (string Name, long Generation)> Committed,
        List<string> Changed,
        List<string> Removed,
        HashSet<string> Consumers,
        List<(string Rp, string Rc, Inventory Inventory)> Inventories,
        List<(string Rp, string Trait)> Traits,
        Dictionary<string, (string Project, string User, long Generation)> ConsumerRows,
        List<(string Consumer, string Rp, string Rc, long Used)> AllocationRows);

    /// <param name="candidates">Only these providers are compared; null for all.</param>
    /// <param name="forced">Reloaded even when their generation and name match.</param>
    private async Task<Reload?> ReadReloadAsync(DbConnection connection, DbTransaction transaction, string[]? candidates, string[] forced,
        CancellationToken cancellationToken)
    {
        var committed = new Dictionary<string, (string Name, long Generation)>(StringComparer.Ordinal);
        if (candidates is null)
        {
            await ReadManyAsync(connection, transaction, [], [], cancellationToken,
                ("SELECT uuid, name, generation FROM resource_providers", r => committed[r.GetString(0)] = (r.GetString(1), r.GetInt64(2))));
        }
        foreach (var rps in (candidates ?? []).Chunk(100))
        {
            await ReadManyAsync(connection, transaction, rps, [], cancellationToken,
                ("SELECT uuid, name, generation FROM resource_providers WHERE uuid = ANY(@rps)", r => committed[r.GetString(0)] = (r.GetString(1), r.GetInt64(2))));
        }
        var changed = new List<string>();
        List<string> removed;
        // Consumers to reload: those the cache has on the providers, and those the database has there now.
        var consumers = new HashSet<string>(StringComparer.Ordinal);
        lock (_gate)
        {
            var force = forced.ToHashSet(StringComparer.Ordinal);
            foreach (var (uuid, (name, generation)) in committed)
            {
                if (!_providers.TryGetValue(uuid, out var cached) || cached.Record.Generation != generation || cached.Record.Name != name || force.Contains(uuid))
                {
                    changed.Add(uuid);
                }
            }
            removed = [.. (candidates ?? (IEnumerable<string>)_providers.Keys).Where(uuid => _providers.ContainsKey(uuid) && !committed.ContainsKey(uuid))];
            if (changed.Count == 0 && removed.Count == 0)
            {
                return null;
            }
            foreach (var uuid in changed.Concat(removed))
            {
                if (_providers.TryGetValue(uuid, out var cached))
                {
                    consumers.UnionWith(cached.Consumers.Keys);
                }
            }
        }

        // The consumers the database has on the changed providers now are selected in SQL (no read of them first).
        var changedArray = changed.ToArray();
        var known = consumers.ToArray();
        const string OnChanged = "(SELECT consumer FROM allocations WHERE rp = ANY(@rps))";
        var inventories = new List<(string Rp, string Rc, Inventory Inventory)>();
        var traits = new List<(string Rp, string Trait)>();
        var consumerRows = new Dictionary<string, (string Project, string User, long Generation)>(StringComparer.Ordinal);
        var allocationRows = new List<(string Consumer, string Rp, string Rc, long Used)>();
        // Arrays of at most 100 uuids per query (commands stay within Npgsql's 8 KB write buffer). Read one by one: the six
        // reads below as one statement made 29-103 of 200 live migrations at once time out in select_destinations, even
        // with 100 uuids a statement in all (BENCHMARKS.md; not understood), as an Npgsql batch of them hung before.
        foreach (var rps in changedArray.Chunk(100))
        {
            await ReadManyAsync(connection, transaction, rps, [], cancellationToken,
                (InventoriesSql + " WHERE rp = ANY(@rps)", r => inventories.Add(ReadInventory(r))),
                (TraitsSql + " WHERE rp = ANY(@rps)", r => traits.Add((r.GetString(0), r.GetString(1)))),
                (ConsumersSql + " WHERE uuid IN " + OnChanged, r => consumerRows[r.GetString(0)] = (r.GetString(1), r.GetString(2), r.GetInt64(3))),
                (AllocationsSql + " WHERE consumer IN " + OnChanged, r => allocationRows.Add((r.GetString(0), r.GetString(1), r.GetString(2), r.GetInt64(3)))));
        }
        foreach (var cs in known.Chunk(100))
        {
            await ReadManyAsync(connection, transaction, [], cs, cancellationToken,
                (ConsumersSql + " WHERE uuid = ANY(@cs)", r => consumerRows[r.GetString(0)] = (r.GetString(1), r.GetString(2), r.GetInt64(3))),
                (AllocationsSql + " WHERE consumer = ANY(@cs)", r => allocationRows.Add((r.GetString(0), r.GetString(1), r.GetString(2), r.GetInt64(3)))));
        }
        foreach (var (consumer, _, _, _) in allocationRows)
        {
            consumers.Add(consumer);
        }
        return new Reload(committed, changed, removed, consumers, inventories, traits, consumerRows, allocationRows);
    }

    /// <summary>Under the lock: replaces the cache's state of the providers and consumers a refresh read.</summary>
    private void ApplyReload(Reload? reload)
    {
        if (reload is null)
        {
            return;
        }
        foreach (var uuid in reload.Consumers)
        {
            if (_consumers.Remove(uuid, out var old))
            {
                foreach (var (rp, resources) in old.Allocations)
                {
                    if (_providers.TryGetValue(rp, out var provider))
                    {
                        provider.Consumers.Remove(uuid);
                        foreach (var (rc, amount) in resources)
                        {
                            provider.Usage[rc] = provider.Usage.GetValueOrDefault(rc) - amount;
                        }
                        provider.Summary = null;
                    }
                }
            }
        }
        foreach (var uuid in reload.Removed)
        {
            _providers.Remove(uuid);
        }
        foreach (var uuid in reload.Changed)
        {
            var (name, generation) = reload.Committed[uuid];
            if (!_providers.TryGetValue(uuid, out var provider))
            {
                _providers[uuid] = provider = new ProviderState(new ResourceProvider(uuid, name, generation));
            }
            provider.Record = new ResourceProvider(uuid, name, generation);
            provider.Inventories = new Dictionary<string, Inventory>(StringComparer.Ordinal);
            provider.Traits = s_noTraits;
            provider.Summary = null;
        }
        SetInventoriesAndTraits(reload.Inventories, reload.Traits);
        AddConsumers(reload.ConsumerRows, reload.AllocationRows);
    }

    private const string InventoriesSql = "SELECT rp, rc, total, reserved, min_unit, max_unit, step_size, allocation_ratio FROM inventories";
    private const string TraitsSql = "SELECT rp, trait FROM traits";
    private const string ConsumersSql = "SELECT uuid, project_id, user_id, generation FROM consumers";
    private const string AllocationsSql = "SELECT consumer, rp, rc, used FROM allocations";

    private async Task LoadAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken)
    {
        var providers = new List<ResourceProvider>();
        var inventories = new List<(string Rp, string Rc, Inventory Inventory)>();
        var traits = new List<(string Rp, string Trait)>();
        var consumerRows = new Dictionary<string, (string Project, string User, long Generation)>(StringComparer.Ordinal);
        var allocationRows = new List<(string Consumer, string Rp, string Rc, long Used)>();
        await ReadManyAsync(connection, transaction, [], [], cancellationToken,
            ("SELECT uuid, name, generation FROM resource_providers", r => providers.Add(new ResourceProvider(r.GetString(0), r.GetString(1), r.GetInt64(2)))),
            (InventoriesSql, r => inventories.Add(ReadInventory(r))),
            (TraitsSql, r => traits.Add((r.GetString(0), r.GetString(1)))),
            (ConsumersSql, r => consumerRows[r.GetString(0)] = (r.GetString(1), r.GetString(2), r.GetInt64(3))),
            (AllocationsSql, r => allocationRows.Add((r.GetString(0), r.GetString(1), r.GetString(2), r.GetInt64(3)))));
        lock (_gate)
        {
            foreach (var provider in providers)
            {
                _providers[provider.Uuid] = new ProviderState(provider);
            }
            SetInventoriesAndTraits(inventories, traits);
            AddConsumers(consumerRows, allocationRows);
        }
    }

    /// <summary>
    /// Runs each query (parameters <c>@rps</c> and <c>@cs</c>, when it names them) and hands every row to its reader.
    /// </summary>
    private static async Task ReadManyAsync(DbConnection connection, DbTransaction transaction, string[] providers, string[] consumers,
        CancellationToken cancellationToken, params (string Sql, Action<DbDataReader> Read)[] queries)
    {
        (string, object?)[] Parameters(string sql) =>
        [
            .. sql.Contains("@rps", StringComparison.Ordinal) ? [("@rps", (object?)providers)] : Array.Empty<(string, object?)>(),
            .. sql.Contains("@cs", StringComparison.Ordinal) ? [("@cs", (object?)consumers)] : Array.Empty<(string, object?)>(),
        ];
        // One statement at a time: sent as one Npgsql batch, the native schedulers hung at the first select_destinations
        // of the 240-at-once round (a reload stopped after its first statement; not yet understood).
        foreach (var (sql, read) in queries)
        {
            await using var command = FerryDatabase.Command(connection, transaction, sql, Parameters(sql));
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                read(reader);
            }
        }
    }

    private static (string Rp, string Rc, Inventory Inventory) ReadInventory(DbDataReader reader) => (reader.GetString(0), reader.GetString(1), new Inventory
    {
        Total = reader.GetInt64(2),
        Reserved = reader.GetInt64(3),
        MinUnit = reader.GetInt64(4),
        MaxUnit = reader.GetInt64(5),
        StepSize = reader.GetInt64(6),
        AllocationRatio = reader.GetDouble(7),
    });

    /// <summary>Sets the inventories and traits read for cached providers (a provider without rows keeps what it had).</summary>
    private void SetInventoriesAndTraits(List<(string Rp, string Rc, Inventory Inventory)> inventories, List<(string Rp, string Trait)> traits)
    {
        foreach (var group in inventories.GroupBy(i => i.Rp, StringComparer.Ordinal))
        {
            if (_providers.TryGetValue(group.Key, out var provider))
            {
                provider.Inventories = group.ToDictionary(i => i.Rc, i => i.Inventory, StringComparer.Ordinal);
            }
        }
        foreach (var group in traits.GroupBy(t => t.Rp, StringComparer.Ordinal))
        {
            if (_providers.TryGetValue(group.Key, out var provider))
            {
                provider.Traits = group.Select(t => t.Trait).ToFrozenSet(StringComparer.Ordinal);
            }
        }
    }

    /// <summary>Adds the consumers read to the cache, with their usage on each cached provider.</summary>
    private void AddConsumers(
        Dictionary<string, (string Project, string User, long Generation)> consumers, List<(string Consumer, string Rp, string Rc, long Used)> rows)
    {
        var allocations = new Dictionary<string, Dictionary<string, Dictionary<string, long>>>(StringComparer.Ordinal);
        foreach (var (consumer, rp, rc, used) in rows)
        {
            if (!consumers.ContainsKey(consumer) || !_providers.ContainsKey(rp))
            {
                continue;
            }
            if (!allocations.TryGetValue(consumer, out var byProvider))
            {
                allocations[consumer] = byProvider = new Dictionary<string, Dictionary<string, long>>(StringComparer.Ordinal);
            }
            if (!byProvider.TryGetValue(rp, out var byClass))
            {
                byProvider[rp] = byClass = new Dictionary<string, long>(StringComparer.Ordinal);
            }
            byClass[rc] = used;
        }
        foreach (var (uuid, byProvider) in allocations)
        {
            var (project, user, generation) = consumers[uuid];
            _consumers[uuid] = new ConsumerState(project, user, generation, byProvider);
            foreach (var (rp, resources) in byProvider)
            {
                var provider = _providers[rp];
                provider.Consumers[uuid] = resources;
                provider.Summary = null;
                foreach (var (rc, amount) in resources)
                {
                    provider.Usage[rc] = provider.Usage.GetValueOrDefault(rc) + amount;
                }
            }
        }
    }

    /// <summary>Moves a provider to <paramref name="generation"/> from the one before it, or finds the cache stale.</summary>
    private static void SaveGeneration(WriteStatements write, string rp, long generation) =>
        write.MustHit("UPDATE resource_providers SET generation = @g WHERE uuid = @u AND generation = @old",
            ("@u", rp), ("@g", generation), ("@old", generation - 1));

    /// <summary>
    /// The statements of one write, run in order in its transaction. A statement added with <see cref="MustHit"/> is
    /// conditional on a generation: when it changed no row, the cache was stale and the transaction rolls back. Where the
    /// engine takes batches (PostgreSQL), the statements up to each conditional one go to the server in one round trip: a
    /// host's inventories were six, each waiting for the last, for each of 10,000 hosts starting.
    /// </summary>
    private sealed class WriteStatements
    {
        private readonly List<(string Sql, (string Name, object? Value)[] Parameters, bool MustHit)> _statements = [];

        public void Add(string sql, params (string Name, object? Value)[] parameters) => _statements.Add((sql, parameters, false));

        public void MustHit(string sql, params (string Name, object? Value)[] parameters) => _statements.Add((sql, parameters, true));

        public async Task RunAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken)
        {
            if (!connection.CanCreateBatch)
            {
                foreach (var (sql, parameters, mustHit) in _statements)
                {
                    await using var command = FerryDatabase.Command(connection, transaction, sql, parameters);
                    if (await command.ExecuteNonQueryAsync(cancellationToken) == 0 && mustHit)
                    {
                        throw new StaleCacheException();
                    }
                }
                return;
            }
            // A batch ends at each conditional statement, so none after it runs when it missed (as one by one).
            var start = 0;
            while (start < _statements.Count)
            {
                var end = _statements.FindIndex(start, x => x.MustHit) is var hit and >= 0 ? hit + 1 : _statements.Count;
                await using var batch = connection.CreateBatch();
                batch.Transaction = transaction;
                for (var i = start; i < end; i++)
                {
                    FerryDatabase.AddBatchCommand(batch, _statements[i].Sql, _statements[i].Parameters);
                }
                await batch.ExecuteNonQueryAsync(cancellationToken);
                if (_statements[end - 1].MustHit && batch.BatchCommands[^1].RecordsAffected == 0)
                {
                    throw new StaleCacheException();
                }
                start = end;
            }
        }
    }

    /// <summary>
    /// One write as planned under the lock: its answer, the providers it changes (logged), its statements (null: nothing to
    /// write), the generations it was planned from (null: absent), and its application to the cache after the commit.
    /// </summary>
    private sealed record Change<T>(
        T Result,
        string[] Providers,
        Action<WriteStatements>? Build,
        IReadOnlyList<(string Rp, long? Generation)> ProviderBase,
        IReadOnlyList<(string Consumer, long? Generation)> ConsumerBase,
        Action Apply);

    private static class Change
    {
        /// <summary>Nothing to write: the answer is <paramref name="result"/>.</summary>
        public static Change<T> None<T>(T result) => new(result, [], null, [], [], static () => { });
    }

    private static Dictionary<string, Dictionary<string, long>> Copy(Dictionary<string, Dictionary<string, long>> allocations)
    {
        var copy = new Dictionary<string, Dictionary<string, long>>(allocations.Count, StringComparer.Ordinal);
        foreach (var (rp, resources) in allocations)
        {
            copy[rp] = new Dictionary<string, long>(resources, StringComparer.Ordinal);
        }
        return copy;
    }

    /// <summary>A conditional write hit no row: another replica changed it since the cache was taken.</summary>
    private sealed class StaleCacheException : Exception;

    private sealed record ConsumerWrite(string Consumer, Dictionary<string, Dictionary<string, long>> Allocations, string ProjectId, string UserId);

    /// <summary>A consumer after the write; <see cref="Generation"/> null means it is deleted (no allocations left).</summary>
    private sealed record PlannedConsumer(
        string Uuid, Dictionary<string, Dictionary<string, long>> Allocations, string ProjectId, string UserId, long? Generation, long? OldGeneration);

    private sealed record WritePlan(List<PlannedConsumer> Consumers, List<(string Rp, long Generation)> ProviderGenerations);

    /// <summary>A consumer's allocations; the dictionaries are replaced on write, never mutated.</summary>
    private sealed record ConsumerState(string ProjectId, string UserId, long Generation, Dictionary<string, Dictionary<string, long>> Allocations);

    private sealed class ProviderState(ResourceProvider record)
    {
        public ResourceProvider Record { get; set; } = record;

        /// <summary>Replaced on write, never mutated.</summary>
        public Dictionary<string, Inventory> Inventories { get; set; } = new(StringComparer.Ordinal);

        public FrozenSet<string> Traits { get; set; } = s_noTraits;

        /// <summary>Used amount per class: the sum of <see cref="Consumers"/>, kept up to date on each write.</summary>
        public Dictionary<string, long> Usage { get; } = new(StringComparer.Ordinal);

        /// <summary>Each consumer's part on this provider (the same dictionaries as in its ConsumerState).</summary>
        public Dictionary<string, Dictionary<string, long>> Consumers { get; } = new(StringComparer.Ordinal);

        /// <summary>Cached candidate summary; dropped whenever anything it shows changes.</summary>
        public ProviderSummary? Summary { get; set; }

        public void Bump()
        {
            Record = Record with { Generation = Record.Generation + 1 };
            Summary = null;
        }
    }
}
