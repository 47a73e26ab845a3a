using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.ControlPlane.Api;

/// <summary><c>/servers/{id}/os-instance-actions</c>: how users learn why a move failed (§9.1).</summary>
public static class InstanceActionsEndpoints
{
    public static RouteGroupBuilder MapInstanceActions(this RouteGroupBuilder api)
    {
        api.MapGet("/servers/{id}/os-instance-actions", ListAsync);
        api.MapGet("/servers/{id}/os-instance-actions/{requestId}", ShowAsync);
        return api;
    }

    internal static async Task<IResult> ListAsync(HttpContext http, string id, ComputeApi compute, ActionStore actions)
    {
        var ctx = RequestContext.Of(http);
        var instance = await compute.GetInstanceAsync(ctx, id, http.RequestAborted, includeDeleted: ctx.Version.AtLeast(21));
        var list = await actions.ListActionsAsync(instance.Uuid, http.RequestAborted);
        var v = ctx.Version;
        if (!v.AtLeast(58))
        {
            return NovaJson.Ok(new JsonObject { ["instanceActions"] = NovaJson.Array(list.Select(a => Action(ctx, a))) });
        }
        // 2.58: paged (limit cut to max_limit, marker = a request_id) and filtered by changes-since (2.66: changes-before)
        // on updated_at, newest first (nova/api/openstack/compute/instance_actions.py index).
        var q = http.Request.Query;
        string[] allowed = v.AtLeast(66) ? ["limit", "marker", "changes-since", "changes-before"] : ["limit", "marker", "changes-since"];
        QuerySchema.NoAdditional(http, allowed);
        var since = MigrationsEndpoints.Time(q, "changes-since");
        var before = v.AtLeast(66) ? MigrationsEndpoints.Time(q, "changes-before") : null;
        if (since is not null && before is not null && before < since)
        {
            throw new BadRequestException("The value of changes-since must be less than or equal to changes-before.");
        }
        IEnumerable<InstanceActionRow> rows = list;
        if (since is not null || before is not null)
        {
            rows = rows.Where(a =>
            {
                var updated = DateTimeOffset.Parse(a.UpdatedAt ?? a.StartTime, System.Globalization.CultureInfo.InvariantCulture,
                    System.Globalization.DateTimeStyles.AssumeUniversal | System.Globalization.DateTimeStyles.AdjustToUniversal);
                return (since is null || updated >= since) && (before is null || updated <= before);
            });
        }
        var selected = rows.ToList();
        if (q["marker"].FirstOrDefault() is { } marker)
        {
            var at = selected.FindIndex(a => a.RequestId == marker);
            if (at < 0)
            {
                throw new BadRequestException($"Marker {marker} could not be found.");
            }
            selected = selected[(at + 1)..];
        }
        var limit = Paging.Limit(http);
        selected = [.. selected.Take(limit)];
        var body = new JsonObject { ["instanceActions"] = NovaJson.Array(selected.Select(a => Action(ctx, a))) };
        if (Paging.Links(http, $"servers/{id}/os-instance-actions", selected.Count, limit, selected.Count > 0 ? selected[^1].RequestId : null) is { Count: > 0 } links)
        {
            body["links"] = links;
        }
        return NovaJson.Ok(body);
    }

    internal static async Task<IResult> ShowAsync(HttpContext http, string id, string requestId, ComputeApi compute, ActionStore actions)
    {
        var ctx = RequestContext.Of(http);
        var instance = await compute.GetInstanceAsync(ctx, id, http.RequestAborted, includeDeleted: ctx.Version.AtLeast(21));
        var action = (await actions.ListActionsAsync(instance.Uuid, http.RequestAborted)).FirstOrDefault(a => a.RequestId == requestId)
            ?? throw new NotFoundException($"Action {requestId} not found");
        var view = Action(ctx, action);
        var v = ctx.Version;
        if (ctx.IsAdmin || v.AtLeast(51))
        {
            view["events"] = NovaJson.Array((await actions.ListEventsAsync(action.Id, http.RequestAborted)).Select(e =>
            {
                var ev = new JsonObject
                {
                    ["event"] = e.Event,
                    ["start_time"] = NovaJson.Db(e.StartTime),
                    ["finish_time"] = NovaJson.Db(e.FinishTime),
                    ["result"] = e.Result,
                };
                // os-instance-actions:events (admin): the traceback, Ferry's fault details for a failed event.
                if (ctx.IsAdmin)
                {
                    ev["traceback"] = e.Traceback;
                }
                if (v.AtLeast(62))
                {
                    ev["hostId"] = ServerViewBuilder.HostId(action.ProjectId ?? instance.ProjectId, e.Host);
                    if (ctx.IsAdmin)
                    {
                        ev["host"] = e.Host;
                    }
                }
                // os-instance-actions:events:details is admin-only by default.
                if (v.AtLeast(84) && ctx.IsAdmin)
                {
                    ev["details"] = e.Details;
                }
                return ev;
            }));
        }
        return NovaJson.Ok(new JsonObject { ["instanceAction"] = view });
    }

    private static JsonObject Action(RequestContext ctx, InstanceActionRow a)
    {
        var o = new JsonObject
        {
            ["action"] = a.Action,
            ["instance_uuid"] = a.InstanceUuid,
            ["message"] = a.Message,
            ["project_id"] = a.ProjectId,
            ["request_id"] = a.RequestId,
            ["start_time"] = NovaJson.Db(a.StartTime),
            ["user_id"] = a.UserId,
        };
        if (ctx.Version.AtLeast(58))
        {
            o["updated_at"] = NovaJson.Db(a.UpdatedAt);
        }
        return o;
    }
}
