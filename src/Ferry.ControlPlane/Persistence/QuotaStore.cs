using System.Data.Common;

namespace Ferry.ControlPlane.Persistence;

/// <summary>
/// Quota limits that differ from the defaults: per project, per user within a project, and per quota
/// class (Nova's quotas, project_user_quotas and quota_classes tables). Usage is never stored: it is
/// counted from the instances, key pairs and server groups themselves, as Nova counts it since Pike.
/// </summary>
public sealed class QuotaStore(FerryDatabase db)
{
    /// <summary>The project's own limits (<paramref name="userId"/> null) or one user's limits in it.</summary>
    public Dictionary<string, long> Limits(string projectId, string? userId = null) =>
        db.Read(c =>
        {
            using var command = FerryDatabase.Command(c, null,
                "SELECT resource, hard_limit FROM quotas WHERE project_id = @p AND user_id = @u",
                ("@p", projectId), ("@u", userId ?? ""));
            return ReadLimits(command);
        });

    /// <summary>Every user-scoped limit in the project, per resource (to compute what remains for the project).</summary>
    public Dictionary<string, List<long>> UserLimits(string projectId) =>
        db.Read(c =>
        {
            using var command = FerryDatabase.Command(c, null,
                "SELECT resource, hard_limit FROM quotas WHERE project_id = @p AND user_id <> ''", ("@p", projectId));
            var result = new Dictionary<string, List<long>>();
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                var resource = reader.GetString(0);
                if (!result.TryGetValue(resource, out var list))
                {
                    result[resource] = list = [];
                }
                list.Add(reader.GetInt64(1));
            }
            return result;
        });

    /// <summary>Creates or replaces limits of a project (<paramref name="userId"/> null) or of one user in it, all at once.</summary>
    public void SetLimits(string projectId, string? userId, IReadOnlyDictionary<string, long> limits) =>
        db.Write((c, t) =>
        {
            foreach (var (resource, limit) in limits)
            {
                using var upsert = FerryDatabase.Command(c, t,
                    "INSERT INTO quotas(project_id, user_id, resource, hard_limit) VALUES (@p, @u, @r, @l) "
                    + "ON CONFLICT(project_id, user_id, resource) DO UPDATE SET hard_limit = @l",
                    ("@p", projectId), ("@u", userId ?? ""), ("@r", resource), ("@l", limit));
                upsert.ExecuteNonQuery();
            }
        });

    /// <summary>
    /// Reverts to the defaults: a project's limits and all its users' (Nova's destroy_all_by_project), or only
    /// one user's (destroy_all_by_project_and_user).
    /// </summary>
    public void DeleteLimits(string projectId, string? userId = null) =>
        db.Write((c, t) =>
        {
            using var delete = userId is null
                ? FerryDatabase.Command(c, t, "DELETE FROM quotas WHERE project_id = @p", ("@p", projectId))
                : FerryDatabase.Command(c, t, "DELETE FROM quotas WHERE project_id = @p AND user_id = @u", ("@p", projectId), ("@u", userId));
            delete.ExecuteNonQuery();
        });

    public Dictionary<string, long> ClassLimits(string className) =>
        db.Read(c =>
        {
            using var command = FerryDatabase.Command(c, null,
                "SELECT resource, hard_limit FROM quota_classes WHERE class_name = @n", ("@n", className));
            return ReadLimits(command);
        });

    public void SetClassLimits(string className, IReadOnlyDictionary<string, long> limits) =>
        db.Write((c, t) =>
        {
            foreach (var (resource, limit) in limits)
            {
                using var upsert = FerryDatabase.Command(c, t,
                    "INSERT INTO quota_classes(class_name, resource, hard_limit) VALUES (@n, @r, @l) "
                    + "ON CONFLICT(class_name, resource) DO UPDATE SET hard_limit = @l",
                    ("@n", className), ("@r", resource), ("@l", limit));
                upsert.ExecuteNonQuery();
            }
        });

    private static Dictionary<string, long> ReadLimits(DbCommand command)
    {
        var result = new Dictionary<string, long>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            result[reader.GetString(0)] = reader.GetInt64(1);
        }
        return result;
    }
}
