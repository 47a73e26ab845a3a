using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Rpc.Compute;
using Ferry.Core.Rpc.Conductor;
using Ferry.Core.Volumes;

namespace Ferry.ControlPlane.Api;

/// <summary>Volume attach and detach (compute/api.py attach_volume, detach_volume).</summary>
internal sealed partial class ComputeApi
{
    /// <summary>Where a volume can be attached or detached (Nova: ACTIVE, PAUSED, STOPPED, RESIZED… with no task).</summary>
    private static readonly VmState[] s_volumeStates = [VmState.Active, VmState.Paused, VmState.Stopped, VmState.Resized];

    /// <summary>
    /// Reserves the volume for the server (an attachment without a connector), adds the mapping with the next free device
    /// (or the one asked for) and casts attach_volume to the server's host, which connects it. Cinder's refusals (an in-use,
    /// error or unknown volume) come back as they are; nothing is left reserved when a later step fails.
    /// </summary>
    public async Task<BlockDeviceMapping> AttachVolumeAsync(RequestContext ctx, Instance instance, string volumeId, string? device,
        string? tag, bool deleteOnTermination, CancellationToken cancellationToken)
    {
        CheckLock(ctx, instance);
        CheckState(instance, "attach_volume", s_volumeStates, s_noTask);
        var host = instance.Host ?? throw new ConflictException($"Instance {instance.Uuid} is not ready");
        var volume = await volumes.GetVolumeAsync(volumeId, cancellationToken) is { } found && (ctx.IsAdmin || found.ProjectId == ctx.ProjectId)
            ? found
            : throw new NotFoundException($"Volume {volumeId} could not be found.");
        if (instance.BlockDevices.Any(b => b.VolumeId == volume.Id))
        {
            throw new BadRequestException($"Invalid volume: volume {volume.Id} already attached");
        }
        if (!volume.Multiattach && volume.Status is not VolumeStatus.Available)
        {
            var holders = (await volumes.ListAttachmentsAsync(new Persistence.AttachmentQuery { VolumeIds = [volume.Id] }, cancellationToken))
                .Select(a => a.InstanceUuid).Distinct();
            throw new BadRequestException($"Invalid volume: volume {volume.Id} is already attached to instances: {string.Join(",", holders)}");
        }
        var attachment = await volumes.CreateAttachmentAsync(new VolumeAttachment
        {
            Id = Guid.NewGuid().ToString(),
            VolumeId = volume.Id,
            InstanceUuid = instance.Uuid,
            AttachStatus = VolumeAttachStatus.Reserved,
        }, time.GetUtcNow(), cancellationToken);
        BlockDeviceMapping? mapping = null;
        try
        {
            Instance updated;
            for (var attempt = 1; ; attempt++)
            {
                mapping = new BlockDeviceMapping
                {
                    Uuid = Guid.NewGuid().ToString(),
                    VolumeId = volume.Id,
                    DeviceName = NextDevice(instance, device),
                    DeleteOnTermination = deleteOnTermination,
                    Tag = tag,
                    AttachmentId = attachment.Id,
                    CreatedAt = time.GetUtcNow(),
                };
                try
                {
                    updated = await instances.UpdateAsync(new InstanceUpdateRequest
                    {
                        Uuid = instance.Uuid,
                        AddBlockDevice = mapping,
                        ExpectedTaskStates = [null],
                    }, cancellationToken);
                    break;
                }
                catch (BlockDeviceTakenException taken) when (taken.DeviceTaken && device is null && attempt < 3)
                {
                    // Another attach took that device a moment ago: the next free one, as of now.
                    mapping = null;
                    instance = await instances.FindAsync(instance.Uuid, cancellationToken) ?? throw new InstanceNotFoundException(instance.Uuid);
                }
                catch
                {
                    mapping = null;
                    throw;
                }
            }
            await actions.StartActionAsync(instance.Uuid, ctx.RequestId, "attach_volume", ctx.UserId, ctx.ProjectId, cancellationToken);
            await compute.AttachVolumeAsync(host, new AttachVolumeRequest(updated, mapping, ctx.RequestId), cancellationToken);
        }
        catch
        {
            // Nothing was cast: the mapping (if it landed) and the reservation go again.
            if (mapping is not null)
            {
                await instances.UpdateAsync(new InstanceUpdateRequest { Uuid = instance.Uuid, RemoveBlockDevice = mapping.VolumeId }, CancellationToken.None);
            }
            await volumes.DeleteAttachmentAsync(attachment.Id, time.GetUtcNow(), CancellationToken.None);
            throw;
        }
        Log.Cast(logger, "attach_volume", instance.Uuid, ctx.RequestId);
        return mapping;
    }

    /// <summary>Marks the volume detaching and casts detach_volume to the server's host; a root volume stays.</summary>
    public async Task DetachVolumeAsync(RequestContext ctx, Instance instance, string volumeId, CancellationToken cancellationToken)
    {
        CheckLock(ctx, instance);
        CheckState(instance, "detach_volume", s_volumeStates, s_noTask);
        var host = instance.Host ?? throw new ConflictException($"Instance {instance.Uuid} is not ready");
        var mapping = instance.BlockDevices.FirstOrDefault(b => b.VolumeId == volumeId)
            ?? throw new NotFoundException($"Instance {instance.Uuid} is not attached to volume {volumeId}");
        if (mapping.BootIndex == 0)
        {
            throw new BadRequestException("Cannot detach a root device volume");
        }
        await volumes.UpdateVolumeAsync(volumeId, v => v.Status == VolumeStatus.InUse && v.AttachStatus == VolumeAttachStatus.Attached
            ? v with { Status = VolumeStatus.Detaching, UpdatedAt = time.GetUtcNow() }
            : throw new BadRequestException("Invalid volume: Unable to detach volume. Volume status must be 'in-use' and attach_status must be 'attached' to detach."),
            cancellationToken);
        await actions.StartActionAsync(instance.Uuid, ctx.RequestId, "detach_volume", ctx.UserId, ctx.ProjectId, cancellationToken);
        await compute.DetachVolumeAsync(host, new DetachVolumeRequest(instance, volumeId, ctx.RequestId), cancellationToken);
        Log.Cast(logger, "detach_volume", instance.Uuid, ctx.RequestId);
    }

    /// <summary>
    /// The existing volumes a boot request names (Nova's get_bdm_image_metadata and _get_volumes_for_bdms): each must be the
    /// caller's, and the root one bootable. Their status is the reservation's to judge (<see cref="ReserveBootVolumesAsync"/>).
    /// </summary>
    /// <returns>The image an existing root volume was made from (its volume_image_metadata), or null.</returns>
    private async Task<string?> CheckBootVolumesAsync(RequestContext ctx, IEnumerable<BlockDeviceMapping> mappings, CancellationToken cancellationToken)
    {
        string? rootImageId = null;
        foreach (var mapping in mappings.Where(m => m.SourceType == "volume"))
        {
            var volume = await volumes.GetVolumeAsync(mapping.VolumeId, cancellationToken) is { } found && (ctx.IsAdmin || found.ProjectId == ctx.ProjectId) ? found : null;
            if (mapping.BootIndex == 0)
            {
                _ = volume ?? throw new BadRequestException($"Block Device Mapping is Invalid: failed to get volume {mapping.VolumeId}.");
                if (!volume.Bootable)
                {
                    throw new BadRequestException($"Block Device {mapping.VolumeId} is not bootable.");
                }
                rootImageId = volume.ImageId;
            }
            else if (volume is null)
            {
                throw new BadRequestException($"Volume {mapping.VolumeId} could not be found.");
            }
        }
        return rootImageId;
    }

    /// <summary>
    /// The image whose properties a new server keeps (<see cref="ImageSystemMetadata"/>): the one it boots; for a server
    /// booted from a volume, the image its root volume is made from at build, or the one an existing root volume was made
    /// from. Nova reads the latter from the volume's whole volume_image_metadata; Ferry's volumes keep only the image's
    /// id, so the image's record is read instead (null when it is gone: the server then keeps no image properties).
    /// </summary>
    private async Task<Image?> BootImageAsync(ServerCreateSpec spec, string? rootVolumeImageId, CancellationToken cancellationToken)
    {
        if (spec.Image is { } image)
        {
            return image;
        }
        var imageId = spec.BlockDevices.FirstOrDefault(b => b.BootIndex == 0 && b.SourceType == "image")?.ImageId ?? rootVolumeImageId;
        return imageId is null ? null : await catalog.FindImageAsync(imageId, cancellationToken);
    }

    /// <summary>
    /// Reserves each existing volume of a new server (an attachment without a connector, as Nova's _validate_bdm does) and
    /// returns the mappings with their attachments. A volume the block storage service will not reserve (in use, in error)
    /// fails the request with its reason wrapped as Nova wraps it, and the reservations made so far are deleted.
    /// </summary>
    private async Task<List<BlockDeviceMapping>> ReserveBootVolumesAsync(string instanceUuid, List<BlockDeviceMapping> mappings, CancellationToken cancellationToken)
    {
        var reserved = new List<BlockDeviceMapping>(mappings.Count);
        try
        {
            foreach (var mapping in mappings)
            {
                if (mapping.SourceType != "volume")
                {
                    reserved.Add(mapping);
                    continue;
                }
                var attachment = await volumes.CreateAttachmentAsync(new VolumeAttachment
                {
                    Id = Guid.NewGuid().ToString(),
                    VolumeId = mapping.VolumeId,
                    InstanceUuid = instanceUuid,
                    AttachStatus = VolumeAttachStatus.Reserved,
                }, time.GetUtcNow(), cancellationToken);
                reserved.Add(mapping with { AttachmentId = attachment.Id });
            }
            return reserved;
        }
        catch (Exception ex)
        {
            await ReleaseReservationsAsync(reserved);
            throw ex is CinderException { HttpStatus: 400 } refused
                ? new BadRequestException($"Invalid volume: Invalid input received: {refused.Message} (HTTP 400)")
                : ex is CinderException { HttpStatus: 404 } ? new BadRequestException(ex.Message) : ex;
        }
    }

    private async Task ReleaseReservationsAsync(IEnumerable<BlockDeviceMapping> mappings)
    {
        foreach (var attachmentId in mappings.Select(m => m.AttachmentId).OfType<string>())
        {
            await volumes.DeleteAttachmentAsync(attachmentId, time.GetUtcNow(), CancellationToken.None);
        }
    }

    /// <summary>
    /// A local delete (no host, or its compute down): the API lets go of the server's attachments itself, so its volumes
    /// are available again, and deletes the ones marked delete_on_termination (Nova's _local_cleanup_bdm_volumes). A volume
    /// that cannot be deleted now (taken by another server meanwhile) stays.
    /// </summary>
    private async Task ReleaseVolumesAsync(Instance instance)
    {
        foreach (var attachment in await volumes.ListAttachmentsAsync(new Persistence.AttachmentQuery { InstanceUuid = instance.Uuid }, CancellationToken.None))
        {
            try
            {
                await volumes.DeleteAttachmentAsync(attachment.Id, time.GetUtcNow(), CancellationToken.None);
            }
            catch (CinderException ex) when (ex.HttpStatus == 404)
            {
            }
        }
        foreach (var mapping in instance.BlockDevices.Where(m => m.DeleteOnTermination && m.HasVolume))
        {
            try
            {
                await volumes.BeginDeleteAsync(mapping.VolumeId, force: false, time.GetUtcNow(), CancellationToken.None);
            }
            catch (CinderException ex)
            {
                Log.VolumeKept(logger, mapping.VolumeId, instance.Uuid, ex.Message);
                continue;
            }
            await Volumes.VolumeHandlers.RemoveAsync(volumes, volumeBackend, mapping.VolumeId, ex => Log.VolumeKept(logger, mapping.VolumeId, instance.Uuid, ex.Message));
        }
    }

    /// <summary>The device asked for (its slot must be free), else the first free one from /dev/vdb; 403 past the last slot.</summary>
    private static string NextDevice(Instance instance, string? requested)
    {
        var taken = instance.BlockDevices.Select(b => b.DeviceName).ToHashSet(StringComparer.Ordinal);
        if (requested is not null)
        {
            var name = "/dev/" + requested[(requested.LastIndexOf('/') + 1)..];
            try
            {
                VolumeDevices.SlotOf(name);
            }
            catch (ArgumentException ex)
            {
                throw new BadRequestException(ex.Message);
            }
            // The root disk is /dev/vda, local or a volume.
            return taken.Contains(name) || name == VolumeDevices.Root ? throw new BadRequestException($"The supplied device path ({name}) is in use.") : name;
        }
        for (var i = 0; i < VolumeDevices.Max; i++)
        {
            var name = VolumeDevices.Name(i);
            if (!taken.Contains(name))
            {
                return name;
            }
        }
        throw new ForbiddenException($"The maximum number of volumes ({VolumeDevices.Max}) is attached to instance {instance.Uuid}.");
    }
}
