using Ferry.Core.Errors;

namespace Ferry.ControlPlane.Persistence;

/// <summary>Server groups (affinity / anti-affinity policies) and their members.</summary>
public sealed class ServerGroupStore(FerryDatabase db)
{
    public ServerGroupRow Create(string name, string policy, int? maxServerPerHost, string projectId, string userId) =>
        db.Write((c, t) =>
        {
            var row = new ServerGroupRow(Guid.NewGuid().ToString(), name, policy, maxServerPerHost, projectId, userId, []);
            using var command = FerryDatabase.Command(c, t,
                "INSERT INTO server_groups(uuid, name, policy, max_server_per_host, project_id, user_id, members) VALUES (@u, @n, @p, @m, @pr, @us, '[]')",
                ("@u", row.Uuid), ("@n", name), ("@p", policy), ("@m", maxServerPerHost), ("@pr", projectId), ("@us", userId));
            command.ExecuteNonQuery();
            return row;
        });

    public ServerGroupRow? Find(string uuid) => List(null).FirstOrDefault(g => g.Uuid == uuid);

    public List<ServerGroupRow> List(string? projectId) =>
        db.Read(c =>
        {
            using var command = FerryDatabase.Command(c, null,
                "SELECT uuid, name, policy, max_server_per_host, project_id, user_id, members FROM server_groups WHERE (CAST(@p AS TEXT) IS NULL OR project_id = @p) ORDER BY id",
                ("@p", projectId));
            return Rows.ReadAll(command, r => new ServerGroupRow(
                r.GetString(0), r.GetString(1), r.GetString(2), r.IsDBNull(3) ? null : Rows.Int(r, 3), r.GetString(4), r.GetString(5),
                Rows.FromJson(r.GetString(6), PersistenceJsonContext.Default.ListString)));
        });

    public void AddMember(string groupUuid, string instanceUuid) => ChangeMembers(groupUuid, m => m.Add(instanceUuid));

    public void RemoveMember(string groupUuid, string instanceUuid) => ChangeMembers(groupUuid, m => m.Remove(instanceUuid));

    public void Delete(string uuid) =>
        db.Write((c, t) =>
        {
            using var command = FerryDatabase.Command(c, t, "DELETE FROM server_groups WHERE uuid = @u", ("@u", uuid));
            if (command.ExecuteNonQuery() == 0)
            {
                throw new NotFoundException($"Instance group {uuid} could not be found.");
            }
        });

    private void ChangeMembers(string groupUuid, Action<List<string>> change) =>
        db.Write((c, t) =>
        {
            using var read = FerryDatabase.Command(c, t, "SELECT members FROM server_groups WHERE uuid = @u" + db.Dialect.ForUpdate, ("@u", groupUuid));
            if (read.ExecuteScalar() is not string json)
            {
                throw new NotFoundException($"Instance group {groupUuid} could not be found.");
            }
            var members = Rows.FromJson(json, PersistenceJsonContext.Default.ListString);
            change(members);
            using var write = FerryDatabase.Command(c, t, "UPDATE server_groups SET members = @m WHERE uuid = @u",
                ("@u", groupUuid), ("@m", Rows.Json(members, PersistenceJsonContext.Default.ListString)));
            write.ExecuteNonQuery();
        });
}

public sealed record ServerGroupRow(string Uuid, string Name, string Policy, int? MaxServerPerHost, string ProjectId, string UserId, List<string> Members);
