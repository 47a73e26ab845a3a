using System.Globalization;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Api;
using Ferry.Core.Volumes;
using Microsoft.AspNetCore.Http;

namespace Ferry.ControlPlane.Volumes;

/// <summary>Volumes and attachments as Cinder v3 shows them (cinder/api/v3/views/volumes.py, views/attachments.py).</summary>
internal static class VolumeViews
{
    /// <summary>The one volume type served: Cinder's default type, under its well-known name.</summary>
    public const string DefaultTypeId = "b8a9c1d2-0f3e-4a5b-8c6d-7e8f9a0b1c2d";

    /// <summary>Where the admin view says volumes live (Cinder's <c>host@backend#pool</c>).</summary>
    public const string BackendHost = "ferry@local#local";

    /// <summary>Cinder's timestamps: naive ISO 8601 with microseconds, UTC.</summary>
    public static string Time(DateTimeOffset value) => value.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff", CultureInfo.InvariantCulture);

    public static JsonObject Summary(HttpContext http, Volume v) => new()
    {
        ["id"] = v.Id,
        ["name"] = v.Name,
        ["links"] = Links(http, v),
    };

    /// <summary>
    /// The detail view. <c>metadata</c> and <c>volume_type</c> are always there (the CLI pops both without a default),
    /// <c>bootable</c> is a string, and <c>attachments</c> lists only completed attachments, each with the keys Nova and
    /// the CLI read. The host and migration attributes are the admin's to see, as in Cinder's policy.
    /// </summary>
    public static JsonObject Detail(HttpContext http, Volume v, IEnumerable<VolumeAttachment> attachments, bool admin, ApiVersion version)
    {
        var view = new JsonObject
        {
            ["id"] = v.Id,
            ["status"] = v.Status,
            ["size"] = v.SizeGb,
            ["availability_zone"] = v.AvailabilityZone,
            ["created_at"] = Time(v.CreatedAt),
            ["updated_at"] = Time(v.UpdatedAt),
            ["name"] = v.Name,
            ["description"] = v.Description,
            ["volume_type"] = v.VolumeType,
            ["snapshot_id"] = null,
            ["source_volid"] = null,
            ["metadata"] = NovaJson.ToJson(v.Metadata),
            ["links"] = Links(http, v),
            ["user_id"] = v.UserId,
            ["bootable"] = v.Bootable ? "true" : "false",
            ["encrypted"] = false,
            ["replication_status"] = null,
            ["consistencygroup_id"] = null,
            ["multiattach"] = v.Multiattach,
            ["attachments"] = new JsonArray([.. attachments.Where(a => a.AttachStatus == VolumeAttachStatus.Attached).Select(a => (JsonNode)new JsonObject
            {
                ["id"] = v.Id,
                ["attachment_id"] = a.Id,
                ["volume_id"] = v.Id,
                ["server_id"] = a.InstanceUuid,
                ["host_name"] = admin ? a.AttachedHost : null,
                ["device"] = a.Mountpoint,
                ["attached_at"] = a.AttachedAt is { } at ? Time(at) : null,
            })]),
            ["os-vol-tenant-attr:tenant_id"] = v.ProjectId,
        };
        if (v.ImageId is { } imageId)
        {
            view["volume_image_metadata"] = new JsonObject { ["image_id"] = imageId };
        }
        if (admin)
        {
            view["os-vol-host-attr:host"] = BackendHost;
            view["migration_status"] = null;
            view["os-vol-mig-status-attr:migstat"] = null;
            view["os-vol-mig-status-attr:name_id"] = null;
        }
        if (version >= new ApiVersion(3, 13))
        {
            view["group_id"] = null;
        }
        if (version >= new ApiVersion(3, 48))
        {
            view["shared_targets"] = false;
            view["service_uuid"] = null;
        }
        if (version >= new ApiVersion(3, 63))
        {
            view["volume_type_id"] = DefaultTypeId;
        }
        if (version >= new ApiVersion(3, 65))
        {
            view["consumes_quota"] = true;
        }
        return view;
    }

    /// <summary>An attachment in the list form: id, status (its attach status), instance and volume.</summary>
    public static JsonObject AttachmentSummary(VolumeAttachment a) => new()
    {
        ["id"] = a.Id,
        ["status"] = a.AttachStatus,
        ["instance"] = a.InstanceUuid,
        ["volume_id"] = a.VolumeId,
    };

    /// <summary>
    /// The detail form: the summary plus its times ('' until set), its mode (the string "null" until a connector came) and
    /// the connection info Cinder stores, flattened (driver_volume_type beside the driver's keys), {} while reserved.
    /// </summary>
    public static JsonObject AttachmentDetail(VolumeAttachment a)
    {
        var view = AttachmentSummary(a);
        view["attached_at"] = a.AttachedAt is { } at ? Time(at) : "";
        view["detached_at"] = a.DetachedAt is { } dt ? Time(dt) : "";
        view["attach_mode"] = a.AttachMode ?? "null";
        view["connection_info"] = a.ConnectionInfo is { } info
            ? new JsonObject
            {
                ["driver_volume_type"] = info.DriverVolumeType,
                ["host"] = info.Host,
                ["port"] = info.Port,
                ["export"] = info.Export,
                ["access_mode"] = info.AccessMode,
                ["attachment_id"] = a.Id,
                ["encrypted"] = false,
            }
            : new JsonObject();
        return view;
    }

    private static JsonArray Links(HttpContext http, Volume v) => new(
        new JsonObject { ["rel"] = "self", ["href"] = $"{NovaJson.BaseUrl(http)}/v3/{v.ProjectId}/volumes/{v.Id}" },
        new JsonObject { ["rel"] = "bookmark", ["href"] = $"{NovaJson.BaseUrl(http)}/{v.ProjectId}/volumes/{v.Id}" });
}
