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
    public Task<Dictionary<string, long>> LimitsAsync(string projectId, string? userId, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null,
                "SELECT resource, hard_limit FROM quotas WHERE project_id = @p AND user_id = @u",
                ("@p", projectId), ("@u", userId ?? ""));
            return await ReadLimitsAsync(command, ct);
        }, cancellationToken);

    /// <summary>Every user-scoped limit in the project, per resource (to compute what remains for the project).</summary>
    public Task<Dictionary<string, List<long>>> UserLimitsAsync(string projectId, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null,
                "SELECT resource, hard_limit FROM quotas WHERE project_id = @p AND user_id <> ''", ("@p", projectId));
            var result = new Dictionary<string, List<long>>();
            foreach (var (resource, limit) in await Rows.ReadAllAsync(command, r => (r.GetString(0), r.GetInt64(1)), ct))
            {
                if (!result.TryGetValue(resource, out var list))
                {
                    result[resource] = list = [];
                }
                list.Add(limit);
            }
            return result;
        }, cancellationToken);

    /// <summary>Creates or replaces limits of a project (<paramref name="userId"/> null) or of one user in it, all at once.</summary>
    /// <remarks>A write: <paramref name="cancellationToken"/> only stops the wait to begin it.</remarks>
    public Task SetLimitsAsync(string projectId, string? userId, IReadOnlyDictionary<string, long> limits, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            foreach (var (resource, limit) in limits)
            {
                await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t,
                    "INSERT INTO quotas(project_id, user_id, resource, hard_limit) VALUES (@p, @u, @r, @l) "
                    + "ON CONFLICT(project_id, user_id, resource) DO UPDATE SET hard_limit = @l",
                    ("@p", projectId), ("@u", userId ?? ""), ("@r", resource), ("@l", limit)), ct);
            }
        }, cancellationToken);

    /// <summary>
    /// Reverts to the defaults: a project's limits and all its users' (Nova's destroy_all_by_project), or only
    /// one user's (destroy_all_by_project_and_user).
    /// </summary>
    public Task DeleteLimitsAsync(string projectId, string? userId, CancellationToken cancellationToken) =>
        db.WriteAsync((c, t, ct) => FerryDatabase.ExecuteAsync(userId is null
            ? FerryDatabase.Command(c, t, "DELETE FROM quotas WHERE project_id = @p", ("@p", projectId))
            : FerryDatabase.Command(c, t, "DELETE FROM quotas WHERE project_id = @p AND user_id = @u", ("@p", projectId), ("@u", userId)), ct),
            cancellationToken);

    public Task<Dictionary<string, long>> ClassLimitsAsync(string className, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null,
                "SELECT resource, hard_limit FROM quota_classes WHERE class_name = @n", ("@n", className));
            return await ReadLimitsAsync(command, ct);
        }, cancellationToken);

    /// <remarks>A write: <paramref name="cancellationToken"/> only stops the wait to begin it.</remarks>
    public Task SetClassLimitsAsync(string className, IReadOnlyDictionary<string, long> limits, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            foreach (var (resource, limit) in limits)
            {
                await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t,
                    "INSERT INTO quota_classes(class_name, resource, hard_limit) VALUES (@n, @r, @l) "
                    + "ON CONFLICT(class_name, resource) DO UPDATE SET hard_limit = @l",
                    ("@n", className), ("@r", resource), ("@l", limit)), ct);
            }
        }, cancellationToken);

    private static async Task<Dictionary<string, long>> ReadLimitsAsync(DbCommand command, CancellationToken cancellationToken)
    {
        var result = new Dictionary<string, long>();
        foreach (var (resource, limit) in await Rows.ReadAllAsync(command, r => (r.GetString(0), r.GetInt64(1)), cancellationToken))
        {
            result[resource] = limit;
        }
        return result;
    }
}
