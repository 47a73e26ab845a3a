using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Api;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Volumes;
using Microsoft.AspNetCore.Http;
using static Ferry.ControlPlane.Volumes.VolumeEndpoints;

namespace Ferry.ControlPlane.Volumes;

/// <summary>
/// <c>/v3/attachments</c> (3.27+; os-complete 3.44+), the API Nova attaches through: create reserves the volume for a
/// server (attaching straight away when a connector comes along), update gives the host's connector and answers the
/// connection info, os-complete marks it attached, delete lets go. An attachment belongs to its volume's project.
/// </summary>
internal static class AttachmentHandlers
{
    private static readonly ApiVersion s_attachments = new(3, 27);
    private static readonly ApiVersion s_complete = new(3, 44);
    private static readonly ApiVersion s_mode = new(3, 54);

    public static Task<IResult> ListAsync(HttpContext http, VolumeStore store) => ListAsync(http, store, detail: false);

    public static Task<IResult> ListDetailAsync(HttpContext http, VolumeStore store) => ListAsync(http, store, detail: true);

    private static async Task<IResult> ListAsync(HttpContext http, VolumeStore store, bool detail)
    {
        RequireVersion(http, s_attachments);
        var caller = Caller(http);
        var query = http.Request.Query;
        string? Filter(string key) => query[key].ToString() is { Length: > 0 } value ? value : null;
        var volumeId = Filter("volume_id");
        var attachments = await store.ListAttachmentsAsync(new AttachmentQuery
        {
            ProjectId = ListScope(http, caller),
            VolumeIds = volumeId is null ? null : [volumeId],
            InstanceUuid = Filter("instance_id"),
            AttachStatus = Filter("attach_status") ?? Filter("status"),
        }, http.RequestAborted);
        var (page, links) = Page(http, attachments, a => a.Id);
        var body = new JsonObject
        {
            ["attachments"] = new JsonArray([.. page.Select(a => (JsonNode)(detail ? VolumeViews.AttachmentDetail(a) : VolumeViews.AttachmentSummary(a)))]),
        };
        if (links is not null)
        {
            body["attachments_links"] = links;
        }
        return Json(body);
    }

    public static async Task<IResult> ShowAsync(HttpContext http, string id, VolumeStore store)
    {
        RequireVersion(http, s_attachments);
        return Json(new JsonObject { ["attachment"] = VolumeViews.AttachmentDetail(await VisibleAsync(http, store, id)) });
    }

    /// <summary>
    /// POST: <c>{"attachment": {"volume_uuid", "instance_uuid", "connector": null | {…}, "mode"}}</c> (nothing else,
    /// Cinder's schema); 200 with the attachment, reserved, or attaching with its connection info.
    /// </summary>
    public static async Task<IResult> CreateAsync(HttpContext http, VolumeStore store, IVolumeBackend backend)
    {
        RequireVersion(http, s_attachments);
        var caller = Caller(http);
        RequireWriter(caller, "volume:attachment_create");
        var body = await BodyAsync(http, "attachment");
        var allowed = Version(http) >= s_mode ? new[] { "volume_uuid", "instance_uuid", "connector", "mode" } : ["volume_uuid", "instance_uuid", "connector"];
        if (body.Select(p => p.Key).Where(k => !allowed.Contains(k)).ToList() is { Count: > 0 } unknown)
        {
            throw InvalidField("attachment", body, $"Additional properties are not allowed ({string.Join(", ", unknown.Select(k => $"'{k}'"))} " +
                $"{(unknown.Count == 1 ? "was" : "were")} unexpected)");
        }
        var volumeId = Uuid(body, "volume_uuid") ?? throw InvalidField("attachment", body, "'volume_uuid' is a required property");
        var instance = Uuid(body, "instance_uuid") ?? throw InvalidField("attachment", body, "'instance_uuid' is a required property");
        var mode = Text(body, "mode") is { } m
            ? m is "rw" or "ro" ? m : throw InvalidField("mode", body["mode"], $"'{m}' is not one of ['rw', 'ro']")
            : null;
        var connector = body.TryGetPropertyValue("connector", out var c) && c is not null ? Connector(c) : null;
        var volume = await VolumeHandlers.VisibleAsync(http, store, volumeId);
        var id = Guid.NewGuid().ToString();
        var attachment = new VolumeAttachment
        {
            Id = id,
            VolumeId = volume.Id,
            InstanceUuid = instance,
            AttachStatus = connector is null ? VolumeAttachStatus.Reserved : VolumeAttachStatus.Attaching,
            AttachedHost = connector?.Host,
            Mountpoint = connector?.Mountpoint,
            AttachMode = connector is null ? mode : mode ?? "rw",
            Connector = connector,
            ConnectionInfo = connector is null ? null : await backend.ConnectionInfoAsync(volume.Id, connector, http.RequestAborted) with { AccessMode = mode ?? "rw" },
        };
        var created = await store.CreateAttachmentAsync(attachment, Time(http).GetUtcNow(), http.RequestAborted);
        return Json(new JsonObject { ["attachment"] = VolumeViews.AttachmentDetail(created) });
    }

    /// <summary>PUT: <c>{"attachment": {"connector": {…}}}</c> → 200 with the connection info the host opens.</summary>
    public static async Task<IResult> UpdateAsync(HttpContext http, string id, VolumeStore store, IVolumeBackend backend)
    {
        RequireVersion(http, s_attachments);
        RequireWriter(Caller(http), "volume:attachment_update");
        var body = await BodyAsync(http, "attachment");
        if (!body.TryGetPropertyValue("connector", out var node) || node is null)
        {
            throw InvalidField("attachment", body, "'connector' is a required property");
        }
        var connector = Connector(node);
        var attachment = await VisibleAsync(http, store, id);
        var info = await backend.ConnectionInfoAsync(attachment.VolumeId, connector, http.RequestAborted) with { AccessMode = attachment.AttachMode ?? "rw" };
        var updated = await store.ConnectAttachmentAsync(id, connector, info, Time(http).GetUtcNow(), http.RequestAborted);
        return Json(new JsonObject { ["attachment"] = VolumeViews.AttachmentDetail(updated) });
    }

    /// <summary><c>POST /attachments/{id}/action {"os-complete": null}</c> → 204: attached, the volume in-use.</summary>
    public static async Task<IResult> ActionAsync(HttpContext http, string id, VolumeStore store)
    {
        RequireVersion(http, s_attachments);
        var body = await RequestJson.ReadAsync(http.Request, http.RequestAborted) as JsonObject;
        if (body is null || body.Count == 0)
        {
            throw CinderException.BadRequest("Malformed request body");
        }
        var action = body.First().Key;
        if (action != "os-complete")
        {
            throw CinderException.BadRequest($"There is no such action: {action}");
        }
        RequireVersion(http, s_complete);
        RequireWriter(Caller(http), "volume:attachment_complete");
        _ = await VisibleAsync(http, store, id);
        await store.CompleteAttachmentAsync(id, Time(http).GetUtcNow(), http.RequestAborted);
        return Results.NoContent();
    }

    /// <summary>DELETE → 200 <c>{"attachments": [the volume's attachments left]}</c>; the volume's status follows them.</summary>
    public static async Task<IResult> DeleteAsync(HttpContext http, string id, VolumeStore store)
    {
        RequireVersion(http, s_attachments);
        RequireWriter(Caller(http), "volume:attachment_delete");
        _ = await VisibleAsync(http, store, id);
        var remaining = await store.DeleteAttachmentAsync(id, Time(http).GetUtcNow(), http.RequestAborted);
        return Json(new JsonObject { ["attachments"] = new JsonArray([.. remaining.Select(a => (JsonNode)VolumeViews.AttachmentSummary(a))]) });
    }

    /// <summary>An attachment of a volume the caller can see; not found otherwise.</summary>
    private static async Task<VolumeAttachment> VisibleAsync(HttpContext http, VolumeStore store, string id)
    {
        var caller = Caller(http);
        return await store.GetAttachmentAsync(id, http.RequestAborted) is { } a
            && (caller.IsAdmin || await store.GetVolumeAsync(a.VolumeId, http.RequestAborted) is { } v && v.ProjectId == caller.ProjectId)
            ? a
            : throw CinderException.AttachmentNotFound(id);
    }

    private static string? Uuid(JsonObject body, string key)
    {
        var text = Text(body, key, 36);
        return text is null || Guid.TryParse(text, out _) ? text : throw InvalidField(key, body[key], $"'{text}' is not a 'uuid'");
    }

    /// <summary>os-brick's connector properties (the ones kept; any others are tolerated): a host is required.</summary>
    private static VolumeConnector Connector(JsonNode node)
    {
        if (node is not JsonObject o || o.Count == 0)
        {
            throw InvalidField("connector", node, node is JsonObject ? "{} does not have enough properties" : $"{node.ToJsonString()} is not of type 'object', 'null'");
        }
        var host = Text(o, "host") ?? throw CinderException.InvalidInput("The connector has no host.");
        return new VolumeConnector
        {
            Host = host,
            Ip = Text(o, "ip") ?? "",
            Mountpoint = Text(o, "mountpoint"),
            Platform = Text(o, "platform") ?? "x86_64",
            OsType = Text(o, "os_type") ?? "linux",
            Multipath = o["multipath"] is JsonValue v && v.GetValueKind() == JsonValueKind.True,
        };
    }
}
