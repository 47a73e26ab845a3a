using System.Globalization;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.ControlPlane.Api;

/// <summary><c>GET /os-migrations</c> (nova/api/openstack/compute/migrations.py), newest first.</summary>
public static class MigrationsEndpoints
{
    public static RouteGroupBuilder MapMigrations(this RouteGroupBuilder api)
    {
        api.MapGet("/os-migrations", ListAsync);
        return api;
    }

    internal static async Task<IResult> ListAsync(HttpContext http, MigrationStore migrations)
    {
        var ctx = RequestContext.Of(http);
        ctx.RequireAdmin("os_compute_api:os-migrations:index");
        var v = ctx.Version;
        var q = http.Request.Query;
        if (v.AtLeast(59))
        {
            var allowed = new List<string> { "hidden", "host", "instance_uuid", "source_compute", "status", "migration_type", "limit", "marker", "changes-since" };
            if (v.AtLeast(66))
            {
                allowed.Add("changes-before");
            }
            if (v.AtLeast(80))
            {
                allowed.AddRange(["user_id", "project_id"]);
            }
            if (q.Keys.FirstOrDefault(k => !allowed.Contains(k)) is { } unknown)
            {
                throw new BadRequestException(
                    $"Invalid input for query parameters {unknown}. Value: {q[unknown]}. Additional properties are not allowed ('{unknown}' was unexpected)");
            }
        }
        var host = q["host"].FirstOrDefault();
        var filter = new MigrationFilter(
            InstanceUuid: q["instance_uuid"].FirstOrDefault(),
            Host: host,
            SourceCompute: host is null ? q["source_compute"].FirstOrDefault() : null,
            Status: q["status"].Count > 1 ? null : q["status"].FirstOrDefault(),
            MigrationType: q["migration_type"].FirstOrDefault());
        var statuses = q["status"].Count > 1 ? q["status"].ToHashSet() : null;
        Func<Migration, bool> keep = m => statuses is null || statuses.Contains(m.Status);
        List<Migration> list;
        int? limit = null;
        if (v.AtLeast(59))
        {
            var since = Time(q, "changes-since");
            var before = v.AtLeast(66) ? Time(q, "changes-before") : null;
            if (since is not null && before is not null && before < since)
            {
                throw new BadRequestException("The value of changes-since must be less than or equal to changes-before.");
            }
            var user = v.AtLeast(80) ? q["user_id"].FirstOrDefault() : null;
            var project = v.AtLeast(80) ? q["project_id"].FirstOrDefault() : null;
            var byStatus = keep;
            keep = m => byStatus(m) && (since is null || m.UpdatedAt >= since) && (before is null || m.UpdatedAt <= before)
                && (user is null || m.UserId == user) && (project is null || m.ProjectId == project);
            limit = Paging.Limit(http);
            list = await migrations.ListPageAsync(filter, q["marker"].FirstOrDefault(), limit.Value, keep, http.RequestAborted);
        }
        else
        {
            // Before 2.59 the list has no paging in Nova either: every match.
            list = [.. (await migrations.ListAsync(filter, http.RequestAborted)).Where(keep)];
        }
        var body = new JsonObject { ["migrations"] = NovaJson.Array(list.Select(m => MigrationViewBuilder.OsMigration(http, v, m))) };
        if (limit is { } l && Paging.Links(http, "os-migrations", list.Count, l, list.Count > 0 ? list[^1].Uuid : null) is { Count: > 0 } links)
        {
            body["migrations_links"] = links;
        }
        return NovaJson.Ok(body);
    }

    internal static DateTimeOffset? Time(IQueryCollection q, string key)
    {
        if (q[key].FirstOrDefault() is not { } text)
        {
            return null;
        }
        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t)
            ? t
            : throw new BadRequestException($"Invalid input for query parameters {key}. Value: {text}. '{text}' is not a 'date-time'");
    }
}
