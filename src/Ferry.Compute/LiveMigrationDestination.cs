using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Rpc.Compute;
using Ferry.Core.Rpc.Conductor;

namespace Ferry.Compute;

/// <summary>The destination's part of a live migration (KubeVirt's migration-target; Nova's *_destination steps).</summary>
public sealed class LiveMigrationDestination(ComputeContext context)
{
    /// <summary>
    /// Creates the shared-storage test file, asks the source what it sees (a nested call: the
    /// conductor is waiting on us meanwhile), and removes the file whatever happens.
    /// </summary>
    public Task<LiveMigrateData> CheckCanLiveMigrateDestinationAsync(CheckCanLiveMigrateDestinationRequest request, CancellationToken ct) =>
        context.RunEventAsync(request.Instance, request.Migration, request.RequestId, "compute_check_can_live_migrate_destination", async () =>
        {
            var testFile = context.Driver.CreateSharedStorageTestFile();
            try
            {
                var data = new LiveMigrateData
                {
                    BlockMigration = request.BlockMigration,
                    SharedStorageTestFile = testFile,
                    DestHost = context.Host,
                    DestAddress = context.Options.InboundAddress,
                    DiskAvailableMb = (long)context.Driver.GetHostResources().LocalGb * 1024,
                };
                return await context.Compute.CheckCanLiveMigrateSourceAsync(request.SourceHost,
                    new CheckCanLiveMigrateSourceRequest(request.Instance, data, request.RequestId), ct);
            }
            finally
            {
                context.Driver.CleanupSharedStorageTestFile(testFile);
            }
        }, ct);

    public Task<LiveMigrateData> PreLiveMigrationAsync(PreLiveMigrationRequest request, CancellationToken ct) =>
        context.RunEventAsync(request.Instance, request.Migration, request.RequestId, "compute_pre_live_migration", async () =>
        {
            // Inactive bindings for this host first (Nova's conductor binds them before pre_live_migration), so the
            // destination's VIFs are plugged from them; activated at switch-over by the source.
            await context.Networks.BindInactiveAsync(request.Instance, context.Host, ct);
            List<BlockDeviceMapping> volumes = [];
            try
            {
                // This host's own attachments and connections to the volumes (both QEMUs open the same exports).
                volumes = await context.Volumes.ConnectForIncomingAsync(request.Instance, ct);
                var uri = await context.Driver.PreLiveMigrationAsync(ComputeContext.GuestFor(request.Instance with { BlockDevices = volumes }),
                    request.Data.IsSharedInstancePath, request.Data.BlockMigration ?? false, request.Data.ParallelConnections, ct);
                return request.Data with { IncomingUri = uri, DestinationVolumes = volumes.Count > 0 ? volumes : null };
            }
            catch (Exception) when (request.Instance.NetworkInfo.Count > 0 || volumes.Count > 0)
            {
                await context.TryAsync("delete port bindings", request.Instance.Uuid, () => context.Networks.DeleteBindingsAsync(request.Instance, context.Host, CancellationToken.None));
                await context.TryAsync("delete volume attachments", request.Instance.Uuid, () => context.Volumes.DeleteUnmappedAsync(request.Instance, CancellationToken.None));
                throw;
            }
        }, ct);

    /// <summary>The guest now runs here: make it so in the database (host switches at this moment, as in Nova).</summary>
    public Task PostLiveMigrationAtDestinationAsync(PostLiveMigrationAtDestinationRequest request, CancellationToken ct) =>
        context.RunEventAsync(request.Instance, request.Migration, request.RequestId, "compute_post_live_migration_at_destination", async () =>
        {
            var instance = request.Volumes is { } volumes ? request.Instance with { BlockDevices = volumes } : request.Instance;
            await context.Driver.PostLiveMigrationAtDestinationAsync(ComputeContext.GuestFor(instance), ct);
            if (request.Volumes is { } incoming)
            {
                await context.Volumes.CompleteAsync(incoming, ct);
            }
            if (request.Instance.VmState == VmState.Paused && context.Driver.GetGuest(request.Instance.Uuid) is { PowerState: Virt.GuestPowerState.Running })
            {
                // A paused server stays paused where it lands, as libvirt keeps a paused domain paused (QEMU does by itself).
                await context.Driver.PauseAsync(request.Instance.Uuid, ct);
            }
            await context.UpdateInstanceAsync(new InstanceUpdateRequest
            {
                Uuid = request.Instance.Uuid,
                Host = context.Host,
                Node = request.Migration.DestNode ?? context.Host,
                PowerState = context.PowerStateOf(request.Instance.Uuid),
                SetTaskState = true,
                TaskState = null,
                Progress = 0,
                BlockDevices = request.Volumes,
                ExpectedTaskStates = [TaskState.Migrating],
            }, ct);
        }, ct);

    /// <summary>The post-copy stream broke: the guest runs here frozen on missing pages until the source resumes sending them.</summary>
    public Task<RecoverPostCopyReply> RecoverPostCopyAtDestinationAsync(RecoverPostCopyAtDestinationRequest request, CancellationToken ct) =>
        context.RunEventAsync(request.Instance, request.Migration, request.RequestId, "compute_recover_post_copy_at_destination", async () =>
            new RecoverPostCopyReply(await context.Driver.RecoverPostCopyAtDestinationAsync(request.Instance.Uuid, ct)), ct);

    /// <summary>Drops the incoming copy; tells the source when its hypervisor process had died on its own (QEMU's last words go in the fault).</summary>
    public Task<RollbackLiveMigrationAtDestinationReply> RollbackLiveMigrationAtDestinationAsync(RollbackLiveMigrationAtDestinationRequest request, CancellationToken ct) =>
        context.RunEventAsync(request.Instance, request.Migration, request.RequestId, "compute_rollback_live_migration_at_destination", async () =>
        {
            // Read before the rollback deletes the incoming copy's files (its qemu.log with them).
            var exit = await context.Driver.GuestExitReportAsync(request.Instance.Uuid, ct);
            await context.Driver.RollbackLiveMigrationAtDestinationAsync(ComputeContext.GuestFor(request.Instance), request.DestroyDisks, ct);
            await context.Networks.DeleteBindingsAsync(request.Instance, context.Host, ct);
            await context.Volumes.DeleteUnmappedAsync(request.Instance, ct);
            return new RollbackLiveMigrationAtDestinationReply(exit?.Message, exit?.Details);
        }, ct);

    /// <summary>
    /// The server is being deleted after a live migration that ended in error, possibly after the switch to
    /// post-copy, when both hosts keep a copy and a claim: drop the copy here and the migration's claim on the source
    /// (the source's terminate drops the instance's own). Harmless when the rollback already did both.
    /// </summary>
    public Task DestroyLiveMigrationDestinationAsync(MigrationRequest request, CancellationToken ct) =>
        context.RunEventAsync(request.Instance, request.Migration, request.RequestId, "compute_destroy_live_migration_destination", async () =>
        {
            await context.Driver.RollbackLiveMigrationAtDestinationAsync(ComputeContext.GuestFor(request.Instance), destroyDisks: true, ct);
            await context.Placement.DeleteAllocationsAsync(request.Migration.Uuid, ct);
        }, ct);

    /// <summary>Source's shared-storage question about an instance's files (evacuation clean-up).</summary>
    public Task<BoolReply> CheckInstanceSharedStorageAsync(CheckInstanceSharedStorageRequest request, CancellationToken ct) =>
        Task.FromResult(new BoolReply(context.Driver.CheckSharedStorageTestFile(request.Filename)));
}

/// <summary>The source's answers to the destination's check (Nova's check_can_live_migrate_source).</summary>
public static class LiveMigrationChecks
{
    /// <summary>
    /// Decides block vs shared migration. A config drive is a local disk even for a volume-backed
    /// instance, so such an instance is NOT treated as shared block storage (the bug of seed 004 is
    /// Nova refusing both modes; here it simply needs block migration, which copies the config drive).
    /// </summary>
    public static LiveMigrateData Decide(ComputeContext context, Instance instance, LiveMigrateData data)
    {
        var sharedPath = data.SharedStorageTestFile is { } file && context.Driver.CheckSharedStorageTestFile(file);
        var sharedBlock = sharedPath || !context.Driver.HasLocalDisks(ComputeContext.GuestFor(instance));
        var block = data.BlockMigration ?? !(sharedBlock || sharedPath);
        if (block && sharedPath)
        {
            throw new InvalidLocalStorageException(instance.Uuid, "Block migration can not be used with shared storage.");
        }
        if (!block && !sharedBlock && !sharedPath)
        {
            throw new InvalidSharedStorageException(instance.Uuid,
                "Shared storage live-migration requires either shared storage or boot-from-volume with no local disks.");
        }
        if (block)
        {
            var needMb = (long)instance.Flavor.LocalDiskGb(instance.VolumeBacked) * 1024;
            if (needMb > data.DiskAvailableMb)
            {
                throw new MigrationPreCheckException(
                    $"Unable to migrate {instance.Uuid}: Disk of instance is too large(available on destination host:{data.DiskAvailableMb} < need:{needMb})");
            }
        }
        return data with { BlockMigration = block, IsSharedInstancePath = sharedPath, IsSharedBlockStorage = sharedBlock };
    }
}
