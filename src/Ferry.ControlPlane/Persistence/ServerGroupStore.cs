using System.Data.Common;
using Ferry.Core.Errors;

namespace Ferry.ControlPlane.Persistence;

/// <summary>Server groups (affinity / anti-affinity policies) and their members.</summary>
public sealed class ServerGroupStore(FerryDatabase db)
{
    private const string Columns = "uuid, name, policy, max_server_per_host, project_id, user_id, members";

    /// <remarks>A write: <paramref name="cancellationToken"/> only stops the wait to begin it.</remarks>
    public Task<ServerGroupRow> CreateAsync(string name, string policy, int? maxServerPerHost, string projectId, string userId, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            var row = new ServerGroupRow(Guid.NewGuid().ToString(), name, policy, maxServerPerHost, projectId, userId, []);
            await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t,
                "INSERT INTO server_groups(uuid, name, policy, max_server_per_host, project_id, user_id, members) VALUES (@u, @n, @p, @m, @pr, @us, '[]')",
                ("@u", row.Uuid), ("@n", name), ("@p", policy), ("@m", maxServerPerHost), ("@pr", projectId), ("@us", userId)), ct);
            return row;
        }, cancellationToken);

    /// <summary>The group with this uuid (its unique key), or null.</summary>
    public Task<ServerGroupRow?> FindAsync(string uuid, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null, $"SELECT {Columns} FROM server_groups WHERE uuid = @u", ("@u", uuid));
            return await Rows.ReadFirstAsync(command, Map, ct);
        }, cancellationToken);

    /// <summary>The groups of a project (every group when <paramref name="projectId"/> is null), oldest first.</summary>
    public Task<List<ServerGroupRow>> ListAsync(string? projectId, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null,
                $"SELECT {Columns} FROM server_groups WHERE (CAST(@p AS TEXT) IS NULL OR project_id = @p) ORDER BY id",
                ("@p", projectId));
            return await Rows.ReadAllAsync(command, Map, ct);
        }, cancellationToken);

    /// <remarks>A write: <paramref name="cancellationToken"/> only stops the wait to begin it.</remarks>
    public Task AddMemberAsync(string groupUuid, string instanceUuid, CancellationToken cancellationToken) =>
        ChangeMembersAsync(groupUuid, m => m.Add(instanceUuid), cancellationToken);

    /// <remarks>A write: <paramref name="cancellationToken"/> only stops the wait to begin it.</remarks>
    public Task RemoveMemberAsync(string groupUuid, string instanceUuid, CancellationToken cancellationToken) =>
        ChangeMembersAsync(groupUuid, m => m.Remove(instanceUuid), cancellationToken);

    /// <remarks>A write: <paramref name="cancellationToken"/> only stops the wait to begin it.</remarks>
    public Task DeleteAsync(string uuid, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            if (await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "DELETE FROM server_groups WHERE uuid = @u", ("@u", uuid)), ct) == 0)
            {
                throw new NotFoundException($"Instance group {uuid} could not be found.");
            }
        }, cancellationToken);

    private Task ChangeMembersAsync(string groupUuid, Action<List<string>> change, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            if (await FerryDatabase.ScalarAsync(FerryDatabase.Command(c, t, "SELECT members FROM server_groups WHERE uuid = @u" + db.Dialect.ForUpdate, ("@u", groupUuid)), ct)
                is not string json)
            {
                throw new NotFoundException($"Instance group {groupUuid} could not be found.");
            }
            var members = Rows.FromJson(json, PersistenceJsonContext.Default.ListString);
            change(members);
            await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "UPDATE server_groups SET members = @m WHERE uuid = @u",
                ("@u", groupUuid), ("@m", Rows.Json(members, PersistenceJsonContext.Default.ListString))), ct);
        }, cancellationToken);

    private static ServerGroupRow Map(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.IsDBNull(3) ? null : Rows.Int(r, 3), r.GetString(4), r.GetString(5),
            Rows.FromJson(r.GetString(6), PersistenceJsonContext.Default.ListString));
}

public sealed record ServerGroupRow(string Uuid, string Name, string Policy, int? MaxServerPerHost, string ProjectId, string UserId, List<string> Members);
