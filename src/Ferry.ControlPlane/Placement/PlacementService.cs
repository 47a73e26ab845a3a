using System.Collections.Frozen;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Errors;
using System.Data.Common;

namespace Ferry.ControlPlane.Placement;

/// <summary>
/// Placement cached whole in memory and written through to the database, which stays authoritative. Every
/// public method runs under one lock; a write validates against memory, persists in one transaction, and
/// only then changes memory, so a failed write leaves both untouched. Per-provider usage is maintained on
/// each allocation write (Placement recomputes it with SQL; here it is a lookup), which keeps candidates cheap.
/// <para>
/// On a shared database (PostgreSQL, several placement replicas) every write is conditional on the generations
/// the cache holds: each touched provider's <c>UPDATE … WHERE generation = g</c> and each consumer's must hit
/// its row, or the cache is stale, the transaction rolls back, the changed providers and their consumers are
/// reloaded and the write is validated again (capacity, the caller's generation). So two replicas can never
/// both claim the last of an inventory. Each write also logs the providers it changed in <c>placement_log</c>, in its
/// own transaction and under its transaction id, with no row in common with other writers (a single version row made
/// every write of every replica wait on one lock held across a durable commit). Before it answers, a replica reads the
/// log from the oldest transaction that was still running when it last looked (every older one was committed and seen
/// then) and reloads the providers whose generation or name its cache does not have (and their consumers).
/// </para>
/// </summary>
public sealed class PlacementService : IPlacementService
{
    private static readonly FrozenSet<string> s_noTraits = FrozenSet<string>.Empty;

    private readonly FerryDatabase _database;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, ProviderState> _providers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ConsumerState> _consumers = new(StringComparer.Ordinal);

    /// <summary>Attempts of one write against a cache that keeps turning out stale before it answers 409.</summary>
    private const int MaxAttempts = 20;

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

    /// <summary>The providers of the write under way, reloaded when the database shows the cache stale for them.</summary>
    private string[] _writing = [];

    public PlacementService(FerryDatabase database)
    {
        _database = database;
        _database.Migrate(PlacementSchema.Component, PlacementSchema.Scripts);
        _lastLook = System.Diagnostics.Stopwatch.GetTimestamp();
        _database.Snapshot((c, t) =>
        {
            _watermark = _database.IsShared ? ReadWatermark(c, t) : 0; // the snapshot's own: what it cannot see comes later
            return Load(c, t);
        });
    }

    public ResourceProvider EnsureProvider(string uuid, string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(uuid);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        return Mutate(() =>
        {
            if (_providers.TryGetValue(uuid, out var existing) && existing.Record.Name == name)
            {
                return existing.Record;
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
                WriteThrough([uuid], w => w.MustHit("INSERT INTO resource_providers(uuid, name, generation) VALUES (@u, @n, 0) ON CONFLICT(uuid) DO NOTHING",
                    ("@u", uuid), ("@n", name)));
                _providers[uuid] = new ProviderState(record);
                return record;
            }

            // A rename does not change the generation (Placement's ResourceProvider.save).
            WriteThrough([uuid], w => w.Add("UPDATE resource_providers SET name = @n WHERE uuid = @u", ("@u", uuid), ("@n", name)));
            existing.Record = existing.Record with { Name = name };
            existing.Summary = null;
            return existing.Record;
        });
    }

    public ResourceProvider? GetProvider(string uuid)
    {
        lock (_gate)
        {
            Refresh();
            return _providers.TryGetValue(uuid, out var state) ? state.Record : null;
        }
    }

    public IReadOnlyList<ResourceProvider> ListProviders()
    {
        lock (_gate)
        {
            Refresh();
            var list = new List<ResourceProvider>(_providers.Count);
            foreach (var state in _providers.Values)
            {
                list.Add(state.Record);
            }
            return list;
        }
    }

    public void DeleteProvider(string uuid)
    {
        Mutate(() =>
        {
            if (!_providers.TryGetValue(uuid, out var provider))
            {
                return;
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
            WriteThrough([uuid, .. plan.ProviderGenerations.Select(g => g.Rp)], w =>
            {
                Persist(w, plan);
                w.MustHit("DELETE FROM resource_providers WHERE uuid = @u AND generation = @g", ("@u", uuid), ("@g", generation));
                w.Add("DELETE FROM inventories WHERE rp = @u", ("@u", uuid));
                w.Add("DELETE FROM traits WHERE rp = @u", ("@u", uuid));
                w.Add("DELETE FROM allocations WHERE rp = @u", ("@u", uuid));
            });
            Apply(plan);
            _providers.Remove(uuid);
        });
    }

    public ResourceProvider SetInventories(string providerUuid, long? expectedGeneration, IReadOnlyDictionary<string, Inventory> inventories)
    {
        foreach (var (rc, inventory) in inventories)
        {
            ValidateInventory(rc, inventory);
        }
        return Mutate(() =>
        {
            var provider = Provider(providerUuid);
            CheckProviderGeneration(provider, expectedGeneration);
            foreach (var (rc, used) in provider.Usage)
            {
                if (used == 0)
                {
                    continue;
                }
                if (!inventories.TryGetValue(rc, out var inventory))
                {
                    throw new PlacementConflictException(
                        $"Inventory for '{rc}' on resource provider '{providerUuid}' in use.");
                }
                // Capacity below usage is allowed, as in Placement: a host restarted with more
                // reserved memory must still report; it just takes nothing new until usage drops.
            }

            var generation = provider.Record.Generation + 1;
            var copy = new Dictionary<string, Inventory>(inventories, StringComparer.Ordinal);
            WriteThrough([providerUuid], w =>
            {
                w.Add("DELETE FROM inventories WHERE rp = @u", ("@u", providerUuid));
                foreach (var (rc, inv) in copy)
                {
                    w.Add(
                        "INSERT INTO inventories(rp, rc, total, reserved, min_unit, max_unit, step_size, allocation_ratio) " +
                        "VALUES (@u, @rc, @total, @reserved, @min, @max, @step, @ratio)",
                        ("@u", providerUuid), ("@rc", rc), ("@total", inv.Total), ("@reserved", inv.Reserved),
                        ("@min", inv.MinUnit), ("@max", inv.MaxUnit), ("@step", inv.StepSize), ("@ratio", inv.AllocationRatio));
                }
                SaveGeneration(w, providerUuid, generation);
            });
            provider.Inventories = copy;
            provider.Bump();
            return provider.Record;
        });
    }

    public IReadOnlyDictionary<string, Inventory> GetInventories(string providerUuid)
    {
        lock (_gate)
        {
            Refresh();
            return new Dictionary<string, Inventory>(Provider(providerUuid).Inventories, StringComparer.Ordinal);
        }
    }

    public void SetTraits(string providerUuid, long? expectedGeneration, IReadOnlyCollection<string> traits)
    {
        foreach (var trait in traits)
        {
            if (string.IsNullOrWhiteSpace(trait))
            {
                throw new BadRequestException("Trait names must not be empty.");
            }
        }
        Mutate(() =>
        {
            var provider = Provider(providerUuid);
            CheckProviderGeneration(provider, expectedGeneration);
            var set = traits.ToFrozenSet(StringComparer.Ordinal);
            var generation = provider.Record.Generation + 1;
            WriteThrough([providerUuid], w =>
            {
                w.Add("DELETE FROM traits WHERE rp = @u", ("@u", providerUuid));
                foreach (var trait in set)
                {
                    w.Add("INSERT INTO traits(rp, trait) VALUES (@u, @t)", ("@u", providerUuid), ("@t", trait));
                }
                SaveGeneration(w, providerUuid, generation);
            });
            provider.Traits = set;
            provider.Bump();
        });
    }

    public IReadOnlySet<string> GetTraits(string providerUuid)
    {
        lock (_gate)
        {
            Refresh();
            return Provider(providerUuid).Traits;
        }
    }

    public IReadOnlyDictionary<string, long> GetProviderUsages(string providerUuid)
    {
        lock (_gate)
        {
            Refresh();
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

    public IReadOnlyDictionary<string, long> GetUsages(string? projectId, string? userId)
    {
        lock (_gate)
        {
            Refresh();
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

    public ConsumerAllocations GetAllocations(string consumerUuid)
    {
        lock (_gate)
        {
            Refresh();
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

    public IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>> GetProviderAllocations(string providerUuid)
    {
        lock (_gate)
        {
            Refresh();
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

    public ConsumerAllocations PutAllocations(string consumerUuid, AllocationRequest request)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(consumerUuid);
        return Mutate(() =>
        {
            CheckConsumerGeneration(consumerUuid, request.ConsumerGeneration);
            var plan = Plan([new ConsumerWrite(consumerUuid, request.Allocations, request.ProjectId, request.UserId)], checkCapacity: true);
            Commit(plan);
            return GetAllocations(consumerUuid);
        });
    }

    public bool DeleteAllocations(string consumerUuid)
    {
        return Mutate(() =>
        {
            if (!_consumers.TryGetValue(consumerUuid, out var consumer))
            {
                return false;
            }
            Commit(Plan([new ConsumerWrite(consumerUuid, [], consumer.ProjectId, consumer.UserId)], checkCapacity: false));
            return true;
        });
    }

    public void PostAllocations(IReadOnlyDictionary<string, AllocationRequest> requests)
    {
        Mutate(() =>
        {
            var writes = new List<ConsumerWrite>(requests.Count);
            foreach (var (consumerUuid, request) in requests)
            {
                ArgumentException.ThrowIfNullOrWhiteSpace(consumerUuid);
                CheckConsumerGeneration(consumerUuid, request.ConsumerGeneration);
                writes.Add(new ConsumerWrite(consumerUuid, request.Allocations, request.ProjectId, request.UserId));
            }
            Commit(Plan(writes, checkCapacity: true));
        });
    }

    public bool MoveAllocations(string sourceConsumer, string targetConsumer)
    {
        if (sourceConsumer == targetConsumer)
        {
            throw new BadRequestException("Cannot move allocations of a consumer to itself.");
        }
        return Mutate(() =>
        {
            if (!_consumers.TryGetValue(sourceConsumer, out var source))
            {
                return false;
            }
            // As Nova's move_allocations: both consumers are written with the source's project and user.
            Commit(Plan(
                [
                    new ConsumerWrite(sourceConsumer, [], source.ProjectId, source.UserId),
                    new ConsumerWrite(targetConsumer, source.Allocations, source.ProjectId, source.UserId),
                ],
                checkCapacity: true));
            return true;
        });
    }

    public void RemoveProviderFromAllocation(string consumerUuid, string providerUuid)
    {
        Mutate(() =>
        {
            if (!_consumers.TryGetValue(consumerUuid, out var consumer) || !consumer.Allocations.ContainsKey(providerUuid))
            {
                return;
            }
            var remaining = new Dictionary<string, Dictionary<string, long>>(consumer.Allocations, StringComparer.Ordinal);
            remaining.Remove(providerUuid);
            Commit(Plan([new ConsumerWrite(consumerUuid, remaining, consumer.ProjectId, consumer.UserId)], checkCapacity: false));
        });
    }

    public AllocationCandidates GetAllocationCandidates(
        IReadOnlyDictionary<string, long> resources,
        IReadOnlyCollection<string>? requiredTraits = null,
        IReadOnlyCollection<string>? forbiddenTraits = null,
        string? inTree = null,
        int limit = 1000)
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

        List<string> uuids;
        Dictionary<string, ProviderSummary> summaries;
        lock (_gate)
        {
            Refresh();
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

    private void Commit(WritePlan plan)
    {
        WriteThrough(plan.ProviderGenerations.Select(g => g.Rp), w => Persist(w, plan));
        Apply(plan);
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

    /// <summary>
    /// Runs a write under the lock against a fresh cache; when the database shows the cache was stale, reloads
    /// and runs it again, so validation (capacity, generations) always happens against what is committed.
    /// </summary>
    private T Mutate<T>(Func<T> write)
    {
        lock (_gate)
        {
            for (var attempt = 1; ; attempt++)
            {
                // A conflict was committed after the last look, so the log has it; the providers of the write are
                // compared as well, and after a few rounds every provider (a row changed by hand logs nothing).
                Refresh(also: attempt > 1 ? _writing : null, whole: attempt >= 5);
                try
                {
                    return write();
                }
                catch (StaleCacheException) when (attempt < MaxAttempts)
                {
                    // Another replica wrote first: reload and validate again.
                }
                catch (StaleCacheException)
                {
                    // Placement's ConcurrentUpdateDetected.
                    throw new PlacementConflictException("Another thread concurrently updated the data. Please retry your update");
                }
            }
        }
    }

    private void Mutate(Action write) =>
        Mutate(() =>
        {
            write();
            return 0;
        });

    /// <summary>
    /// Writes in one transaction; on a shared database the same transaction logs the providers the write changed, under
    /// its transaction id, so other replicas reload only those (and no row is shared by writers of different providers).
    /// </summary>
    private void WriteThrough(IEnumerable<string> providers, Action<WriteStatements> build)
    {
        var write = new WriteStatements();
        build(write);
        if (_database.IsShared)
        {
            var changed = providers.Distinct(StringComparer.Ordinal).ToArray();
            _writing = changed;
            write.Add("INSERT INTO placement_log(txid, rp, logged_at) " +
                "SELECT pg_current_xact_id()::text::bigint, rp, extract(epoch from now())::bigint FROM unnest(@rps) AS rp",
                ("@rps", changed));
            if (++_writes % LogPurgeEvery == 0)
            {
                write.Add("DELETE FROM placement_log WHERE logged_at < extract(epoch from now())::bigint - @kept",
                    ("@kept", (long)s_logKept.TotalSeconds));
            }
        }
        _database.Write(write.Run);
    }

    /// <summary>The oldest transaction id still running as of the statement's (or REPEATABLE READ transaction's) snapshot.</summary>
    private static long ReadWatermark(DbConnection connection, DbTransaction? transaction)
    {
        using var read = FerryDatabase.Command(connection, transaction, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint");
        return Convert.ToInt64(read.ExecuteScalar());
    }

    /// <summary>
    /// On a shared database, brings the cache up to what is committed: reads (one round trip) the providers logged by
    /// transactions at or after the watermark with their committed generation and name, and reloads those the cache
    /// has otherwise, with every consumer that has (or had) allocations on them; <paramref name="also"/> are compared
    /// too, and <paramref name="whole"/> (or a cache idle longer than the log keeps) compares every provider.
    /// </summary>
    private void Refresh(IReadOnlyCollection<string>? also = null, bool whole = false)
    {
        if (!_database.IsShared)
        {
            return;
        }
        var looked = System.Diagnostics.Stopwatch.GetTimestamp();
        if (whole || System.Diagnostics.Stopwatch.GetElapsedTime(_lastLook, looked) > s_logKept / 2)
        {
            var watermark = _database.Snapshot((c, t) =>
            {
                var w = ReadWatermark(c, t);
                Reconcile(c, t, null);
                return w;
            });
            _watermark = Math.Max(_watermark, watermark);
            _lastLook = looked;
            return;
        }
        var (next, logged) = _database.Read(c =>
        {
            using var read = FerryDatabase.Command(c, null,
                "SELECT w.xmin, l.rp, p.name, p.generation " +
                "FROM (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin) w " +
                "LEFT JOIN (SELECT DISTINCT rp FROM placement_log WHERE txid >= @w) l ON true " +
                "LEFT JOIN resource_providers p ON p.uuid = l.rp",
                ("@w", _watermark));
            var rows = Rows.ReadAll(read, r => (
                Xmin: r.GetInt64(0),
                Rp: r.IsDBNull(1) ? null : r.GetString(1),
                Name: r.IsDBNull(2) ? null : r.GetString(2),
                Generation: r.IsDBNull(3) ? (long?)null : r.GetInt64(3)));
            return (rows[0].Xmin, rows);
        });
        var stale = new HashSet<string>(also ?? [], StringComparer.Ordinal);
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
        if (stale.Count > 0)
        {
            _database.Snapshot((c, t) => Reconcile(c, t, [.. stale]));
        }
        _watermark = Math.Max(_watermark, next);
        _lastLook = looked;
    }

    /// <param name="candidates">Only these providers are compared; null for all.</param>
    private int Reconcile(DbConnection connection, DbTransaction transaction, string[]? candidates)
    {
        var committed = new Dictionary<string, (string Name, long Generation)>(StringComparer.Ordinal);
        if (candidates is null)
        {
            ReadMany(connection, transaction, [], [],
                ("SELECT uuid, name, generation FROM resource_providers", r => committed[r.GetString(0)] = (r.GetString(1), r.GetInt64(2))));
        }
        foreach (var rps in (candidates ?? []).Chunk(100))
        {
            ReadMany(connection, transaction, rps, [],
                ("SELECT uuid, name, generation FROM resource_providers WHERE uuid = ANY(@rps)", r => committed[r.GetString(0)] = (r.GetString(1), r.GetInt64(2))));
        }
        var changed = new List<string>();
        foreach (var (uuid, (name, generation)) in committed)
        {
            if (!_providers.TryGetValue(uuid, out var cached) || cached.Record.Generation != generation || cached.Record.Name != name)
            {
                changed.Add(uuid);
            }
        }
        var removed = (candidates ?? (IEnumerable<string>)_providers.Keys).Where(uuid => _providers.ContainsKey(uuid) && !committed.ContainsKey(uuid)).ToList();
        if (changed.Count == 0 && removed.Count == 0)
        {
            return 0;
        }

        // Consumers to reload: those the cache has on the providers, and those the database has there now.
        var consumers = new HashSet<string>(StringComparer.Ordinal);
        foreach (var uuid in changed.Concat(removed))
        {
            if (_providers.TryGetValue(uuid, out var cached))
            {
                consumers.UnionWith(cached.Consumers.Keys);
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
        // Arrays of at most 100 uuids per query: a command larger than Npgsql's 8 KB write buffer is written from a
        // thread-pool thread when run synchronously, which a starved pool never runs (a scheduler hung on it).
        foreach (var rps in changedArray.Chunk(100))
        {
            ReadMany(connection, transaction, rps, [],
                (InventoriesSql + " WHERE rp = ANY(@rps)", r => inventories.Add(ReadInventory(r))),
                (TraitsSql + " WHERE rp = ANY(@rps)", r => traits.Add((r.GetString(0), r.GetString(1)))),
                (ConsumersSql + " WHERE uuid IN " + OnChanged, r => consumerRows[r.GetString(0)] = (r.GetString(1), r.GetString(2), r.GetInt64(3))),
                (AllocationsSql + " WHERE consumer IN " + OnChanged, r => allocationRows.Add((r.GetString(0), r.GetString(1), r.GetString(2), r.GetInt64(3)))));
        }
        foreach (var cs in known.Chunk(100))
        {
            ReadMany(connection, transaction, [], cs,
                (ConsumersSql + " WHERE uuid = ANY(@cs)", r => consumerRows[r.GetString(0)] = (r.GetString(1), r.GetString(2), r.GetInt64(3))),
                (AllocationsSql + " WHERE consumer = ANY(@cs)", r => allocationRows.Add((r.GetString(0), r.GetString(1), r.GetString(2), r.GetInt64(3)))));
        }
        foreach (var (consumer, _, _, _) in allocationRows)
        {
            consumers.Add(consumer);
        }
        foreach (var uuid in consumers)
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
        foreach (var uuid in removed)
        {
            _providers.Remove(uuid);
        }
        foreach (var uuid in changed)
        {
            var (name, generation) = committed[uuid];
            if (!_providers.TryGetValue(uuid, out var provider))
            {
                _providers[uuid] = provider = new ProviderState(new ResourceProvider(uuid, name, generation));
            }
            provider.Record = new ResourceProvider(uuid, name, generation);
            provider.Inventories = new Dictionary<string, Inventory>(StringComparer.Ordinal);
            provider.Traits = s_noTraits;
            provider.Summary = null;
        }
        SetInventoriesAndTraits(inventories, traits);
        AddConsumers(consumerRows, allocationRows);
        return 0;
    }

    private const string InventoriesSql = "SELECT rp, rc, total, reserved, min_unit, max_unit, step_size, allocation_ratio FROM inventories";
    private const string TraitsSql = "SELECT rp, trait FROM traits";
    private const string ConsumersSql = "SELECT uuid, project_id, user_id, generation FROM consumers";
    private const string AllocationsSql = "SELECT consumer, rp, rc, used FROM allocations";

    private int Load(DbConnection connection, DbTransaction transaction)
    {
        var inventories = new List<(string Rp, string Rc, Inventory Inventory)>();
        var traits = new List<(string Rp, string Trait)>();
        var consumerRows = new Dictionary<string, (string Project, string User, long Generation)>(StringComparer.Ordinal);
        var allocationRows = new List<(string Consumer, string Rp, string Rc, long Used)>();
        ReadMany(connection, transaction, [], [],
            ("SELECT uuid, name, generation FROM resource_providers",
                r => _providers[r.GetString(0)] = new ProviderState(new ResourceProvider(r.GetString(0), r.GetString(1), r.GetInt64(2)))),
            (InventoriesSql, r => inventories.Add(ReadInventory(r))),
            (TraitsSql, r => traits.Add((r.GetString(0), r.GetString(1)))),
            (ConsumersSql, r => consumerRows[r.GetString(0)] = (r.GetString(1), r.GetString(2), r.GetInt64(3))),
            (AllocationsSql, r => allocationRows.Add((r.GetString(0), r.GetString(1), r.GetString(2), r.GetInt64(3)))));
        SetInventoriesAndTraits(inventories, traits);
        AddConsumers(consumerRows, allocationRows);
        return 0;
    }

    /// <summary>
    /// Runs each query (parameters <c>@rps</c> and <c>@cs</c>, when it names them) and hands every row to its reader.
    /// </summary>
    private static void ReadMany(DbConnection connection, DbTransaction transaction, string[] providers, string[] consumers,
        params (string Sql, Action<DbDataReader> Read)[] queries)
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
            using var command = FerryDatabase.Command(connection, transaction, sql, Parameters(sql));
            using var reader = command.ExecuteReader();
            while (reader.Read())
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
    /// conditional on a generation: when it changed no row, the cache was stale and the transaction rolls back.
    /// </summary>
    private sealed class WriteStatements
    {
        private readonly List<(string Sql, (string Name, object? Value)[] Parameters, bool MustHit)> _statements = [];

        public void Add(string sql, params (string Name, object? Value)[] parameters) => _statements.Add((sql, parameters, false));

        public void MustHit(string sql, params (string Name, object? Value)[] parameters) => _statements.Add((sql, parameters, true));

        public void Run(DbConnection connection, DbTransaction transaction)
        {
            foreach (var (sql, parameters, mustHit) in _statements)
            {
                using var command = FerryDatabase.Command(connection, transaction, sql, parameters);
                if (command.ExecuteNonQuery() == 0 && mustHit)
                {
                    throw new StaleCacheException();
                }
            }
        }
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
