using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Rpc.Compute;
using Ferry.Core.Rpc.Conductor;
using Ferry.Core.Volumes;
using Ferry.Virt;

namespace Ferry.Compute;

/// <summary>
/// A server's volumes on this host, driven through the block storage service as Nova's volume module and block device
/// driver do: an attachment gets this host's connector and hands back the connection the driver opens, is completed once
/// the guest has the disk, and is deleted when the host lets go.
/// </summary>
public sealed class InstanceVolumes(ComputeContext context)
{
    /// <summary>What this host tells the volume service about itself.</summary>
    public VolumeConnector Connector(string? mountpoint = null) => new() { Host = context.Host, Ip = context.Options.MyIp, Mountpoint = mountpoint };

    private VolumeHttpClient Service => context.Volume
        ?? throw new FerryException("This compute host has no block storage service configured (volume_url) to attach volumes.", 500);

    /// <summary>
    /// attach_volume: connect this host to the volume reserved by the API, give the guest the disk, complete the attachment
    /// and record the connection on the mapping. A failure lets go of all of it (the attachment is deleted, the volume is
    /// available again) and removes the mapping, as Nova's attach does when the driver fails.
    /// </summary>
    public async Task AttachAsync(AttachVolumeRequest request, CancellationToken ct)
    {
        var instance = request.Instance;
        var mapping = request.Mapping;
        var attachmentId = mapping.AttachmentId ?? throw new BadRequestException($"Volume {mapping.VolumeId} has no attachment to connect.");
        try
        {
            await context.RunEventAsync(instance, request.RequestId, "compute_attach_volume", async () =>
            {
                var connection = await Service.ConnectAsync(attachmentId, Connector(mapping.DeviceName), ct);
                await context.Driver.AttachVolumeAsync(instance.Uuid, new GuestVolume(mapping.VolumeId, mapping.DeviceName, connection), ct);
                await Service.CompleteAsync(attachmentId, ct);
                await SaveMappingAsync(instance, mapping with { ConnectionInfo = connection, AttachedHost = context.Host }, ct);
            }, ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            await context.TryAsync("undo the volume attach", instance.Uuid, async () =>
            {
                await context.Driver.DetachVolumeAsync(instance.Uuid, mapping.VolumeId, CancellationToken.None);
                await Service.DeleteAttachmentAsync(attachmentId, CancellationToken.None);
                await RemoveMappingAsync(instance, mapping.VolumeId, CancellationToken.None);
            });
        }
    }

    /// <summary>
    /// detach_volume: take the disk from the guest, delete this host's attachment (the volume is available again) and drop
    /// the mapping. A guest that does not let go keeps the disk, and the volume goes back to in-use (os-roll_detaching).
    /// </summary>
    public async Task DetachAsync(DetachVolumeRequest request, CancellationToken ct)
    {
        var instance = request.Instance;
        var mapping = instance.BlockDevices.FirstOrDefault(b => b.VolumeId == request.VolumeId);
        if (mapping is null)
        {
            return;
        }
        try
        {
            await context.RunEventAsync(instance, request.RequestId, "compute_detach_volume", async () =>
            {
                await context.Driver.DetachVolumeAsync(instance.Uuid, mapping.VolumeId, ct);
                if (mapping.AttachmentId is { } attachmentId)
                {
                    await Service.DeleteAttachmentAsync(attachmentId, ct);
                }
                await RemoveMappingAsync(instance, mapping.VolumeId, ct);
            }, ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            await context.TryAsync("roll the detach back", instance.Uuid, () => Service.RollDetachingAsync(mapping.VolumeId, CancellationToken.None));
        }
    }

    /// <summary>
    /// At delete, after the guest is gone (or after a failed build): every attachment of the server is deleted, also one a
    /// crash kept off its mappings, and the volumes it was told to delete with it (delete_on_termination) are deleted.
    /// </summary>
    public async Task ReleaseAsync(Instance instance, CancellationToken ct)
    {
        if (instance.BlockDevices.Count == 0)
        {
            return;   // the API makes every attachment together with its mapping
        }
        var attachments = instance.BlockDevices.Select(m => m.AttachmentId).OfType<string>().ToHashSet(StringComparer.Ordinal);
        attachments.UnionWith(await Service.ListAttachmentIdsAsync(instance.Uuid, ct));
        foreach (var attachmentId in attachments)
        {
            await Service.DeleteAttachmentAsync(attachmentId, ct);
        }
        foreach (var mapping in instance.BlockDevices.Where(m => m.DeleteOnTermination && m.HasVolume))
        {
            await Service.DeleteVolumeAsync(mapping.VolumeId, ct);
        }
    }

    /// <summary>
    /// build_and_run_instance, before the guest starts (Nova's _prep_block_device): each mapping that asks for a new volume
    /// gets one, made from its image or blank and saved on the server at once (a crash then leaves it the server's, not
    /// lost); each gets an attachment of this host (the API reserved one for an existing volume) and this host's
    /// connection. <paramref name="mappings"/> is updated in place, so a failure's clean-up sees everything made so far.
    /// </summary>
    public async Task ConnectForBuildAsync(Instance instance, List<BlockDeviceMapping> mappings, CancellationToken ct)
    {
        for (var i = 0; i < mappings.Count; i++)
        {
            var mapping = mappings[i];
            if (!mapping.HasVolume)
            {
                var made = await Service.CreateVolumeAsync(mapping.VolumeSize ?? 1, mapping.SourceType == "image" ? mapping.ImageId : null, instance.Uuid, ct);
                mapping = mappings[i] = mapping with { VolumeId = made };
                await context.UpdateInstanceAsync(new InstanceUpdateRequest { Uuid = instance.Uuid, BlockDevices = [.. mappings] }, ct);
                await Service.WaitUntilAvailableAsync(made, s_volumePollInterval, VolumePollAttempts, context.Time, ct);
            }
            else if (mapping.BootIndex == 0 && mapping.ImageId is null)
            {
                // The guest boots what its root volume was made from (Nova's image meta from volume_image_metadata).
                mapping = mappings[i] = mapping with { ImageId = (await Service.GetVolumeAsync(mapping.VolumeId, ct))?.ImageId };
            }
            if (mapping.AttachmentId is null)
            {
                mapping = mappings[i] = mapping with { AttachmentId = await Service.CreateAttachmentAsync(mapping.VolumeId, instance.Uuid, null, ct) };
            }
            var connection = await Service.ConnectAsync(mapping.AttachmentId!, Connector(mapping.DeviceName), ct);
            mappings[i] = mapping with { ConnectionInfo = connection, AttachedHost = context.Host };
        }
    }

    /// <summary>Nova's block_device_allocate_retries (60) and its interval (3 s): how long a build waits for a volume being made.</summary>
    private const int VolumePollAttempts = 60;
    private static readonly TimeSpan s_volumePollInterval = TimeSpan.FromSeconds(3);

    /// <summary>
    /// At the agent's start, for a server here with no task: a mapping this host never recorded a connection for (an
    /// attach_volume cut short by the agent's death) is undone as a failed attach is, so its volume is available again; a
    /// volume left detaching goes back to in-use (the guest still has the disk), so the detach can be asked again.
    /// </summary>
    public async Task SettleAfterRestartAsync(Instance instance, CancellationToken ct)
    {
        foreach (var mapping in instance.BlockDevices)
        {
            if (mapping.ConnectionInfo is null && mapping.AttachmentId is { } attachmentId)
            {
                await context.Driver.DetachVolumeAsync(instance.Uuid, mapping.VolumeId, ct);
                await Service.DeleteAttachmentAsync(attachmentId, ct);
                await RemoveMappingAsync(instance, mapping.VolumeId, ct);
            }
            else if (await Service.GetVolumeAsync(mapping.VolumeId, ct) is { Status: "detaching" })
            {
                await Service.RollDetachingAsync(mapping.VolumeId, ct);
            }
        }
    }

    /// <summary>
    /// pre_live_migration on the destination: an attachment of its own for each of the server's volumes, connected from
    /// here (the source keeps its own until the switch-over). Returns the mappings as they are here; a failure deletes the
    /// attachments made so far before it propagates.
    /// </summary>
    public async Task<List<BlockDeviceMapping>> ConnectForIncomingAsync(Instance instance, CancellationToken ct)
    {
        var mappings = new List<BlockDeviceMapping>();
        try
        {
            foreach (var mapping in instance.BlockDevices)
            {
                mappings.Add(await AttachFromHereAsync(instance, mapping, ct));
            }
            return mappings;
        }
        catch
        {
            foreach (var made in mappings)
            {
                await context.TryAsync("delete an attachment", instance.Uuid, () => Service.DeleteAttachmentAsync(made.AttachmentId!, CancellationToken.None));
            }
            throw;
        }
    }

    /// <summary>The guest runs here now (built or migrated in): this host's attachments complete, the volumes are in-use through them.</summary>
    public async Task CompleteAsync(IReadOnlyList<BlockDeviceMapping> mappings, CancellationToken ct)
    {
        foreach (var mapping in mappings.Where(m => m.AttachmentId is not null))
        {
            await Service.CompleteAsync(mapping.AttachmentId!, ct);
        }
    }

    /// <summary>
    /// After the guest left (post_live_migration at the source): the attachments the server's mappings no longer name
    /// (this host's, replaced by the destination's) are deleted.
    /// </summary>
    public async Task DeleteReplacedAsync(Instance before, IReadOnlyList<BlockDeviceMapping>? after, CancellationToken ct)
    {
        if (after is null)
        {
            return;   // the destination connected nothing: the server had no volumes when it prepared
        }
        var kept = after.Select(m => m.AttachmentId).ToHashSet(StringComparer.Ordinal);
        foreach (var mapping in before.BlockDevices.Where(m => m.AttachmentId is not null && !kept.Contains(m.AttachmentId)))
        {
            await Service.DeleteAttachmentAsync(mapping.AttachmentId!, ct);
        }
    }

    /// <summary>
    /// Rollback on the destination: every attachment of the server that its mappings do not name (the ones this host made
    /// in pre_live_migration) is deleted.
    /// </summary>
    public async Task DeleteUnmappedAsync(Instance instance, CancellationToken ct)
    {
        if (instance.BlockDevices.Count == 0)
        {
            return;
        }
        var mapped = instance.BlockDevices.Select(m => m.AttachmentId).ToHashSet(StringComparer.Ordinal);
        foreach (var id in (await Service.ListAttachmentIdsAsync(instance.Uuid, ct)).Where(id => !mapped.Contains(id)))
        {
            await Service.DeleteAttachmentAsync(id, ct);
        }
    }

    /// <summary>
    /// A cold move's host takes the guest (finish_resize, finish_revert_resize, rebuild on the evacuation target): each
    /// volume this host is not attached to yet gets an attachment from here, connected and completed, and the one of the
    /// host the guest left (powered off or dead, so no longer open) is deleted. Returns the mappings as they are here, to
    /// start the guest with and to save with the host switch; mappings already this host's are kept as they are.
    /// </summary>
    public async Task<List<BlockDeviceMapping>> ReconnectHereAsync(Instance instance, CancellationToken ct)
    {
        var mappings = new List<BlockDeviceMapping>();
        foreach (var mapping in instance.BlockDevices)
        {
            if (mapping.AttachedHost == context.Host && mapping.ConnectionInfo is not null)
            {
                mappings.Add(mapping);
                continue;
            }
            var here = await AttachFromHereAsync(instance, mapping, ct);
            await Service.CompleteAsync(here.AttachmentId!, ct);
            if (mapping.AttachmentId is { } old)
            {
                await Service.DeleteAttachmentAsync(old, ct);
            }
            mappings.Add(here);
        }
        return mappings;
    }

    /// <summary>The mapping with a new attachment of its volume for this host, connected; the attachment goes again if the connect fails.</summary>
    private async Task<BlockDeviceMapping> AttachFromHereAsync(Instance instance, BlockDeviceMapping mapping, CancellationToken ct)
    {
        var attachmentId = await Service.CreateAttachmentAsync(mapping.VolumeId, instance.Uuid, null, ct);
        try
        {
            var connection = await Service.ConnectAsync(attachmentId, Connector(mapping.DeviceName), ct);
            return mapping with { AttachmentId = attachmentId, ConnectionInfo = connection, AttachedHost = context.Host };
        }
        catch
        {
            await context.TryAsync("delete an attachment", instance.Uuid, () => Service.DeleteAttachmentAsync(attachmentId, CancellationToken.None));
            throw;
        }
    }

    // One mapping at a time, under the row's lock: an attach of another volume may have landed since this copy was read.
    private Task SaveMappingAsync(Instance instance, BlockDeviceMapping mapping, CancellationToken ct) =>
        context.UpdateInstanceAsync(new InstanceUpdateRequest { Uuid = instance.Uuid, ReplaceBlockDevice = mapping }, ct);

    private Task RemoveMappingAsync(Instance instance, string volumeId, CancellationToken ct) =>
        context.UpdateInstanceAsync(new InstanceUpdateRequest { Uuid = instance.Uuid, RemoveBlockDevice = volumeId }, ct);
}
