using System.Text.Json.Nodes;
using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.ControlPlane.Api;

/// <summary>
/// <c>/servers/{id}/os-volume_attachments</c>: a server's volumes (its block device mappings of destination volume),
/// attached and detached (<c>openstack server add volume</c>, <c>remove volume</c>, <c>server volume list</c>).
/// </summary>
public static class VolumeAttachmentsEndpoints
{
    private const string PolicyRoot = "os_compute_api:os-volumes-attachments:";

    public static RouteGroupBuilder MapVolumeAttachments(this RouteGroupBuilder api)
    {
        api.MapGet("/servers/{id}/os-volume_attachments", ListAsync);
        api.MapPost("/servers/{id}/os-volume_attachments", AttachAsync);
        api.MapGet("/servers/{id}/os-volume_attachments/{volumeId}", ShowAsync);
        api.MapDelete("/servers/{id}/os-volume_attachments/{volumeId}", DetachAsync);
        return api;
    }

    internal static async Task<IResult> ListAsync(HttpContext http, string id, ComputeApi compute)
    {
        var ctx = RequestContext.Of(http);
        var instance = await compute.GetInstanceAsync(ctx, id, http.RequestAborted);
        ctx.RequireOwnerOrAdmin(PolicyRoot + "index", instance.ProjectId);
        var mappings = instance.BlockDevices.Where(b => b.HasVolume).OrderBy(b => b.DeviceName, StringComparer.Ordinal).ToList();
        var limit = Paging.Limit(http);
        var offset = http.Request.Query["offset"].FirstOrDefault() is { } o && int.TryParse(o, out var n) && n >= 0 ? n : 0;
        return NovaJson.Ok(new JsonObject
        {
            ["volumeAttachments"] = NovaJson.Array(mappings.Skip(offset).Take(limit).Select(b => View(ctx, instance, b))),
        });
    }

    internal static async Task<IResult> ShowAsync(HttpContext http, string id, string volumeId, ComputeApi compute)
    {
        var ctx = RequestContext.Of(http);
        var instance = await compute.GetInstanceAsync(ctx, id, http.RequestAborted);
        ctx.RequireOwnerOrAdmin(PolicyRoot + "show", instance.ProjectId);
        var mapping = instance.BlockDevices.FirstOrDefault(b => b.VolumeId == volumeId)
            ?? throw new NotFoundException($"Instance {instance.Uuid} is not attached to volume {volumeId}");
        return NovaJson.Ok(new JsonObject { ["volumeAttachment"] = View(ctx, instance, mapping) });
    }

    internal static async Task<IResult> AttachAsync(HttpContext http, string id, ComputeApi compute)
    {
        var ctx = RequestContext.Of(http);
        var body = await NovaJson.ReadBodyAsync(http);
        var attachment = BodySchema.RequiredObject(body, "volumeAttachment");
        string[] allowed = ctx.Version.AtLeast(79) ? ["volumeId", "device", "tag", "delete_on_termination"]
            : ctx.Version.AtLeast(49) ? ["volumeId", "device", "tag"] : ["volumeId", "device"];
        BodySchema.NoAdditional(attachment, "volumeAttachment", allowed);
        BodySchema.Required(attachment, "volumeAttachment", "volumeId");
        var volumeId = BodySchema.String(attachment, "volumeId", nullable: false)!;
        if (!BodySchema.IsUuid(volumeId))
        {
            throw BodySchema.Invalid("volumeAttachment/volumeId", attachment["volumeId"], $"'{volumeId}' is not a 'uuid'");
        }
        var device = BodySchema.String(attachment, "device");
        var tag = BodySchema.String(attachment, "tag", maxLength: 60);
        var deleteOnTermination = BodySchema.Boolean(attachment, "delete_on_termination") ?? false;
        var instance = await compute.GetInstanceAsync(ctx, id, http.RequestAborted);
        ctx.RequireOwnerOrAdmin(PolicyRoot + "create", instance.ProjectId);
        var mapping = await compute.AttachVolumeAsync(ctx, instance, volumeId, device, tag, deleteOnTermination, http.RequestAborted);
        return NovaJson.Ok(new JsonObject { ["volumeAttachment"] = View(ctx, instance, mapping, created: true) });
    }

    internal static async Task<IResult> DetachAsync(HttpContext http, string id, string volumeId, ComputeApi compute)
    {
        var ctx = RequestContext.Of(http);
        var instance = await compute.GetInstanceAsync(ctx, id, http.RequestAborted);
        ctx.RequireOwnerOrAdmin(PolicyRoot + "delete", instance.ProjectId);
        await compute.DetachVolumeAsync(ctx, instance, volumeId, http.RequestAborted);
        return TypedResults.StatusCode(StatusCodes.Status202Accepted);
    }

    /// <summary>Nova's view by microversion: id until 2.89, tag from 2.70, delete_on_termination from 2.79, attachment and mapping ids from 2.89 (not on create).</summary>
    private static JsonObject View(RequestContext ctx, Instance instance, BlockDeviceMapping mapping, bool created = false)
    {
        var v = ctx.Version;
        var view = new JsonObject();
        if (!v.AtLeast(89) || created)
        {
            view["id"] = mapping.VolumeId;
        }
        view["serverId"] = instance.Uuid;
        view["volumeId"] = mapping.VolumeId;
        view["device"] = mapping.DeviceName;
        if (v.AtLeast(70))
        {
            view["tag"] = mapping.Tag;
        }
        if (v.AtLeast(79))
        {
            view["delete_on_termination"] = mapping.DeleteOnTermination;
        }
        if (v.AtLeast(89) && !created)
        {
            view["attachment_id"] = mapping.AttachmentId;
            view["bdm_uuid"] = mapping.Uuid;
        }
        return view;
    }
}
