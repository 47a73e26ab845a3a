using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Rpc.Conductor;
using System.Data.Common;

namespace Ferry.ControlPlane.Persistence;

/// <summary>Instances, with compare-and-swap updates on task_state (Nova's expected_task_state).</summary>
public sealed class InstanceStore(FerryDatabase db, TimeProvider time)
{
    /// <summary>Inserts a new instance; its integer <c>Id</c> comes from the database's identity column.</summary>
    public Task<Instance> CreateAsync(Func<int, Instance> build, CancellationToken cancellationToken) =>
        db.WriteAsync((c, t, ct) => InsertAsync(c, t, build, ct), cancellationToken);

    /// <summary>Inserts <paramref name="count"/> new instances in one transaction (a seeded world of 100,000; one commit each was most of its time).</summary>
    public Task<List<Instance>> CreateManyAsync(int count, Func<int, int, Instance> build, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            var created = new List<Instance>(count);
            for (var n = 0; n < count; n++)
            {
                var index = n;
                created.Add(await InsertAsync(c, t, id => build(index, id), ct));
            }
            return created;
        }, cancellationToken);

    private static async Task<Instance> InsertAsync(DbConnection c, DbTransaction t, Func<int, Instance> build, CancellationToken cancellationToken)
    {
        var id = await Rows.ReserveIdAsync(c, t,
            "INSERT INTO instances(uuid, project_id, vm_state, deleted, created_at, data) VALUES (@u, '', '', 1, '', '{}') RETURNING id", cancellationToken, ("@u", Rows.Placeholder()));
        var instance = build(id);
        await using var fill = FerryDatabase.Command(c, t,
            "UPDATE instances SET uuid = @u, project_id = @p, user_id = @usr, host = @h, vm_state = @v, task_state = @ts, deleted = 0, created_at = @c, data = @d, "
            + "vcpus = @vcpus, memory_mb = @ram, disk_gb = @disk WHERE id = @id",
            ("@id", id), ("@u", instance.Uuid), ("@p", instance.ProjectId), ("@usr", instance.UserId), ("@h", instance.Host), ("@v", instance.VmState.ToNova()),
            ("@ts", instance.TaskState.ToNova()), ("@c", Rows.Time(instance.CreatedAt)), ("@d", Rows.Json(instance, PersistenceJsonContext.Default.Instance)),
            ("@vcpus", instance.Flavor.Vcpus), ("@ram", instance.Flavor.MemoryMb), ("@disk", DiskUsed(instance)));
        await fill.ExecuteNonQueryAsync(cancellationToken);
        return instance;
    }

    public Task<Instance?> FindAsync(string uuid, CancellationToken cancellationToken, bool includeDeleted = false) =>
        db.ReadAsync((c, ct) => FindAsync(c, null, uuid, includeDeleted, "", ct), cancellationToken);

    public async Task<Instance> GetAsync(string uuid, CancellationToken cancellationToken) =>
        await FindAsync(uuid, cancellationToken) ?? throw new InstanceNotFoundException(uuid);

    /// <summary>Instances not deleted, newest first, optionally of one project and/or host.</summary>
    public Task<List<Instance>> ListAsync(CancellationToken cancellationToken, string? projectId = null, string? host = null, bool includeDeleted = false) =>
        ListPageAsync(new InstanceListFilter { ProjectId = projectId, Host = host, IncludeDeleted = includeDeleted }, after: null, limit: null, cancellationToken);

    /// <summary>
    /// One page of the instances <paramref name="filter"/> selects in Nova's default order (created_at desc, id desc),
    /// starting after <paramref name="after"/> (keyset paging: the page costs the same wherever it starts), at most
    /// <paramref name="limit"/> rows (null: all). Only the given filters reach the SQL, so an index serves each shape.
    /// </summary>
    public Task<List<Instance>> ListPageAsync(InstanceListFilter filter, InstancePosition? after, int? limit, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            var (sql, parameters) = PageSql(filter, after, limit);
            await using var command = FerryDatabase.Command(c, null, sql, [.. parameters]);
            return await Rows.ReadAllAsync(command, r => Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.Instance), ct);
        }, cancellationToken);

    /// <summary>
    /// A host's live instances through ix_instances_host (host, deleted): what its agent reads at start-up and at every
    /// power-state sync. <see cref="ListAsync"/>'s optional filters (<c>@h IS NULL OR host = @h</c>) make SQLite scan the
    /// whole table instead, which 10,000 agents each doing it made a long hold of the database lock.
    /// </summary>
    internal const string ByHostSql = "SELECT data FROM instances WHERE host = @h AND deleted = 0 ORDER BY created_at DESC, id DESC";

    /// <summary>Instances not deleted on <paramref name="host"/>, newest first, through an index.</summary>
    public Task<List<Instance>> ListByHostAsync(string host, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null, ByHostSql, ("@h", host));
            return await Rows.ReadAllAsync(command, r => Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.Instance), ct);
        }, cancellationToken);

    /// <summary>The SQL of <see cref="ListPageAsync"/> (the query-plan tests explain it).</summary>
    internal static (string Sql, List<(string Name, object? Value)> Parameters) PageSql(InstanceListFilter filter, InstancePosition? after, int? limit)
    {
        var where = new List<string>();
        var parameters = new List<(string Name, object? Value)>();
        if (!filter.IncludeDeleted)
        {
            where.Add("deleted = 0");
        }
        if (filter.ProjectId is { } project)
        {
            where.Add("project_id = @p");
            parameters.Add(("@p", project));
        }
        if (filter.Host is { } host)
        {
            where.Add("host = @h");
            parameters.Add(("@h", host));
        }
        if (filter.VmStates is { } states)
        {
            var names = states.Select((state, i) => $"@vm{i}").ToList();
            where.Add(names.Count switch
            {
                0 => "1 = 0",
                1 => "vm_state = @vm0", // an equality, so the (vm_state, created_at, id) index also gives the order
                _ => $"vm_state IN ({string.Join(", ", names)})",
            });
            parameters.AddRange(states.Select((state, i) => ($"@vm{i}", (object?)state)));
        }
        if (after is { } position)
        {
            // A plain range on created_at first, so that both engines seek the (…, created_at, id) index to the marker
            // (an OR or a row value alone would make one of them scan from the newest row); the id breaks ties.
            where.Add("created_at <= @ac AND (created_at < @ac OR id < @aid)");
            parameters.Add(("@ac", position.CreatedAt));
            parameters.Add(("@aid", position.Id));
        }
        var sql = "SELECT data FROM instances" + (where.Count > 0 ? " WHERE " + string.Join(" AND ", where) : "") + " ORDER BY created_at DESC, id DESC";
        if (limit is { } n)
        {
            sql += " LIMIT @limit";
            parameters.Add(("@limit", n));
        }
        return (sql, parameters);
    }

    /// <summary>Where a page that starts after <paramref name="uuid"/> starts (deleted rows too, as Nova finds a marker), or null when there is no such instance.</summary>
    public Task<InstancePosition?> FindPositionAsync(string uuid, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null, "SELECT created_at, id FROM instances WHERE uuid = @u", ("@u", uuid));
            return await Rows.ReadFirstAsync(command, r => new InstancePosition(r.GetString(0), Rows.Int(r, 1)), ct);
        }, cancellationToken);

    internal const string ProjectUsageSql =
        "SELECT COUNT(*), SUM(vcpus), SUM(memory_mb) FROM instances WHERE deleted = 0 AND project_id = @p AND (@all = 1 OR user_id = @usr)";

    /// <summary>What a project's live instances (or one user's of them) count against quota: instances, cores and RAM.</summary>
    public Task<ProjectUsage> UsageOfProjectAsync(string projectId, string? userId, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null, ProjectUsageSql, ("@p", projectId), ("@all", userId is null ? 1 : 0), ("@usr", userId ?? ""));
            return (await Rows.ReadFirstAsync(command, r => new ProjectUsage(Long(r, 0), Long(r, 1), Long(r, 2)), ct))!;
        }, cancellationToken);

    internal const string UsageByHostSql =
        "SELECT host, SUM(vcpus), SUM(memory_mb), SUM(disk_gb), SUM(CASE WHEN task_state IS NULL THEN 0 ELSE 1 END), COUNT(*) "
        + "FROM instances WHERE deleted = 0 AND host IS NOT NULL GROUP BY host";

    internal const string UsageOfHostsSql =
        "SELECT host, SUM(vcpus), SUM(memory_mb), SUM(disk_gb), SUM(CASE WHEN task_state IS NULL THEN 0 ELSE 1 END), COUNT(*) "
        + "FROM instances WHERE deleted = 0 AND host IN ({0}) GROUP BY host";

    /// <summary>
    /// What the live instances on each host use (an aggregate over the covering usage index, no JSON read), by host:
    /// of every host, or of <paramref name="hosts"/> only (a page: index seeks, one query per 500 hosts).
    /// </summary>
    public Task<Dictionary<string, HostUsage>> UsageByHostAsync(IReadOnlyCollection<string>? hosts, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            var usage = new Dictionary<string, HostUsage>(StringComparer.Ordinal);
            if (hosts is null)
            {
                await using var all = FerryDatabase.Command(c, null, UsageByHostSql);
                await ReadUsageAsync(all, usage, ct);
                return usage;
            }
            foreach (var chunk in hosts.Distinct(StringComparer.Ordinal).Chunk(500))
            {
                var names = chunk.Select((_, i) => $"@h{i}").ToArray();
                await using var some = FerryDatabase.Command(c, null, string.Format(System.Globalization.CultureInfo.InvariantCulture, UsageOfHostsSql, string.Join(", ", names)),
                    [.. chunk.Select((h, i) => ($"@h{i}", (object?)h))]);
                await ReadUsageAsync(some, usage, ct);
            }
            return usage;
        }, cancellationToken);

    private static async Task ReadUsageAsync(DbCommand command, Dictionary<string, HostUsage> usage, CancellationToken cancellationToken)
    {
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            usage[reader.GetString(0)] = new HostUsage(Long(reader, 1), Long(reader, 2), Long(reader, 3), Long(reader, 4), Long(reader, 5));
        }
    }

    /// <summary>The live instances on each of <paramref name="hosts"/> as (id, uuid), newest first, by host.</summary>
    public Task<Dictionary<string, List<(int Id, string Uuid)>>> ListIdsByHostAsync(IReadOnlyCollection<string> hosts, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            var result = new Dictionary<string, List<(int Id, string Uuid)>>(StringComparer.Ordinal);
            foreach (var chunk in hosts.Distinct(StringComparer.Ordinal).Chunk(500))
            {
                var names = chunk.Select((_, i) => $"@h{i}").ToArray();
                await using var command = FerryDatabase.Command(c, null,
                    $"SELECT host, id, uuid FROM instances WHERE deleted = 0 AND host IN ({string.Join(", ", names)}) ORDER BY created_at DESC, id DESC",
                    [.. chunk.Select((h, i) => ($"@h{i}", (object?)h))]);
                await using var reader = await command.ExecuteReaderAsync(ct);
                while (await reader.ReadAsync(ct))
                {
                    var host = reader.GetString(0);
                    if (!result.TryGetValue(host, out var list))
                    {
                        result[host] = list = [];
                    }
                    list.Add((Rows.Int(reader, 1), reader.GetString(2)));
                }
            }
            return result;
        }, cancellationToken);

    /// <summary>
    /// The hosts of the live, placed instances among <paramref name="uuids"/>, by uuid (one query per 500, through the uuid
    /// key); unknown, deleted and unplaced instances are left out.
    /// </summary>
    public Task<Dictionary<string, string>> HostsOfAsync(IReadOnlyCollection<string> uuids, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            var hosts = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var chunk in uuids.Distinct(StringComparer.Ordinal).Chunk(500))
            {
                var names = chunk.Select((_, i) => $"@u{i}").ToArray();
                await using var command = FerryDatabase.Command(c, null,
                    $"SELECT uuid, host FROM instances WHERE deleted = 0 AND host IS NOT NULL AND uuid IN ({string.Join(", ", names)})",
                    [.. chunk.Select((u, i) => ($"@u{i}", (object?)u))]);
                foreach (var (uuid, host) in await Rows.ReadAllAsync(command, r => (r.GetString(0), r.GetString(1)), ct))
                {
                    hosts[uuid] = host;
                }
            }
            return hosts;
        }, cancellationToken);

    /// <summary>The scheduler hints whose values are instance uuids (Nova's SameHostFilter and DifferentHostFilter).</summary>
    private static readonly string[] s_instanceHints = ["same_host", "different_host"];

    /// <summary>
    /// For each hint that names instances (<c>same_host</c>, <c>different_host</c>), the distinct hosts those live instances
    /// run on, in the hint's order: read before scheduling, so the scheduler's filters read no database. No hint, no read.
    /// </summary>
    public async Task<Dictionary<string, List<string>>> HostsOfHintedInstancesAsync(IReadOnlyDictionary<string, List<string>> hints,
        CancellationToken cancellationToken)
    {
        var named = s_instanceHints.Where(h => hints.TryGetValue(h, out var uuids) && uuids.Count > 0).ToList();
        if (named.Count == 0)
        {
            return [];
        }
        var hosts = await HostsOfAsync([.. named.SelectMany(h => hints[h])], cancellationToken);
        return named.ToDictionary(h => h, h => hints[h].Select(u => hosts.GetValueOrDefault(u)).OfType<string>().Distinct(StringComparer.Ordinal).ToList(),
            StringComparer.Ordinal);
    }

    private static long Long(DbDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? 0 : Convert.ToInt64(reader.GetValue(ordinal), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The local disk an instance uses: its flavor's, without the root disk when it boots from a volume.</summary>
    internal static int DiskUsed(Instance instance) => instance.Flavor.LocalDiskGb(instance.VolumeBacked);

    internal const string InTaskStatesSql = "SELECT data FROM instances WHERE deleted = 0 AND task_state IS NOT NULL AND task_state IN ({0})";

    /// <summary>Live instances in one of <paramref name="states"/> (through the task_state index: most servers have none).</summary>
    public Task<List<Instance>> ListInTaskStatesAsync(IEnumerable<TaskState> states, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            var names = states.Select(s => s.ToNova()).ToList();
            var sql = string.Format(System.Globalization.CultureInfo.InvariantCulture, InTaskStatesSql, string.Join(", ", names.Select((_, i) => $"@s{i}")));
            await using var command = FerryDatabase.Command(c, null, sql, [.. names.Select((n, i) => ($"@s{i}", (object?)n))]);
            return await Rows.ReadAllAsync(command, r => Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.Instance), ct);
        }, cancellationToken);

    internal const string BuildingCreatedBeforeSql =
        "SELECT data FROM instances WHERE vm_state = 'building' AND deleted = 0 AND created_at < @before ORDER BY created_at, id";

    /// <summary>Live instances still BUILD that were created before <paramref name="before"/>, oldest first (through an index).</summary>
    public Task<List<Instance>> ListBuildingCreatedBeforeAsync(DateTimeOffset before, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null, BuildingCreatedBeforeSql, ("@before", Rows.Time(before)));
            return await Rows.ReadAllAsync(command, r => Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.Instance), ct);
        }, cancellationToken);

    /// <summary>
    /// Applies <paramref name="update"/> atomically. When the update names expected task states (or
    /// an expected host), the row must match them or nothing changes and
    /// <see cref="UnexpectedTaskStateException"/> is thrown: that is how one of two concurrent moves loses.
    /// The row is read for update, so across processes the second writer waits and then checks the first's result.
    /// </summary>
    /// <remarks>A write: <paramref name="cancellationToken"/> only stops the wait to begin it.</remarks>
    public Task<Instance> UpdateAsync(InstanceUpdateRequest update, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            var current = await FindAsync(c, t, update.Uuid, includeDeleted: false, db.Dialect.ForUpdate, ct) ?? throw new InstanceNotFoundException(update.Uuid);
            if (update.ExpectedTaskStates is { } expected && !expected.Contains(current.TaskState))
            {
                throw new UnexpectedTaskStateException(
                    $"Conflict updating instance {update.Uuid}. Expected: {{'task_state': [{string.Join(", ", expected.Select(s => s.ToNova() ?? "None"))}]}}. Actual: {{'task_state': {current.TaskState.ToNova() ?? "None"}}}");
            }
            if (update.ExpectedHost is { } expectedHost && current.Host != expectedHost)
            {
                throw new UnexpectedTaskStateException($"Conflict updating instance {update.Uuid}: host is {current.Host}, expected {expectedHost}");
            }
            if (update.AddBlockDevice is { } added)
            {
                if (current.BlockDevices.Any(b => b.VolumeId == added.VolumeId))
                {
                    throw new BlockDeviceTakenException($"Invalid volume: volume {added.VolumeId} already attached", deviceTaken: false);
                }
                if (current.BlockDevices.Any(b => b.DeviceName == added.DeviceName))
                {
                    throw new BlockDeviceTakenException($"The supplied device path ({added.DeviceName}) is in use.", deviceTaken: true);
                }
            }
            var next = Apply(current, update, time.GetUtcNow());
            await using var write = FerryDatabase.Command(c, t,
                "UPDATE instances SET host = @h, vm_state = @v, task_state = @ts, deleted = @del, data = @d, vcpus = @vcpus, memory_mb = @ram, disk_gb = @disk WHERE uuid = @u",
                ("@u", next.Uuid), ("@h", next.Host), ("@v", next.VmState.ToNova()), ("@ts", next.TaskState.ToNova()),
                ("@del", update.Deleted ? 1 : 0), ("@d", Rows.Json(next, PersistenceJsonContext.Default.Instance)),
                ("@vcpus", next.Flavor.Vcpus), ("@ram", next.Flavor.MemoryMb), ("@disk", DiskUsed(next)));
            await write.ExecuteNonQueryAsync(ct);
            return next;
        }, cancellationToken);

    private static Instance Apply(Instance i, InstanceUpdateRequest u, DateTimeOffset now) => i with
    {
        VmState = u.Deleted ? VmState.Deleted : u.VmState ?? i.VmState,
        TaskState = u.SetTaskState ? u.TaskState : i.TaskState,
        PowerState = u.PowerState ?? i.PowerState,
        Host = u.ClearHost ? null : u.Host ?? i.Host,
        Node = u.ClearHost ? null : u.Node ?? i.Node,
        AvailabilityZone = u.AvailabilityZone ?? i.AvailabilityZone,
        Flavor = u.Flavor ?? i.Flavor,
        OldFlavor = u.SetOldFlavor ? u.OldFlavor : i.OldFlavor,
        NewFlavor = u.SetNewFlavor ? u.NewFlavor : i.NewFlavor,
        OldVmState = u.SetOldVmState ? u.OldVmState : i.OldVmState,
        Progress = u.Progress ?? i.Progress,
        LaunchedAt = u.LaunchedAt ?? i.LaunchedAt,
        ConfigDrive = u.ConfigDrive ?? i.ConfigDrive,
        Metadata = u.Metadata ?? i.Metadata,
        NetworkInfo = u.NetworkInfo ?? i.NetworkInfo,
        BlockDevices = BlockDevicesAfter(u.BlockDevices ?? i.BlockDevices, u),
        TerminatedAt = u.Deleted ? now : i.TerminatedAt,
        UpdatedAt = now,
    };

    private static List<BlockDeviceMapping> BlockDevicesAfter(List<BlockDeviceMapping> mappings, InstanceUpdateRequest u)
    {
        if (u.AddBlockDevice is { } added)
        {
            mappings = [.. mappings, added];
        }
        if (u.ReplaceBlockDevice is { } replaced)
        {
            mappings = [.. mappings.Select(b => b.VolumeId == replaced.VolumeId ? replaced : b)];
        }
        if (u.RemoveBlockDevice is { } removed)
        {
            mappings = [.. mappings.Where(b => b.VolumeId != removed)];
        }
        return mappings;
    }

    private static async Task<Instance?> FindAsync(DbConnection c, DbTransaction? t, string uuid, bool includeDeleted, string forUpdate, CancellationToken cancellationToken)
    {
        await using var command = FerryDatabase.Command(c, t, "SELECT data FROM instances WHERE uuid = @u AND (@all = 1 OR deleted = 0)" + forUpdate,
            ("@u", uuid), ("@all", includeDeleted ? 1 : 0));
        return await command.ExecuteScalarAsync(cancellationToken) is string json ? Rows.FromJson(json, PersistenceJsonContext.Default.Instance) : null;
    }
}

/// <summary>What <see cref="InstanceStore.ListPageAsync"/> selects; a null filter selects everything.</summary>
public sealed record InstanceListFilter
{
    public string? ProjectId { get; init; }
    public string? Host { get; init; }
    /// <summary>Only these vm_states (Nova's names); empty selects nothing.</summary>
    public IReadOnlyCollection<string>? VmStates { get; init; }
    public bool IncludeDeleted { get; init; }
}

/// <summary>An instance's place in the default order (its created_at as stored, and its id): a page marker.</summary>
public sealed record InstancePosition(string CreatedAt, int Id)
{
    /// <summary>The position of an instance read from the store.</summary>
    public static InstancePosition Of(Instance instance) => new(Rows.Time(instance.CreatedAt), instance.Id);
}

/// <summary>The live instances on one host, summed: what the hypervisor views report as used.</summary>
public sealed record HostUsage(long Vcpus, long MemoryMb, long DiskGb, long Busy, long Count);

/// <summary>A project's (or user's) live instances as quota counts them.</summary>
public sealed record ProjectUsage(long Instances, long Cores, long RamMb);
