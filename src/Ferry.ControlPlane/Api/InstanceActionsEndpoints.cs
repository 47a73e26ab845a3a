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
        api.MapGet("/servers/{id}/os-instance-actions", List);
        api.MapGet("/servers/{id}/os-instance-actions/{requestId}", Show);
        return api;
    }

    internal static IResult List(HttpContext http, string id, ComputeApi compute, ActionStore actions)
    {
        var ctx = RequestContext.Of(http);
        var instance = compute.GetInstance(ctx, id, includeDeleted: ctx.Version.AtLeast(21));
        var list = actions.ListActions(instance.Uuid);
        return NovaJson.Ok(new JsonObject { ["instanceActions"] = NovaJson.Array(list.Select(a => Action(ctx, a))) });
    }

    internal static IResult Show(HttpContext http, string id, string requestId, ComputeApi compute, ActionStore actions)
    {
        var ctx = RequestContext.Of(http);
        var instance = compute.GetInstance(ctx, id, includeDeleted: ctx.Version.AtLeast(21));
        var action = actions.ListActions(instance.Uuid).FirstOrDefault(a => a.RequestId == requestId)
            ?? throw new NotFoundException($"Action {requestId} not found");
        var view = Action(ctx, action);
        var v = ctx.Version;
        if (ctx.IsAdmin || v.AtLeast(51))
        {
            view["events"] = NovaJson.Array(actions.ListEvents(action.Id).Select(e =>
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
