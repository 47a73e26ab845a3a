using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Api;
using Ferry.ControlPlane.Images;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Core.Volumes;
using Microsoft.AspNetCore.Http;
using static Ferry.ControlPlane.Volumes.VolumeEndpoints;

namespace Ferry.ControlPlane.Volumes;

/// <summary>
/// <c>/v3/volumes</c>: a project sees and changes its own volumes; an admin sees every project's with <c>all_tenants</c>
/// and may change any. The backend's work (making, growing, deleting the file) is local and quick, so the request waits
/// for it: a create answers 202 with the volume already <c>available</c> (or <c>error</c>), which clients that poll for
/// <c>available</c> (Nova, <c>--wait</c>) take as Cinder's later answer.
/// </summary>
internal static class VolumeHandlers
{
    private const long GiB = 1L << 30;

    /// <summary>Cinder's default <c>quota_gigabytes</c>: the GiB of volumes one project may hold.</summary>
    internal const int QuotaGigabytes = 1000;

    /// <summary>Extending an attached volume came with 3.42.</summary>
    private static readonly ApiVersion s_extendInUse = new(3, 42);

    private static readonly string[] s_resettable =
    [
        VolumeStatus.Available, VolumeStatus.Error, VolumeStatus.InUse, VolumeStatus.Reserved, VolumeStatus.Attaching, VolumeStatus.Detaching,
        VolumeStatus.Creating, VolumeStatus.Extending, VolumeStatus.Deleting, VolumeStatus.ErrorDeleting, VolumeStatus.ErrorExtending,
    ];

    public static bool CanSee(RequestIdentity caller, Volume v) => caller.IsAdmin || v.ProjectId == caller.ProjectId;

    public static Task<IResult> ListAsync(HttpContext http, VolumeStore store) => ListAsync(http, store, detail: false);

    public static Task<IResult> ListDetailAsync(HttpContext http, VolumeStore store) => ListAsync(http, store, detail: true);

    private static async Task<IResult> ListAsync(HttpContext http, VolumeStore store, bool detail)
    {
        var caller = Caller(http);
        var query = http.Request.Query;
        var volumes = (await store.ListVolumesAsync(ListScope(http, caller), http.RequestAborted))
            .Where(v => !query.ContainsKey("name") || v.Name == query["name"].ToString())
            .Where(v => !query.ContainsKey("status") || v.Status == query["status"].ToString())
            .ToList();
        var (page, links) = Page(http, volumes, v => v.Id);
        var body = new JsonObject();
        if (detail)
        {
            var attachments = (await store.ListAttachmentsAsync(new AttachmentQuery { VolumeIds = [.. page.Select(v => v.Id)] }, http.RequestAborted))
                .ToLookup(a => a.VolumeId);
            body["volumes"] = new JsonArray([.. page.Select(v => (JsonNode)VolumeViews.Detail(http, v, attachments[v.Id], caller.IsAdmin, Version(http)))]);
        }
        else
        {
            body["volumes"] = new JsonArray([.. page.Select(v => (JsonNode)VolumeViews.Summary(http, v))]);
        }
        if (links is not null)
        {
            body["volumes_links"] = links;
        }
        if (Version(http) >= new ApiVersion(3, 45) && query["with_count"].ToString().ToLowerInvariant() is "true" or "1")
        {
            body["count"] = volumes.Count;
        }
        return Json(body);
    }

    public static async Task<IResult> ShowAsync(HttpContext http, string id, VolumeStore store)
    {
        var volume = await VisibleAsync(http, store, id);
        return await DetailAsync(http, store, volume, 200);
    }

    public static async Task<IResult> CreateAsync(HttpContext http, VolumeStore store, IVolumeBackend backend, CatalogStore catalog, ImageServiceOptions images)
    {
        var caller = Caller(http);
        RequireWriter(caller, "volume:create");
        var body = await BodyAsync(http, "volume");
        var name = Text(body, "name") ?? Text(body, "display_name") ?? "";
        var description = Text(body, "description") ?? Text(body, "display_description") ?? "";
        var size = Size(body, "size");
        var imageRef = Text(body, "imageRef", 36) ?? Text(body, "image_id", 36);
        if (Text(body, "snapshot_id", 36) is { } snapshot)
        {
            throw new CinderException(404, $"Snapshot {snapshot} could not be found.");
        }
        if (Text(body, "backup_id", 36) is { } backup)
        {
            throw new CinderException(404, $"Backup {backup} could not be found.");
        }
        if (Text(body, "source_volid", 36) is { } source)
        {
            _ = await VisibleAsync(http, store, source);
            throw CinderException.InvalidInput("Creating a volume from another volume is not supported by this volume service.");
        }
        if (Text(body, "consistencygroup_id", 36) is { } group)
        {
            throw new CinderException(404, $"ConsistencyGroup {group} could not be found.");
        }
        if (Text(body, "volume_type") is { Length: > 0 } type && type is not ("__DEFAULT__" or VolumeViews.DefaultTypeId))
        {
            throw new CinderException(404, $"Volume type with name {type} could not be found.");
        }
        if (Text(body, "availability_zone") is { Length: > 0 } zone && zone != "nova")
        {
            throw CinderException.InvalidInput($"Availability zone '{zone}' is invalid.");
        }
        var metadata = Metadata(body);
        var multiattach = body["multiattach"] switch
        {
            null => false,
            JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValue<bool>(),
            var other => throw InvalidField("multiattach", other, $"{other.ToJsonString()} is not of type 'boolean'"),
        };
        Image? image = null;
        if (imageRef is not null)
        {
            image = await catalog.GetImageAsync(imageRef, http.RequestAborted) is { } found && ImageAccess.CanSee(caller.ProjectId, caller.IsAdmin, found)
                ? found
                : throw CinderException.InvalidInput("Invalid image identifier or unable to access requested image.");
            if (image.Status != "active")
            {
                throw CinderException.InvalidInput($"Image {image.Id} is not active.");
            }
            size ??= (int)Math.Max(1, (image.SizeBytes + GiB - 1) / GiB);
            if (image.SizeBytes > size * GiB)
            {
                throw CinderException.InvalidInput($"Size of specified image {(image.SizeBytes + GiB - 1) / GiB}GB is larger than volume size {size}GB.");
            }
            if (image.MinDiskGb > size)
            {
                throw CinderException.InvalidInput($"Volume size {size}GB cannot be smaller than the image minDisk size {image.MinDiskGb}GB.");
            }
        }
        if (size is not { } sizeGb)
        {
            throw CinderException.InvalidInput("Invalid volume size provided for create request: None (size argument must be an integer " +
                "(or string represenation of an integer) and greater than zero).");
        }

        await EnsureQuotaAsync(http, store, caller.ProjectId, sizeGb);
        var time = Time(http);
        var now = time.GetUtcNow();
        var volume = new Volume
        {
            Id = Guid.NewGuid().ToString(),
            ProjectId = caller.ProjectId,
            UserId = caller.UserId,
            Name = name,
            Description = description,
            SizeGb = sizeGb,
            Status = VolumeStatus.Creating,
            Multiattach = multiattach,
            Bootable = image is not null,
            ImageId = image?.Id,
            Metadata = metadata ?? [],
            CreatedAt = now,
            UpdatedAt = now,
        };
        await store.CreateVolumeAsync(volume, http.RequestAborted);
        // From here the work runs to its end even if the client goes: a volume is never left creating.
        try
        {
            string? imagePath = null;
            if (image is not null)
            {
                await store.UpdateVolumeAsync(volume.Id, v => v with { Status = VolumeStatus.Downloading, UpdatedAt = time.GetUtcNow() }, CancellationToken.None);
                var data = Path.Combine(images.ImagesDirectory, Guid.Parse(image.Id).ToString());
                // An image record without data (the built-in catalog's) gives an empty bootable volume.
                imagePath = File.Exists(data) ? data : null;
            }
            await backend.CreateAsync(volume.Id, sizeGb, imagePath, CancellationToken.None);
            volume = await store.UpdateVolumeAsync(volume.Id, v => v with { Status = VolumeStatus.Available, UpdatedAt = time.GetUtcNow() }, CancellationToken.None);
        }
        catch (Exception ex) when (ex is not CinderException)
        {
            ApiErrorLog.RequestFailed(http, "volume", ex);
            volume = await store.UpdateVolumeAsync(volume.Id, v => v with { Status = VolumeStatus.Error, UpdatedAt = time.GetUtcNow() }, CancellationToken.None);
        }
        return await DetailAsync(http, store, volume, 202);
    }

    /// <summary>PUT: the name, the description and the metadata (replaced whole), as <c>volume set --name</c> sends them.</summary>
    public static async Task<IResult> UpdateAsync(HttpContext http, string id, VolumeStore store)
    {
        var body = await BodyAsync(http, "volume");
        _ = await OwnedAsync(http, store, id, "volume:update");
        var name = Text(body, "name") ?? Text(body, "display_name");
        var description = Text(body, "description") ?? Text(body, "display_description");
        var metadata = Metadata(body);
        var now = Time(http).GetUtcNow();
        var updated = await store.UpdateVolumeAsync(id, v => v with
        {
            Name = name ?? v.Name,
            Description = description ?? v.Description,
            Metadata = metadata ?? v.Metadata,
            UpdatedAt = now,
        }, http.RequestAborted);
        return await DetailAsync(http, store, updated, 200);
    }

    public static async Task<IResult> DeleteAsync(HttpContext http, string id, VolumeStore store, IVolumeBackend backend)
    {
        _ = await OwnedAsync(http, store, id, "volume:delete");
        await store.BeginDeleteAsync(id, force: false, Time(http).GetUtcNow(), http.RequestAborted);
        await RemoveAsync(http, store, backend, id);
        return Results.StatusCode(202);
    }

    /// <summary><c>POST /volumes/{id}/action</c>: the action is the body's one key.</summary>
    public static async Task<IResult> ActionAsync(HttpContext http, string id, VolumeStore store, IVolumeBackend backend)
    {
        var body = await RequestJson.ReadAsync(http.Request, http.RequestAborted) as JsonObject;
        if (body is null || body.Count == 0)
        {
            throw CinderException.BadRequest("Malformed request body");
        }
        var (action, args) = (body.First().Key, body.First().Value);
        var caller = Caller(http);
        var time = Time(http);
        switch (action)
        {
            case "os-extend":
                await ExtendAsync(http, id, args, store, backend);
                break;
            case "os-begin_detaching":
                _ = await OwnedAsync(http, store, id, "volume:begin_detaching");
                await store.UpdateVolumeAsync(id, v => v.Status == VolumeStatus.InUse && v.AttachStatus == VolumeAttachStatus.Attached
                    ? v with { Status = VolumeStatus.Detaching, UpdatedAt = time.GetUtcNow() }
                    : throw CinderException.InvalidVolume("Unable to detach volume. Volume status must be 'in-use' and attach_status must be 'attached' to detach."),
                    http.RequestAborted);
                break;
            case "os-roll_detaching":
                _ = await OwnedAsync(http, store, id, "volume:roll_detaching");
                await store.UpdateVolumeAsync(id, v => v.Status == VolumeStatus.Detaching ? v with { Status = VolumeStatus.InUse, UpdatedAt = time.GetUtcNow() } : v,
                    http.RequestAborted);
                break;
            case "os-force_delete":
                RequireAdmin(caller, "volume_extension:volume_admin_actions:force_delete");
                _ = await OwnedAsync(http, store, id, "volume_extension:volume_admin_actions:force_delete");
                await store.BeginDeleteAsync(id, force: true, time.GetUtcNow(), http.RequestAborted);
                await RemoveAsync(http, store, backend, id);
                break;
            case "os-reset_status":
                RequireAdmin(caller, "volume_extension:volume_admin_actions:reset_status");
                _ = await OwnedAsync(http, store, id, "volume_extension:volume_admin_actions:reset_status");
                var status = args is JsonObject reset ? Text(reset, "status") : null;
                var attachStatus = args is JsonObject r2 ? Text(r2, "attach_status") : null;
                if (status is null && attachStatus is null || status is not null && !s_resettable.Contains(status)
                    || attachStatus is not (null or VolumeAttachStatus.Attached or VolumeAttachStatus.Detached))
                {
                    throw CinderException.InvalidInput("Must specify a valid status");
                }
                await store.UpdateVolumeAsync(id, v => v with { Status = status ?? v.Status, AttachStatus = attachStatus ?? v.AttachStatus, UpdatedAt = time.GetUtcNow() },
                    http.RequestAborted);
                break;
            default:
                throw CinderException.BadRequest($"There is no such action: {action}");
        }
        return Results.StatusCode(202);
    }

    /// <summary>
    /// os-extend: available (or in-use from 3.42) → extending → back, with the new size once the backend grew it;
    /// error_extending when it could not. Refused with Cinder's messages before anything changes.
    /// </summary>
    private static async Task ExtendAsync(HttpContext http, string id, JsonNode? args, VolumeStore store, IVolumeBackend backend)
    {
        _ = await OwnedAsync(http, store, id, "volume:extend");
        var newSize = (args is JsonObject o ? Size(o, "new_size") : null)
            ?? throw InvalidField("os-extend", args, "'new_size' is a required property");
        var current = await store.GetVolumeAsync(id, http.RequestAborted) ?? throw CinderException.VolumeNotFound(id);
        if (newSize > current.SizeGb)
        {
            await EnsureQuotaAsync(http, store, current.ProjectId, newSize - current.SizeGb);
        }
        string[] allowed = Version(http) >= s_extendInUse ? [VolumeStatus.Available, VolumeStatus.InUse] : [VolumeStatus.Available];
        var time = Time(http);
        var previous = "";
        await store.UpdateVolumeAsync(id, v =>
        {
            if (!allowed.Contains(v.Status))
            {
                var expected = allowed.Length == 1 ? "'available'" : "('available', 'in-use')";
                throw CinderException.InvalidVolume($"Volume {v.Id} status must be '{{'status': {expected}}}' to extend, currently {v.Status}.");
            }
            if (newSize <= v.SizeGb)
            {
                throw CinderException.InvalidInput($"New size for extend must be greater than current size. (current: {v.SizeGb}, extended: {newSize}).");
            }
            previous = v.Status;
            return v with { Status = VolumeStatus.Extending, UpdatedAt = time.GetUtcNow() };
        }, http.RequestAborted);
        try
        {
            await backend.ExtendAsync(id, newSize, CancellationToken.None);
            await store.UpdateVolumeAsync(id, v => v with { SizeGb = newSize, Status = previous, UpdatedAt = time.GetUtcNow() }, CancellationToken.None);
        }
        catch (Exception ex) when (ex is not CinderException)
        {
            ApiErrorLog.RequestFailed(http, "volume", ex);
            await store.UpdateVolumeAsync(id, v => v with { Status = VolumeStatus.ErrorExtending, UpdatedAt = time.GetUtcNow() }, CancellationToken.None);
        }
    }

    private static Task RemoveAsync(HttpContext http, VolumeStore store, IVolumeBackend backend, string id) =>
        RemoveAsync(store, backend, id, ex => ApiErrorLog.RequestFailed(http, "volume", ex));

    /// <summary>
    /// Deletes a volume in <c>deleting</c>: its storage, then its row; <c>error_deleting</c> when the storage stays. Also
    /// the compute API's, for the volumes a server deleted without its host takes with it.
    /// </summary>
    public static async Task RemoveAsync(VolumeStore store, IVolumeBackend backend, string id, Action<Exception> failed)
    {
        try
        {
            await backend.DeleteAsync(id, CancellationToken.None);
            await store.RemoveVolumeAsync(id, CancellationToken.None);
        }
        catch (Exception ex) when (ex is not CinderException)
        {
            failed(ex);
            await store.UpdateVolumeAsync(id, v => v with { Status = VolumeStatus.ErrorDeleting }, CancellationToken.None);
        }
    }

    /// <summary>
    /// Cinder's gigabytes quota (the default, 1000 GiB a project): 413 with its message when <paramref name="moreGb"/> would
    /// pass it. Checked before the change, not under a lock: two replicas at once may pass it together by one request each.
    /// </summary>
    private static async Task EnsureQuotaAsync(HttpContext http, VolumeStore store, string projectId, long moreGb)
    {
        var used = (await store.ListVolumesAsync(projectId, http.RequestAborted)).Sum(v => (long)v.SizeGb);
        if (used + moreGb > QuotaGigabytes)
        {
            throw new CinderException(413, "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. " +
                $"Requested {moreGb}G, quota is {QuotaGigabytes}G and {used}G has been consumed.");
        }
    }

    private static async Task<IResult> DetailAsync(HttpContext http, VolumeStore store, Volume volume, int status)
    {
        var attachments = await store.ListAttachmentsAsync(new AttachmentQuery { VolumeIds = [volume.Id] }, http.RequestAborted);
        return Json(new JsonObject { ["volume"] = VolumeViews.Detail(http, volume, attachments, Caller(http).IsAdmin, Version(http)) }, status);
    }

    /// <summary>A volume the caller can see; VolumeNotFound otherwise, so nothing is revealed.</summary>
    public static async Task<Volume> VisibleAsync(HttpContext http, VolumeStore store, string id) =>
        await store.GetVolumeAsync(id, http.RequestAborted) is { } v && CanSee(Caller(http), v) ? v : throw CinderException.VolumeNotFound(id);

    /// <summary>A volume the caller may change: its project's (any, for an admin), by a caller that is not a reader.</summary>
    public static async Task<Volume> OwnedAsync(HttpContext http, VolumeStore store, string id, string rule)
    {
        RequireWriter(Caller(http), rule);
        return await VisibleAsync(http, store, id);
    }

    private static void RequireAdmin(RequestIdentity caller, string rule)
    {
        if (!caller.IsAdmin || caller.ReadOnly)
        {
            throw CinderException.PolicyRefused(rule);
        }
    }

    /// <summary>Metadata: an object of strings (Cinder's schema: keys and values up to 255 characters); null when absent.</summary>
    private static Dictionary<string, string>? Metadata(JsonObject body)
    {
        if (!body.TryGetPropertyValue("metadata", out var node) || node is null)
        {
            return null;
        }
        if (node is not JsonObject o)
        {
            throw InvalidField("metadata", node, $"{node.ToJsonString()} is not of type 'object'");
        }
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in o)
        {
            if (key.Length is 0 or > 255 || value is not JsonValue v || v.GetValueKind() != JsonValueKind.String || v.GetValue<string>().Length > 255)
            {
                throw InvalidField("metadata", node, $"'{key}' does not match a key and value of 1-255 and 0-255 characters");
            }
            metadata[key] = v.GetValue<string>();
        }
        return metadata;
    }
}
