using System.Data.Common;
using System.Globalization;
using Ferry.Core.Volumes;

namespace Ferry.ControlPlane.Persistence;

/// <summary>
/// The volume service's state (Cinder's database): volumes and their attachments, with Cinder's rules for the status
/// a change needs (cinder/volume/api.py). Every change reads the volume under its row lock, decides, and writes back
/// only if the row's revision is still the one read (a conditional update), so two API replicas reserving one
/// volume at once cannot both succeed: the second sees the first's reservation or finds the revision moved.
/// </summary>
public sealed class VolumeStore(FerryDatabase db)
{
    /// <summary>The statuses Cinder deletes a volume from without <c>force</c> (volume/api.py, delete).</summary>
    private static readonly string[] s_deletable = [VolumeStatus.Available, VolumeStatus.Error, VolumeStatus.ErrorExtending, "error_restoring", "error_managing"];

    // --- volumes ---

    public Task CreateVolumeAsync(Volume volume, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t,
                "INSERT INTO volumes(id, project_id, name, status, revision, data) VALUES (@i, @p, @n, @s, 1, @d)",
                ("@i", volume.Id), ("@p", volume.ProjectId), ("@n", volume.Name), ("@s", volume.Status),
                ("@d", Rows.Json(volume, PersistenceJsonContext.Default.Volume))), ct);
        }, cancellationToken);

    public Task<Volume?> GetVolumeAsync(string id, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) => (await FindVolumeAsync(c, null, id, "", ct))?.Volume, cancellationToken);

    /// <summary>A project's volumes, or every one for null; newest first, as Cinder's default sort (created_at desc).</summary>
    public Task<List<Volume>> ListVolumesAsync(string? projectId, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null, "SELECT data FROM volumes WHERE (CAST(@p AS TEXT) IS NULL OR project_id = @p)", ("@p", projectId));
            var volumes = await Rows.ReadAllAsync(command, r => Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.Volume), ct);
            return volumes.OrderByDescending(v => v.CreatedAt).ThenByDescending(v => v.Id, StringComparer.Ordinal).ToList();
        }, cancellationToken);

    /// <summary>
    /// Applies <paramref name="change"/> to the volume under its row lock and writes it back if nobody changed it meanwhile;
    /// <paramref name="change"/> throws a <see cref="CinderException"/> when the volume's state does not allow the change.
    /// VolumeNotFound when there is none.
    /// </summary>
    public Task<Volume> UpdateVolumeAsync(string id, Func<Volume, Volume> change, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            var (current, revision) = await FindVolumeAsync(c, t, id, db.Dialect.ForUpdate, ct) ?? throw CinderException.VolumeNotFound(id);
            var updated = change(current);
            await SaveVolumeAsync(c, t, updated, revision, ct);
            return updated;
        }, cancellationToken);

    /// <summary>
    /// Moves an idle volume to <c>deleting</c>: one in a status Cinder deletes from (any but <c>deleting</c> with
    /// <paramref name="force"/>) and without attachments; Cinder's 400 otherwise.
    /// </summary>
    public Task<Volume> BeginDeleteAsync(string id, bool force, DateTimeOffset now, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            var (current, revision) = await FindVolumeAsync(c, t, id, db.Dialect.ForUpdate, ct) ?? throw CinderException.VolumeNotFound(id);
            var idle = force ? current.Status != VolumeStatus.Deleting : s_deletable.Contains(current.Status);
            if (!idle || current.AttachStatus == VolumeAttachStatus.Attached || (await AttachmentsOfAsync(c, t, id, ct)).Count > 0)
            {
                throw CinderException.NotDeletable();
            }
            var deleting = current with { Status = VolumeStatus.Deleting, UpdatedAt = now };
            await SaveVolumeAsync(c, t, deleting, revision, ct);
            return deleting;
        }, cancellationToken);

    /// <summary>Removes a volume in <c>deleting</c> once its storage is gone; false when it was gone already.</summary>
    public Task<bool> RemoveVolumeAsync(string id, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
            await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "DELETE FROM volumes WHERE id = @i AND status = @s",
                ("@i", id), ("@s", VolumeStatus.Deleting)), ct) > 0, cancellationToken);

    // --- attachments ---

    /// <summary>
    /// Reserves the volume for <paramref name="attachment"/>'s instance (Cinder's attachment_create): refused with Cinder's
    /// 400 when the volume is in an error state, or when it is not multiattach and not available, unless the same instance
    /// already holds an attachment of it (how Nova keeps one per host during a live migration). The volume's status then
    /// follows its attachments (reserved, or attaching when <paramref name="attachment"/> comes with a connector).
    /// </summary>
    public Task<VolumeAttachment> CreateAttachmentAsync(VolumeAttachment attachment, DateTimeOffset now, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            var (volume, revision) = await FindVolumeAsync(c, t, attachment.VolumeId, db.Dialect.ForUpdate, ct)
                ?? throw CinderException.VolumeNotFound(attachment.VolumeId);
            if (volume.Status.StartsWith("error", StringComparison.Ordinal))
            {
                throw CinderException.InvalidVolume("Volume attachments can not be created if the volume is in an error state. " +
                    $"The Volume {volume.Id} currently has a status of: {volume.Status} ");
            }
            var others = await AttachmentsOfAsync(c, t, volume.Id, ct);
            string[] reservable = volume.Multiattach
                ? [VolumeStatus.Available, VolumeStatus.InUse, VolumeStatus.Downloading, VolumeStatus.Reserved, VolumeStatus.Attaching]
                : [VolumeStatus.Available, VolumeStatus.Downloading];
            if (!reservable.Contains(volume.Status) && (volume.Multiattach || !others.Any(a => a.InstanceUuid == attachment.InstanceUuid)))
            {
                throw CinderException.InvalidVolume($"Volume {volume.Id} status must be {string.Join(" or ", reservable)} to reserve, " +
                    $"but the current status is {volume.Status}.");
            }
            await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t,
                "INSERT INTO volume_attachments(id, volume_id, project_id, instance_uuid, attach_status, data) VALUES (@i, @v, @p, @s, @a, @d)",
                ("@i", attachment.Id), ("@v", volume.Id), ("@p", volume.ProjectId), ("@s", attachment.InstanceUuid), ("@a", attachment.AttachStatus),
                ("@d", Rows.Json(attachment, PersistenceJsonContext.Default.VolumeAttachment))), ct);
            await SaveVolumeAsync(c, t, Settle(volume, [.. others, attachment], now), revision, ct);
            return attachment;
        }, cancellationToken);

    public Task<VolumeAttachment?> GetAttachmentAsync(string id, CancellationToken cancellationToken) =>
        db.ReadAsync((c, ct) => FindAttachmentAsync(c, null, id, ct), cancellationToken);

    /// <summary>Attachments by the indexed columns (null filters nothing), oldest first.</summary>
    public Task<List<VolumeAttachment>> ListAttachmentsAsync(AttachmentQuery query, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            var where = new List<string>();
            var parameters = new List<(string, object?)>();
            if (query.VolumeIds is { } volumeIds)
            {
                if (volumeIds.Count == 0)
                {
                    return [];
                }
                var names = volumeIds.Select((v, i) => { var name = $"@v{i}"; parameters.Add((name, v)); return name; }).ToList();
                where.Add($"volume_id IN ({string.Join(", ", names)})");
            }
            foreach (var (column, value) in new[] { ("project_id", query.ProjectId), ("instance_uuid", query.InstanceUuid), ("attach_status", query.AttachStatus) })
            {
                if (value is not null)
                {
                    where.Add($"{column} = @{column}");
                    parameters.Add(($"@{column}", value));
                }
            }
            var sql = "SELECT data FROM volume_attachments" + (where.Count > 0 ? " WHERE " + string.Join(" AND ", where) : "");
            await using var command = FerryDatabase.Command(c, null, sql, [.. parameters]);
            var attachments = await Rows.ReadAllAsync(command, r => Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.VolumeAttachment), ct);
            return attachments.OrderBy(a => a.Id, StringComparer.Ordinal).ToList();
        }, cancellationToken);

    /// <summary>
    /// Gives the attachment its host's connector and the connection info the host opens (Cinder's attachment_update):
    /// the attachment and the volume go to <c>attaching</c>. 409 when the volume is in an error state, or when another
    /// attachment of a volume that is not multiattach is already connected to the same host.
    /// </summary>
    public Task<VolumeAttachment> ConnectAttachmentAsync(string id, VolumeConnector connector, VolumeConnectionInfo connectionInfo, DateTimeOffset now,
        CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            var (volume, revision, attachment, others) = await LockAttachmentAsync(c, t, id, ct);
            if (volume.Status.StartsWith("error", StringComparison.Ordinal))
            {
                throw CinderException.Conflict($"Resource conflict: Volume {volume.Id} is in an error state ({volume.Status}) and cannot be attached.");
            }
            if (!volume.Multiattach && others.Any(o => o.Id != id && o.AttachedHost == connector.Host))
            {
                throw CinderException.Conflict($"Resource conflict: duplicate connectors detected on volume {volume.Id}.");
            }
            var connected = attachment with
            {
                AttachStatus = attachment.AttachStatus == VolumeAttachStatus.Attached ? VolumeAttachStatus.Attached : VolumeAttachStatus.Attaching,
                Connector = connector,
                AttachedHost = connector.Host,
                Mountpoint = connector.Mountpoint ?? attachment.Mountpoint,
                AttachMode = attachment.AttachMode ?? "rw",
                ConnectionInfo = connectionInfo,
            };
            await SaveAttachmentAsync(c, t, connected, ct);
            await SaveVolumeAsync(c, t, Settle(volume, [.. others.Where(o => o.Id != id), connected], now), revision, ct);
            return connected;
        }, cancellationToken);

    /// <summary>
    /// Marks a connected attachment attached (Cinder's os-complete): the volume lists it and is <c>in-use</c>. 400 while the
    /// attachment has no connector yet.
    /// </summary>
    public Task<VolumeAttachment> CompleteAttachmentAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            var (volume, revision, attachment, others) = await LockAttachmentAsync(c, t, id, ct);
            if (attachment.Connector is null)
            {
                throw CinderException.InvalidVolume($"Attachment {id} has no connector yet: update it with the host's connector before completing it.");
            }
            var attached = attachment with { AttachStatus = VolumeAttachStatus.Attached, AttachedAt = attachment.AttachedAt ?? now };
            await SaveAttachmentAsync(c, t, attached, ct);
            await SaveVolumeAsync(c, t, Settle(volume, [.. others.Where(o => o.Id != id), attached], now), revision, ct);
            return attached;
        }, cancellationToken);

    /// <summary>Deletes the attachment; the volume's status follows the ones left (none: <c>available</c>). Returns those left.</summary>
    public Task<List<VolumeAttachment>> DeleteAttachmentAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            var (volume, revision, _, others) = await LockAttachmentAsync(c, t, id, ct);
            await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "DELETE FROM volume_attachments WHERE id = @i", ("@i", id)), ct);
            var remaining = others.Where(o => o.Id != id).ToList();
            await SaveVolumeAsync(c, t, Settle(volume, remaining, now), revision, ct);
            return remaining;
        }, cancellationToken);

    // --- helpers (inside a read or write) ---

    /// <summary>
    /// The volume's status and attach status as its attachments make them (Cinder's attachment_destroy and
    /// _attachment_reserve): attached beats attaching beats reserved; none leaves it available. A volume being detached
    /// stays <c>detaching</c> while its attachment is still attached.
    /// </summary>
    private static Volume Settle(Volume volume, IReadOnlyList<VolumeAttachment> attachments, DateTimeOffset now)
    {
        var (status, attach) = attachments.Select(a => a.AttachStatus).ToList() switch
        {
            var s when s.Contains(VolumeAttachStatus.Attached) => (volume.Status == VolumeStatus.Detaching ? VolumeStatus.Detaching : VolumeStatus.InUse, VolumeAttachStatus.Attached),
            var s when s.Contains(VolumeAttachStatus.Attaching) => (VolumeStatus.Attaching, VolumeAttachStatus.Attaching),
            var s when s.Count > 0 => (VolumeStatus.Reserved, VolumeAttachStatus.Detached),
            _ => (VolumeStatus.Available, VolumeAttachStatus.Detached),
        };
        return volume with { Status = status, AttachStatus = attach, UpdatedAt = now };
    }

    private static async Task<(Volume Volume, long Revision)?> FindVolumeAsync(DbConnection c, DbTransaction? t, string id, string forUpdate, CancellationToken ct)
    {
        await using var command = FerryDatabase.Command(c, t, "SELECT data, revision FROM volumes WHERE id = @i" + forUpdate, ("@i", id));
        return await Rows.ReadFirstAsync<(Volume, long)?>(command,
            r => (Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.Volume), Convert.ToInt64(r.GetValue(1), CultureInfo.InvariantCulture)), ct);
    }

    /// <summary>
    /// Writes the volume if its revision is still <paramref name="revision"/>; otherwise another writer moved it first and
    /// this change is refused (409), never applied on top.
    /// </summary>
    private static async Task SaveVolumeAsync(DbConnection c, DbTransaction t, Volume volume, long revision, CancellationToken ct)
    {
        var written = await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t,
            "UPDATE volumes SET name = @n, status = @s, revision = revision + 1, data = @d WHERE id = @i AND revision = @r",
            ("@i", volume.Id), ("@n", volume.Name), ("@s", volume.Status), ("@r", revision),
            ("@d", Rows.Json(volume, PersistenceJsonContext.Default.Volume))), ct);
        if (written != 1)
        {
            throw CinderException.Conflict($"Resource conflict: Volume {volume.Id} was changed by another request; try again.");
        }
    }

    private static async Task<VolumeAttachment?> FindAttachmentAsync(DbConnection c, DbTransaction? t, string id, CancellationToken ct)
    {
        await using var command = FerryDatabase.Command(c, t, "SELECT data FROM volume_attachments WHERE id = @i", ("@i", id));
        return await command.ExecuteScalarAsync(ct) is string json ? Rows.FromJson(json, PersistenceJsonContext.Default.VolumeAttachment) : null;
    }

    private static async Task<List<VolumeAttachment>> AttachmentsOfAsync(DbConnection c, DbTransaction t, string volumeId, CancellationToken ct)
    {
        await using var command = FerryDatabase.Command(c, t, "SELECT data FROM volume_attachments WHERE volume_id = @v", ("@v", volumeId));
        var attachments = await Rows.ReadAllAsync(command, r => Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.VolumeAttachment), ct);
        return attachments.OrderBy(a => a.Id, StringComparer.Ordinal).ToList();
    }

    /// <summary>The attachment, its volume under the volume's row lock, and every attachment of that volume (this one included).</summary>
    private async Task<(Volume Volume, long Revision, VolumeAttachment Attachment, List<VolumeAttachment> All)> LockAttachmentAsync(
        DbConnection c, DbTransaction t, string id, CancellationToken ct)
    {
        var found = await FindAttachmentAsync(c, t, id, ct) ?? throw CinderException.AttachmentNotFound(id);
        var (volume, revision) = await FindVolumeAsync(c, t, found.VolumeId, db.Dialect.ForUpdate, ct) ?? throw CinderException.VolumeNotFound(found.VolumeId);
        // Read again under the volume's lock: another replica may have changed or deleted it meanwhile.
        var all = await AttachmentsOfAsync(c, t, volume.Id, ct);
        var attachment = all.FirstOrDefault(a => a.Id == id) ?? throw CinderException.AttachmentNotFound(id);
        return (volume, revision, attachment, all);
    }

    private static Task SaveAttachmentAsync(DbConnection c, DbTransaction t, VolumeAttachment attachment, CancellationToken ct) =>
        FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "UPDATE volume_attachments SET attach_status = @a, data = @d WHERE id = @i",
            ("@i", attachment.Id), ("@a", attachment.AttachStatus), ("@d", Rows.Json(attachment, PersistenceJsonContext.Default.VolumeAttachment))), ct);
}

/// <summary>Attachments by the indexed columns; null filters nothing, an empty <see cref="VolumeIds"/> matches nothing.</summary>
public sealed record AttachmentQuery
{
    public IReadOnlyList<string>? VolumeIds { get; init; }
    public string? ProjectId { get; init; }
    public string? InstanceUuid { get; init; }
    public string? AttachStatus { get; init; }
}
