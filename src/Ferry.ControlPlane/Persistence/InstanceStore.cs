using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Rpc.Conductor;
using System.Data.Common;

namespace Ferry.ControlPlane.Persistence;

/// <summary>Instances, with compare-and-swap updates on task_state (Nova's expected_task_state).</summary>
public sealed class InstanceStore(FerryDatabase db, TimeProvider time)
{
    /// <summary>Inserts a new instance; its integer <c>Id</c> comes from the database's identity column.</summary>
    public Instance Create(Func<int, Instance> build) => db.Write((c, t) => Insert(c, t, build));

    /// <summary>Inserts <paramref name="count"/> new instances in one transaction (a seeded world of 100,000; one commit each was most of its time).</summary>
    public List<Instance> CreateMany(int count, Func<int, int, Instance> build) =>
        db.Write((c, t) =>
        {
            var created = new List<Instance>(count);
            for (var n = 0; n < count; n++)
            {
                created.Add(Insert(c, t, id => build(n, id)));
            }
            return created;
        });

    private static Instance Insert(DbConnection c, DbTransaction t, Func<int, Instance> build)
    {
        var id = Rows.ReserveId(c, t,
            "INSERT INTO instances(uuid, project_id, vm_state, deleted, created_at, data) VALUES (@u, '', '', 1, '', '{}') RETURNING id", ("@u", Rows.Placeholder()));
        var instance = build(id);
        using var fill = FerryDatabase.Command(c, t,
            "UPDATE instances SET uuid = @u, project_id = @p, host = @h, vm_state = @v, task_state = @ts, deleted = 0, created_at = @c, data = @d WHERE id = @id",
            ("@id", id), ("@u", instance.Uuid), ("@p", instance.ProjectId), ("@h", instance.Host), ("@v", instance.VmState.ToNova()),
            ("@ts", instance.TaskState.ToNova()), ("@c", Rows.Time(instance.CreatedAt)), ("@d", Rows.Json(instance, PersistenceJsonContext.Default.Instance)));
        fill.ExecuteNonQuery();
        return instance;
    }

    public Instance? Find(string uuid, bool includeDeleted = false) =>
        db.Read(c => Find(c, null, uuid, includeDeleted, ""));

    public Instance Get(string uuid) => Find(uuid) ?? throw new InstanceNotFoundException(uuid);

    /// <summary>Instances not deleted, newest first, optionally of one project and/or host.</summary>
    public List<Instance> List(string? projectId = null, string? host = null, bool includeDeleted = false) =>
        db.Read(c =>
        {
            using var command = FerryDatabase.Command(c, null,
                "SELECT data FROM instances WHERE (CAST(@p AS TEXT) IS NULL OR project_id = @p) AND (CAST(@h AS TEXT) IS NULL OR host = @h) AND (@all = 1 OR deleted = 0) ORDER BY created_at DESC, id DESC",
                ("@p", projectId), ("@h", host), ("@all", includeDeleted ? 1 : 0));
            return Rows.ReadAll(command, r => Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.Instance));
        });

    /// <summary>
    /// A host's live instances through ix_instances_host (host, deleted): what its agent reads at start-up and at every
    /// power-state sync. <see cref="List"/>'s optional filters (<c>@h IS NULL OR host = @h</c>) make SQLite scan the
    /// whole table instead, which 10,000 agents each doing it made a long hold of the database lock.
    /// </summary>
    internal const string ByHostSql = "SELECT data FROM instances WHERE host = @h AND deleted = 0 ORDER BY created_at DESC, id DESC";

    /// <summary>Instances not deleted on <paramref name="host"/>, newest first, through an index.</summary>
    public List<Instance> ListByHost(string host) =>
        db.Read(c =>
        {
            using var command = FerryDatabase.Command(c, null, ByHostSql, ("@h", host));
            return Rows.ReadAll(command, r => Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.Instance));
        });

    internal const string BuildingCreatedBeforeSql =
        "SELECT data FROM instances WHERE vm_state = 'building' AND deleted = 0 AND created_at < @before ORDER BY created_at, id";

    /// <summary>Live instances still BUILD that were created before <paramref name="before"/>, oldest first (through an index).</summary>
    public List<Instance> ListBuildingCreatedBefore(DateTimeOffset before) =>
        db.Read(c =>
        {
            using var command = FerryDatabase.Command(c, null, BuildingCreatedBeforeSql, ("@before", Rows.Time(before)));
            return Rows.ReadAll(command, r => Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.Instance));
        });

    /// <summary>
    /// Applies <paramref name="update"/> atomically. When the update names expected task states (or
    /// an expected host), the row must match them or nothing changes and
    /// <see cref="UnexpectedTaskStateException"/> is thrown: that is how one of two concurrent moves loses.
    /// The row is read for update, so across processes the second writer waits and then checks the first's result.
    /// </summary>
    public Instance Update(InstanceUpdateRequest update) =>
        db.Write((c, t) =>
        {
            var current = Find(c, t, update.Uuid, includeDeleted: false, db.Dialect.ForUpdate) ?? throw new InstanceNotFoundException(update.Uuid);
            if (update.ExpectedTaskStates is { } expected && !expected.Contains(current.TaskState))
            {
                throw new UnexpectedTaskStateException(
                    $"Conflict updating instance {update.Uuid}. Expected: {{'task_state': [{string.Join(", ", expected.Select(s => s.ToNova() ?? "None"))}]}}. Actual: {{'task_state': {current.TaskState.ToNova() ?? "None"}}}");
            }
            if (update.ExpectedHost is { } expectedHost && current.Host != expectedHost)
            {
                throw new UnexpectedTaskStateException($"Conflict updating instance {update.Uuid}: host is {current.Host}, expected {expectedHost}");
            }
            var next = Apply(current, update, time.GetUtcNow());
            using var write = FerryDatabase.Command(c, t,
                "UPDATE instances SET host = @h, vm_state = @v, task_state = @ts, deleted = @del, data = @d WHERE uuid = @u",
                ("@u", next.Uuid), ("@h", next.Host), ("@v", next.VmState.ToNova()), ("@ts", next.TaskState.ToNova()),
                ("@del", update.Deleted ? 1 : 0), ("@d", Rows.Json(next, PersistenceJsonContext.Default.Instance)));
            write.ExecuteNonQuery();
            return next;
        });

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
        Metadata = u.Metadata ?? i.Metadata,
        TerminatedAt = u.Deleted ? now : i.TerminatedAt,
        UpdatedAt = now,
    };

    private static Instance? Find(DbConnection c, DbTransaction? t, string uuid, bool includeDeleted, string forUpdate)
    {
        using var command = FerryDatabase.Command(c, t, "SELECT data FROM instances WHERE uuid = @u AND (@all = 1 OR deleted = 0)" + forUpdate,
            ("@u", uuid), ("@all", includeDeleted ? 1 : 0));
        return command.ExecuteScalar() is string json ? Rows.FromJson(json, PersistenceJsonContext.Default.Instance) : null;
    }
}
