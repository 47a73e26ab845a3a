using System.Security.Cryptography;
using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Networking;
using Ferry.Core.Rpc.Compute;
using Ferry.Core.Rpc.Conductor;
using Ferry.Core.Volumes;
using Microsoft.Extensions.Logging;

namespace Ferry.ControlPlane.Api;

/// <summary>
/// Nova's compute/api.py: for every action the lock and state checks, the compare-and-swap of
/// task_state that makes one of two concurrent requests lose, the instance action, and the cast to
/// the conductor (anything that schedules) or straight to a compute host (confirm, revert, abort,
/// force-complete, start, stop, delete). Policy and body schemas are the endpoints' job.
/// </summary>
internal sealed partial class ComputeApi(
    InstanceStore instances,
    MigrationStore migrations,
    ActionStore actions,
    ServiceStore services,
    ComputeNodeStore nodes,
    ServerGroupStore groups,
    KeyPairStore keypairs,
    NetworkStore networks,
    IPlacementService placement,
    QuotaEngine quotas,
    ConductorClient conductor,
    ComputeClient compute,
    VolumeStore volumes,
    IVolumeBackend volumeBackend,
    CatalogStore catalog,
    ControlPlaneOptions options,
    TimeProvider time,
    ILogger<ComputeApi> logger)
{
    private static readonly TaskState?[] s_noTask = [null];

    /// <summary>Task states during which the instance is being moved (delete must wait for them).</summary>
    private static readonly TaskState[] s_moveTasks =
    [
        TaskState.Migrating, TaskState.ResizePrep, TaskState.ResizeMigrating, TaskState.ResizeMigrated,
        TaskState.ResizeFinish, TaskState.ResizeReverting, TaskState.Rebuilding, TaskState.RebuildSpawning,
    ];

    public ControlPlaneOptions Options => options;

    /// <summary>Nova's common.get_instance: other projects' servers do not exist for non-admins.</summary>
    public async Task<Instance> GetInstanceAsync(RequestContext ctx, string uuid, CancellationToken cancellationToken, bool includeDeleted = false)
    {
        var instance = await instances.FindAsync(uuid, cancellationToken, includeDeleted);
        if (instance is null || (!ctx.IsAdmin && instance.ProjectId != ctx.ProjectId))
        {
            throw new InstanceNotFoundException(uuid);
        }
        return instance;
    }

    /// <summary>servicegroup API is_up for a host's nova-compute; a host without a service row is down.</summary>
    public async Task<bool> IsComputeUpAsync(string? host, CancellationToken cancellationToken)
    {
        if (host is null)
        {
            return false;
        }
        var service = await services.FindAsync(host, "nova-compute", cancellationToken);
        return service is not null && service.IsUp(time.GetUtcNow(), options.ServiceDownTime);
    }

    public bool IsUp(Service service) => service.IsUp(time.GetUtcNow(), options.ServiceDownTime);

    public DateTimeOffset Now => time.GetUtcNow();

    // ---- create / delete -------------------------------------------------------------------------

    public async Task<(Instance Instance, string AdminPass)> CreateAsync(RequestContext ctx, ServerCreateSpec spec, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        ServerGroupRow? group = null;
        if (spec.GroupUuid is { } groupUuid)
        {
            group = await groups.FindAsync(groupUuid, cancellationToken) ?? throw new BadRequestException($"Invalid server group {groupUuid}: Instance group {groupUuid} could not be found.");
        }
        // The key pair is the requesting user's; its public data is copied onto the instance (key_data).
        KeyPairRow? keypair = null;
        if (spec.KeyName is { } keyName)
        {
            keypair = await keypairs.FindAsync(ctx.UserId, keyName, cancellationToken) ?? throw new BadRequestException("Invalid key_name provided.");
        }
        var rootVolumeImageId = await CheckBootVolumesAsync(ctx, spec.BlockDevices, cancellationToken);
        var bootImage = await BootImageAsync(spec, rootVolumeImageId, cancellationToken);
        using var quotaGate = await quotas.EnterCreateAsync(cancellationToken);
        var count = await quotas.CheckCreateAsync(ctx, spec, group, cancellationToken);
        Instance? first = null;
        for (var i = 1; i <= count; i++)
        {
            // Nova's multi_instance_display_name_template "%(name)s-%(count)d" when more than one is asked for.
            var one = await BuildOneAsync(ctx, spec with { Name = spec.MaxCount > 1 ? $"{spec.Name}-{i}" : spec.Name }, bootImage, group, keypair, now, cancellationToken);
            first ??= one;
        }
        return (first!, GeneratePassword());
    }

    private async Task<Instance> BuildOneAsync(RequestContext ctx, ServerCreateSpec spec, Image? bootImage, ServerGroupRow? group, KeyPairRow? keypair,
        DateTimeOffset now, CancellationToken cancellationToken)
    {
        var uuid = Guid.NewGuid().ToString();
        var blockDevices = await ReserveBootVolumesAsync(uuid, spec.BlockDevices, cancellationToken);
        Instance instance;
        try
        {
            instance = await instances.CreateAsync(id => new Instance
            {
                Id = id,
                Uuid = uuid,
                DisplayName = spec.Name,
                ProjectId = ctx.ProjectId,
                UserId = ctx.UserId,
                Flavor = spec.Flavor,
                ImageRef = spec.Image?.Id ?? "",
                VmState = VmState.Building,
                TaskState = TaskState.Scheduling,
                PowerState = PowerState.NoState,
                AvailabilityZone = spec.AvailabilityZone ?? "nova",
                Metadata = spec.Metadata,
                SystemMetadata = bootImage is null ? [] : ImageSystemMetadata.FromImage(bootImage, spec.Flavor),
                ConfigDrive = spec.ConfigDrive,
                VolumeBacked = spec.VolumeBacked,
                KeyName = keypair?.Name,
                KeyData = keypair?.PublicKey,
                KeyType = keypair?.Type,
                UserData = spec.UserData,
                ServerGroupUuid = group?.Uuid,
                SchedulerHints = spec.SchedulerHints,
                RequestedNetworks = spec.RequestedNetworks,
                BlockDevices = blockDevices,
                CreatedAt = now,
                UpdatedAt = now,
            }, cancellationToken);
        }
        catch
        {
            await ReleaseReservationsAsync(blockDevices);
            throw;
        }
        ServerGroupPolicy? policy = null;
        if (group is not null)
        {
            await groups.AddMemberAsync(group.Uuid, uuid, cancellationToken);
            var memberHosts = new List<string>();
            foreach (var member in group.Members.Where(m => m != uuid))
            {
                if ((await instances.FindAsync(member, cancellationToken))?.Host is { } memberHost)
                {
                    memberHosts.Add(memberHost);
                }
            }
            policy = new ServerGroupPolicy
            {
                Uuid = group.Uuid,
                Policy = group.Policy,
                MaxServerPerHost = group.MaxServerPerHost ?? 1,
                MemberHosts = memberHosts,
            };
        }
        var requestSpec = new RequestSpec
        {
            InstanceUuid = uuid,
            ProjectId = ctx.ProjectId,
            UserId = ctx.UserId,
            Flavor = spec.Flavor,
            ImageProperties = bootImage?.Properties ?? [],
            IsBfv = spec.VolumeBacked,
            AvailabilityZone = spec.AvailabilityZone,
            RequestedHost = spec.RequestedHost,
            SchedulerHints = spec.SchedulerHints,
            HintedHosts = await instances.HostsOfHintedInstancesAsync(spec.SchedulerHints, cancellationToken),
            Group = policy,
        };
        await actions.StartActionAsync(uuid, ctx.RequestId, "create", ctx.UserId, ctx.ProjectId, cancellationToken);
        await conductor.BuildInstanceAsync(new BuildInstanceRequest(uuid, requestSpec, ctx.RequestId), cancellationToken);
        Log.Cast(logger, "build_instance", uuid, ctx.RequestId);
        return instance;
    }

    public async Task DeleteAsync(RequestContext ctx, Instance instance, CancellationToken cancellationToken)
    {
        CheckLock(ctx, instance);
        if (instance.TaskState is { } task && s_moveTasks.Contains(task))
        {
            throw InstanceInvalidStateException.For("delete", instance.Uuid, "task_state", task.ToNova());
        }
        var allowed = Enum.GetValues<TaskState>().Where(t => !s_moveTasks.Contains(t)).Cast<TaskState?>().Append(null).ToList();
        if (instance.Host is { } host)
        {
            if (instance.VmState == VmState.Resized
                && (await migrations.ListAsync(new MigrationFilter(InstanceUuid: instance.Uuid, Status: MigrationStatus.Finished), cancellationToken)).FirstOrDefault() is { } resize)
            {
                // Deleting a resized server confirms the resize first (Nova's _confirm_resize_on_deleting),
                // so the source copy and the migration's hold on the source host go too.
                var confirming = await migrations.UpdateAsync(new MigrationUpdateRequest { Uuid = resize.Uuid, Status = MigrationStatus.Confirming, ExpectedStatuses = [MigrationStatus.Finished] },
                    cancellationToken);
                await compute.ConfirmResizeAsync(resize.SourceCompute!, new MigrationRequest(instance, confirming, ctx.RequestId), cancellationToken);
            }
            foreach (var failed in (await migrations.ListAsync(new MigrationFilter(InstanceUuid: instance.Uuid, Status: MigrationStatus.Error), cancellationToken))
                .Where(m => m.MigrationType is MigrationType.Migration or MigrationType.Resize && m.SourceCompute is not null && m.SourceCompute != host))
            {
                // A failed confirm may have left the source copy behind: the source retries removing it.
                await compute.DestroyResizeSourceAsync(failed.SourceCompute!, new MigrationRequest(instance, failed, ctx.RequestId), cancellationToken);
            }
            foreach (var failed in (await migrations.ListAsync(new MigrationFilter(InstanceUuid: instance.Uuid, Status: MigrationStatus.Error), cancellationToken))
                .Where(m => m.MigrationType == MigrationType.LiveMigration && m.DestCompute is not null && m.DestCompute != host))
            {
                // A live migration that failed after the switch to post-copy left a copy and a claim on both hosts.
                await compute.DestroyLiveMigrationDestinationAsync(failed.DestCompute!, new MigrationRequest(instance, failed, ctx.RequestId), cancellationToken);
            }
            if (!await IsComputeUpAsync(host, cancellationToken))
            {
                // Nobody on the host would act on a terminate (an ERROR or stuck BUILD server of a dead or stale
                // host): delete it here and free its claim, as Nova's _local_delete does. A host that comes back
                // destroys the guest of a deleted instance at start-up.
                Log.LocalDelete(logger, host, instance.Uuid, ctx.RequestId);
                await DeleteLocallyAsync(ctx, instance, allowed, cancellationToken);
                return;
            }
            var updated = await instances.UpdateAsync(new InstanceUpdateRequest
            {
                Uuid = instance.Uuid,
                SetTaskState = true,
                TaskState = TaskState.Deleting,
                ExpectedTaskStates = allowed,
            }, cancellationToken);
            await actions.StartActionAsync(instance.Uuid, ctx.RequestId, "delete", ctx.UserId, ctx.ProjectId, cancellationToken);
            await compute.TerminateInstanceAsync(host, new InstanceRequest(updated, ctx.RequestId), cancellationToken);
            Log.Cast(logger, "terminate_instance", instance.Uuid, ctx.RequestId);
            return;
        }
        // Never scheduled to a host: nothing runs anywhere, so the API deletes the row itself (Nova's local delete).
        await DeleteLocallyAsync(ctx, instance, allowed, cancellationToken);
    }

    /// <summary>Marks the row deleted (losing to a move that started meanwhile), then frees its allocations and group seat.</summary>
    private async Task DeleteLocallyAsync(RequestContext ctx, Instance instance, List<TaskState?> allowed, CancellationToken cancellationToken)
    {
        await instances.UpdateAsync(new InstanceUpdateRequest
        {
            Uuid = instance.Uuid,
            Deleted = true,
            SetTaskState = true,
            TaskState = null,
            PowerState = PowerState.NoState,
            ExpectedTaskStates = allowed,
        }, CancellationToken.None); // the row is deleted: what follows frees its resources and must run too
        await actions.StartActionAsync(instance.Uuid, ctx.RequestId, "delete", ctx.UserId, ctx.ProjectId, CancellationToken.None);
        await placement.DeleteAllocationsAsync(instance.Uuid, CancellationToken.None);
        if (instance.ServerGroupUuid is { } groupUuid && await groups.FindAsync(groupUuid, CancellationToken.None) is not null)
        {
            await groups.RemoveMemberAsync(groupUuid, instance.Uuid, CancellationToken.None);
        }
        await ReleasePortsAsync(instance);
        await ReleaseVolumesAsync(instance);
    }

    /// <summary>
    /// No compute host will release the server's ports (it never had one, or its host is down): the ports made for it go,
    /// a port its user gave is unbound and kept (Nova's _local_delete deallocates the network too).
    /// </summary>
    private async Task ReleasePortsAsync(Instance instance)
    {
        var given = instance.RequestedNetworks.Where(r => r.PortId is not null).Select(r => r.PortId!).ToHashSet();
        foreach (var port in await networks.ListPortsAsync(new PortQuery { DeviceIds = [instance.Uuid] }, CancellationToken.None))
        {
            try
            {
                if (given.Contains(port.Port.Id) || instance.NetworkInfo.Any(v => v.Id == port.Port.Id && v.PreserveOnDelete))
                {
                    await networks.UpdatePortAsync(port.Port.Id, p => p with { DeviceId = "", DeviceOwner = "" }, null,
                        new BindingChange("", VifTypes.Unbound, [], port.Port.VnicType, []), CancellationToken.None);
                }
                else
                {
                    await networks.DeletePortAsync(port.Port.Id, CancellationToken.None);
                }
            }
            catch (NeutronException ex) when (ex.HttpStatus == 404)
            {
                // Gone meanwhile (its user deleted it): nothing to release.
            }
        }
    }

    // ---- moves -----------------------------------------------------------------------------------

    public async Task LiveMigrateAsync(RequestContext ctx, Instance instance, string? host, bool? blockMigration, bool force, CancellationToken cancellationToken)
    {
        const string action = "os-migrateLive";
        CheckLock(ctx, instance);
        CheckState(instance, action, [VmState.Active, VmState.Paused], s_noTask);
        if (host is not null && await nodes.FindByHostAsync(host, cancellationToken) is null)
        {
            throw new ComputeHostNotFoundException(host);
        }
        await SetTaskStateAsync(instance, TaskState.Migrating, s_noTask, cancellationToken);
        await actions.StartActionAsync(instance.Uuid, ctx.RequestId, "live-migration", ctx.UserId, ctx.ProjectId, cancellationToken);
        await CastOrUndoAsync(instance, TaskState.Migrating, () => conductor.LiveMigrateInstanceAsync(
            new LiveMigrateInstanceRequest(instance.Uuid, host, blockMigration, force, ctx.RequestId), cancellationToken));
        Log.Cast(logger, "live_migrate_instance", instance.Uuid, ctx.RequestId);
    }

    public async Task MigrateAsync(RequestContext ctx, Instance instance, string? host, CancellationToken cancellationToken)
    {
        const string action = "migrate";
        CheckLock(ctx, instance);
        CheckState(instance, action, [VmState.Active, VmState.Stopped], s_noTask);
        await CheckHostUpAsync(instance, cancellationToken);
        if (host is not null)
        {
            if (await nodes.FindByHostAsync(host, cancellationToken) is null)
            {
                throw new ComputeHostNotFoundException(host);
            }
            if (host == instance.Host)
            {
                throw new CannotMigrateToSameHostException();
            }
        }
        await SetTaskStateAsync(instance, TaskState.ResizePrep, s_noTask, cancellationToken, progress: 0);
        await actions.StartActionAsync(instance.Uuid, ctx.RequestId, "migrate", ctx.UserId, ctx.ProjectId, cancellationToken);
        await CastOrUndoAsync(instance, TaskState.ResizePrep, () => conductor.MigrateServerAsync(new MigrateServerRequest(instance.Uuid, null, host, ctx.RequestId), cancellationToken));
        Log.Cast(logger, "migrate_server", instance.Uuid, ctx.RequestId);
    }

    public async Task ResizeAsync(RequestContext ctx, Instance instance, Flavor newFlavor, CancellationToken cancellationToken)
    {
        const string action = "resize";
        CheckLock(ctx, instance);
        CheckState(instance, action, [VmState.Active, VmState.Stopped], s_noTask);
        await CheckHostUpAsync(instance, cancellationToken);
        if (newFlavor.Id == instance.Flavor.Id)
        {
            throw new CannotResizeToSameFlavorException();
        }
        if (newFlavor.RootGb == 0 && instance.Flavor.RootGb != 0 && !instance.VolumeBacked)
        {
            throw new BadRequestException("Server disk was unable to be resized because: Resize to zero disk flavor is not allowed.");
        }
        await quotas.CheckUpsizeAsync(instance, instance.Flavor, newFlavor, cancellationToken);
        await SetTaskStateAsync(instance, TaskState.ResizePrep, s_noTask, cancellationToken, progress: 0);
        await actions.StartActionAsync(instance.Uuid, ctx.RequestId, "resize", ctx.UserId, ctx.ProjectId, cancellationToken);
        await CastOrUndoAsync(instance, TaskState.ResizePrep,
            () => conductor.MigrateServerAsync(new MigrateServerRequest(instance.Uuid, newFlavor.Id, null, ctx.RequestId), cancellationToken));
        Log.Cast(logger, "migrate_server", instance.Uuid, ctx.RequestId);
    }

    public async Task ConfirmResizeAsync(RequestContext ctx, Instance instance, CancellationToken cancellationToken)
    {
        const string action = "confirmResize";
        CheckLock(ctx, instance);
        CheckState(instance, action, [VmState.Resized], s_noTask);
        var migration = await FinishedMigrationAsync(instance, cancellationToken);
        if (!await IsComputeUpAsync(migration.SourceCompute, cancellationToken))
        {
            throw new ServiceUnavailableException("Service is unavailable at this time.");
        }
        migration = await migrations.UpdateAsync(new MigrationUpdateRequest
        {
            Uuid = migration.Uuid,
            Status = MigrationStatus.Confirming,
            ExpectedStatuses = [MigrationStatus.Finished],
        }, cancellationToken);
        await actions.StartActionAsync(instance.Uuid, ctx.RequestId, "confirmResize", ctx.UserId, ctx.ProjectId, cancellationToken);
        await compute.ConfirmResizeAsync(migration.SourceCompute!, new MigrationRequest(instance, migration, ctx.RequestId), cancellationToken);
        Log.Cast(logger, "confirm_resize", instance.Uuid, ctx.RequestId);
    }

    public async Task RevertResizeAsync(RequestContext ctx, Instance instance, CancellationToken cancellationToken)
    {
        const string action = "revertResize";
        CheckLock(ctx, instance);
        CheckState(instance, action, [VmState.Resized], s_noTask);
        var migration = await FinishedMigrationAsync(instance, cancellationToken);
        await quotas.CheckUpsizeAsync(instance, instance.Flavor, instance.OldFlavor ?? instance.Flavor, cancellationToken);
        var updated = await SetTaskStateAsync(instance, TaskState.ResizeReverting, s_noTask, cancellationToken);
        try
        {
            migration = await migrations.UpdateAsync(new MigrationUpdateRequest
            {
                Uuid = migration.Uuid,
                Status = MigrationStatus.Reverting,
                ExpectedStatuses = [MigrationStatus.Finished],
            }, cancellationToken);
        }
        catch (FerryException)
        {
            await instances.UpdateAsync(new InstanceUpdateRequest
            {
                Uuid = instance.Uuid, SetTaskState = true, TaskState = null, ExpectedTaskStates = [TaskState.ResizeReverting],
            }, CancellationToken.None);
            throw;
        }
        await actions.StartActionAsync(instance.Uuid, ctx.RequestId, "revertResize", ctx.UserId, ctx.ProjectId, cancellationToken);
        await compute.RevertResizeAsync(migration.DestCompute!, new MigrationRequest(updated, migration, ctx.RequestId), cancellationToken);
        Log.Cast(logger, "revert_resize", instance.Uuid, ctx.RequestId);
    }

    /// <summary>
    /// Evacuates off a host whose compute service is down. task_state is not checked (Nova bug 1978983)
    /// except that a second evacuation loses the compare-and-swap to the first. Returns the admin password.
    /// </summary>
    public async Task<string?> EvacuateAsync(RequestContext ctx, Instance instance, string? host, bool force, bool? onSharedStorage, string? adminPass, CancellationToken cancellationToken)
    {
        const string action = "evacuate";
        if (host is not null)
        {
            if (await services.FindAsync(host, "nova-compute", cancellationToken) is null)
            {
                throw new NotFoundException($"Compute host {host} could not be found.");
            }
            if (host == instance.Host)
            {
                throw new BadRequestException("The target host can't be the same one.");
            }
        }
        CheckState(instance, action, [VmState.Active, VmState.Stopped, VmState.Error], taskStates: null);
        if (instance.Host is not { } source)
        {
            throw new ConflictException($"Instance {instance.Uuid} is not ready");
        }
        if (await IsComputeUpAsync(source, cancellationToken))
        {
            throw new ComputeServiceInUseException(source);
        }
        var notEvacuating = Enum.GetValues<TaskState>().Where(t => t != TaskState.Rebuilding).Cast<TaskState?>().Append(null).ToList();
        await SetTaskStateAsync(instance, TaskState.Rebuilding, notEvacuating, cancellationToken);
        var migration = await migrations.CreateAsync(id => new Migration
        {
            Id = id,
            Uuid = Guid.NewGuid().ToString(),
            InstanceUuid = instance.Uuid,
            MigrationType = MigrationType.Evacuation,
            Status = MigrationStatus.Accepted,
            SourceCompute = source,
            SourceNode = instance.Node,
            DestCompute = host,
            UserId = ctx.UserId,
            ProjectId = ctx.ProjectId,
        }, cancellationToken);
        await actions.StartActionAsync(instance.Uuid, ctx.RequestId, "evacuate", ctx.UserId, ctx.ProjectId, cancellationToken);
        await CastOrUndoAsync(instance, TaskState.Rebuilding, () => conductor.EvacuateAsync(
            new EvacuateRequest(instance.Uuid, migration.Uuid, host, force, onSharedStorage, ctx.RequestId), cancellationToken), migration.Uuid);
        Log.Cast(logger, "rebuild_instance", instance.Uuid, ctx.RequestId);
        return onSharedStorage == true ? null : adminPass ?? GeneratePassword();
    }

    // ---- power -----------------------------------------------------------------------------------

    public async Task StartAsync(RequestContext ctx, Instance instance, CancellationToken cancellationToken)
    {
        CheckLock(ctx, instance);
        CheckState(instance, "start", [VmState.Stopped], s_noTask);
        var host = instance.Host ?? throw new ConflictException($"Instance {instance.Uuid} is not ready");
        var updated = await SetTaskStateAsync(instance, TaskState.PoweringOn, s_noTask, cancellationToken);
        await actions.StartActionAsync(instance.Uuid, ctx.RequestId, "start", ctx.UserId, ctx.ProjectId, cancellationToken);
        await compute.StartInstanceAsync(host, new InstanceRequest(updated, ctx.RequestId), cancellationToken);
        Log.Cast(logger, "start_instance", instance.Uuid, ctx.RequestId);
    }

    public async Task StopAsync(RequestContext ctx, Instance instance, CancellationToken cancellationToken)
    {
        CheckLock(ctx, instance);
        CheckState(instance, "stop", [VmState.Active, VmState.Error], s_noTask);
        var host = instance.Host ?? throw new ConflictException($"Instance {instance.Uuid} is not ready");
        var updated = await SetTaskStateAsync(instance, TaskState.PoweringOff, s_noTask, cancellationToken);
        await actions.StartActionAsync(instance.Uuid, ctx.RequestId, "stop", ctx.UserId, ctx.ProjectId, cancellationToken);
        await compute.StopInstanceAsync(host, new InstanceRequest(updated, ctx.RequestId), cancellationToken);
        Log.Cast(logger, "stop_instance", instance.Uuid, ctx.RequestId);
    }

    /// <summary>
    /// reboot (compute/api.py): soft only for an ACTIVE server with no task; hard also from SHUTOFF, PAUSED, SUSPENDED
    /// or ERROR and over a pending soft reboot.
    /// </summary>
    public async Task RebootAsync(RequestContext ctx, Instance instance, bool hard, CancellationToken cancellationToken)
    {
        CheckLock(ctx, instance);
        if (hard)
        {
            CheckState(instance, "reboot", [VmState.Active, VmState.Stopped, VmState.Paused, VmState.Suspended, VmState.Error], [null, TaskState.Rebooting, TaskState.RebootingHard]);
        }
        else
        {
            CheckState(instance, "reboot", [VmState.Active], s_noTask);
        }
        var host = instance.Host ?? throw new ConflictException($"Instance {instance.Uuid} is not ready");
        var updated = await SetTaskStateAsync(instance, hard ? TaskState.RebootingHard : TaskState.Rebooting, hard ? [null, TaskState.Rebooting, TaskState.RebootingHard] : s_noTask, cancellationToken);
        await actions.StartActionAsync(instance.Uuid, ctx.RequestId, "reboot", ctx.UserId, ctx.ProjectId, cancellationToken);
        await compute.RebootInstanceAsync(host, new RebootInstanceRequest(updated, hard, ctx.RequestId), cancellationToken);
        Log.Cast(logger, "reboot_instance", instance.Uuid, ctx.RequestId);
    }

    /// <summary>pause (compute/api.py): an ACTIVE server with no task; the guest stays in memory on its host.</summary>
    public Task PauseAsync(RequestContext ctx, Instance instance, CancellationToken cancellationToken) =>
        CastPowerActionAsync(ctx, instance, "pause", VmState.Active, TaskState.Pausing, compute.PauseInstanceAsync, cancellationToken);

    public Task UnpauseAsync(RequestContext ctx, Instance instance, CancellationToken cancellationToken) =>
        CastPowerActionAsync(ctx, instance, "unpause", VmState.Paused, TaskState.Unpausing, compute.UnpauseInstanceAsync, cancellationToken);

    /// <summary>suspend: an ACTIVE server with no task; its state is saved on its host and the guest stops running.</summary>
    public Task SuspendAsync(RequestContext ctx, Instance instance, CancellationToken cancellationToken) =>
        CastPowerActionAsync(ctx, instance, "suspend", VmState.Active, TaskState.Suspending, compute.SuspendInstanceAsync, cancellationToken);

    public Task ResumeAsync(RequestContext ctx, Instance instance, CancellationToken cancellationToken) =>
        CastPowerActionAsync(ctx, instance, "resume", VmState.Suspended, TaskState.Resuming, compute.ResumeInstanceAsync, cancellationToken);

    /// <summary>Lock and state checks, the task_state compare-and-swap, the instance action (named as the API action) and the cast.</summary>
    private async Task CastPowerActionAsync(RequestContext ctx, Instance instance, string action, VmState from, TaskState task,
        Func<string, InstanceRequest, CancellationToken, Task> cast, CancellationToken cancellationToken)
    {
        CheckLock(ctx, instance);
        CheckState(instance, action, [from], s_noTask);
        var host = instance.Host ?? throw new ConflictException($"Instance {instance.Uuid} is not ready");
        var updated = await SetTaskStateAsync(instance, task, s_noTask, cancellationToken);
        await actions.StartActionAsync(instance.Uuid, ctx.RequestId, action, ctx.UserId, ctx.ProjectId, cancellationToken);
        await cast(host, new InstanceRequest(updated, ctx.RequestId), cancellationToken);
        Log.Cast(logger, $"{action}_instance", instance.Uuid, ctx.RequestId);
    }

    /// <summary>os-getConsoleOutput: the guest's serial log from its host, <paramref name="lines"/> from the end (null = all).</summary>
    public async Task<string> GetConsoleOutputAsync(RequestContext ctx, Instance instance, int? lines, CancellationToken cancellationToken)
    {
        var host = instance.Host ?? throw new ConflictException($"Instance {instance.Uuid} is not ready");
        try
        {
            var reply = await compute.GetConsoleOutputAsync(host, new ConsoleOutputRequest(instance, lines, ctx.RequestId), cancellationToken);
            return reply.Output;
        }
        catch (NotFoundException)
        {
            throw new NotFoundException("Guest does not have a console available.");
        }
    }

    // ---- admin actions ---------------------------------------------------------------------------

    /// <summary>
    /// os-resetState (admin_actions.py): sets vm_state and clears task_state whatever they were, with no
    /// lock or state check, and records the instance action; nothing is sent to a host.
    /// </summary>
    public async Task ResetStateAsync(RequestContext ctx, Instance instance, VmState state, CancellationToken cancellationToken)
    {
        await actions.StartActionAsync(instance.Uuid, ctx.RequestId, "resetState", ctx.UserId, ctx.ProjectId, cancellationToken);
        await instances.UpdateAsync(new InstanceUpdateRequest { Uuid = instance.Uuid, VmState = state, SetTaskState = true, TaskState = null }, cancellationToken);
        Log.ResetState(logger, instance.Uuid, state.ToNova(), ctx.RequestId);
    }

    // ---- server metadata -------------------------------------------------------------------------

    private static readonly VmState[] s_metadataStates = [VmState.Active, VmState.Paused, VmState.Suspended, VmState.Stopped];

    /// <summary>
    /// update_instance_metadata: merges <paramref name="metadata"/> into the server's (or replaces them all), checks
    /// the metadata_items quota on the result, and returns it. No task may be running (the swap expects none).
    /// </summary>
    public async Task<Dictionary<string, string>> UpdateMetadataAsync(RequestContext ctx, Instance instance, Dictionary<string, string> metadata, bool replace,
        CancellationToken cancellationToken)
    {
        CheckLock(ctx, instance);
        CheckState(instance, "update metadata", s_metadataStates, s_noTask);
        var next = replace ? new Dictionary<string, string>(metadata) : new Dictionary<string, string>(instance.Metadata);
        if (!replace)
        {
            foreach (var (key, value) in metadata)
            {
                next[key] = value;
            }
        }
        if (next.Count > 0)
        {
            await quotas.CheckMetadataItemsAsync(ctx.ProjectId, ctx.UserId, next.Count, cancellationToken);
        }
        await instances.UpdateAsync(new InstanceUpdateRequest { Uuid = instance.Uuid, Metadata = next, ExpectedTaskStates = [null] }, cancellationToken);
        return next;
    }

    /// <summary>delete_instance_metadata: the same lock and state checks as an update.</summary>
    public async Task DeleteMetadataKeyAsync(RequestContext ctx, Instance instance, string key, CancellationToken cancellationToken)
    {
        CheckLock(ctx, instance);
        CheckState(instance, "delete metadata", s_metadataStates, s_noTask);
        var next = new Dictionary<string, string>(instance.Metadata);
        next.Remove(key);
        await instances.UpdateAsync(new InstanceUpdateRequest { Uuid = instance.Uuid, Metadata = next, ExpectedTaskStates = [null] }, cancellationToken);
    }

    // ---- in-progress live migrations -------------------------------------------------------------

    public async Task AbortLiveMigrationAsync(RequestContext ctx, Instance instance, string migrationId, CancellationToken cancellationToken)
    {
        CheckLock(ctx, instance);
        CheckState(instance, "abort live migration", vmStates: null, [TaskState.Migrating]);
        var migration = await MigrationOfAsync(instance, migrationId, cancellationToken)
            ?? throw new MigrationNotFoundException($"Migration {migrationId} for instance {instance.Uuid} could not be found.");
        var allowed = ctx.Version.AtLeast(65)
            ? new[] { MigrationStatus.Running, MigrationStatus.Queued, MigrationStatus.Preparing }
            : [MigrationStatus.Running];
        if (!allowed.Contains(migration.Status))
        {
            throw InvalidMigrationState(migration, instance, "abort live migration");
        }
        await actions.StartActionAsync(instance.Uuid, ctx.RequestId, "live_migration_cancel", ctx.UserId, ctx.ProjectId, cancellationToken);
        await compute.LiveMigrationAbortAsync(instance.Host!, new LiveMigrationAbortRequest(instance, migration.Id, ctx.RequestId), cancellationToken);
        Log.Cast(logger, "live_migration_abort", instance.Uuid, ctx.RequestId);
    }

    public async Task ForceCompleteAsync(RequestContext ctx, Instance instance, string migrationId, CancellationToken cancellationToken)
    {
        CheckLock(ctx, instance);
        CheckState(instance, "force_complete", [VmState.Active], [TaskState.Migrating]);
        var migration = await MigrationOfAsync(instance, migrationId, cancellationToken)
            ?? throw new BadRequestException($"Migration {migrationId} for instance {instance.Uuid} could not be found.");
        if (migration.Status != MigrationStatus.Running)
        {
            throw InvalidMigrationState(migration, instance, "force complete");
        }
        await actions.StartActionAsync(instance.Uuid, ctx.RequestId, "live_migration_force_complete", ctx.UserId, ctx.ProjectId, cancellationToken);
        await compute.LiveMigrationForceCompleteAsync(instance.Host!, new InstanceRequest(instance, ctx.RequestId), cancellationToken);
        Log.Cast(logger, "live_migration_force_complete", instance.Uuid, ctx.RequestId);
    }

    // ---- helpers ---------------------------------------------------------------------------------

    private async Task<Migration?> MigrationOfAsync(Instance instance, string migrationId, CancellationToken cancellationToken) =>
        int.TryParse(migrationId, out var id) && await migrations.FindByIdAsync(id, cancellationToken) is { } m && m.InstanceUuid == instance.Uuid ? m : null;

    private static InvalidMigrationStateException InvalidMigrationState(Migration migration, Instance instance, string method) =>
        new($"Migration {migration.Id} state of instance {instance.Uuid} is {migration.Status}. Cannot {method} while the migration is in this state.");

    private async Task<Migration> FinishedMigrationAsync(Instance instance, CancellationToken cancellationToken) =>
        (await migrations.ListAsync(new MigrationFilter(InstanceUuid: instance.Uuid, Status: MigrationStatus.Finished), cancellationToken)).FirstOrDefault()
        ?? throw new BadRequestException("Instance has not been resized.");

    private static void CheckLock(RequestContext ctx, Instance instance)
    {
        if (instance.Locked && !ctx.IsAdmin)
        {
            throw new InstanceIsLockedException(instance.Uuid);
        }
    }

    /// <summary>Nova's check_instance_state with must_have_launched=True; a null set means "any".</summary>
    private static void CheckState(Instance instance, string action, VmState[]? vmStates, TaskState?[]? taskStates)
    {
        if (vmStates is not null && !vmStates.Contains(instance.VmState))
        {
            throw InstanceInvalidStateException.For(action, instance.Uuid, "vm_state", instance.VmState.ToNova());
        }
        if (taskStates is not null && !taskStates.Contains(instance.TaskState))
        {
            throw InstanceInvalidStateException.For(action, instance.Uuid, "task_state", instance.TaskState.ToNova());
        }
        if (instance.LaunchedAt is null)
        {
            throw InstanceInvalidStateException.For(action, instance.Uuid, "launched_at", null);
        }
    }

    /// <summary>check_instance_host(check_is_up=True): the source must have a host whose compute is up (bug 1856925).</summary>
    private async Task CheckHostUpAsync(Instance instance, CancellationToken cancellationToken)
    {
        if (instance.Host is null)
        {
            throw new ConflictException($"Instance {instance.Uuid} is not ready");
        }
        if (!await IsComputeUpAsync(instance.Host, cancellationToken))
        {
            throw new ServiceUnavailableException("Service is unavailable at this time.");
        }
    }

    /// <summary>
    /// Casts a move to the conductor. When the bus cannot take it (the broker is down: nothing was sent), the move never
    /// started: the task_state this request set is taken back (and its migration record, if any, ends in error) before
    /// the 503 reaches the caller, so the server is not left stuck in a move no one runs.
    /// </summary>
    private async Task CastOrUndoAsync(Instance instance, TaskState task, Func<Task> cast, string? migrationUuid = null)
    {
        try
        {
            await cast();
        }
        catch (RpcUnavailableException)
        {
            // The undo must land whatever became of the request: the server would stay in a move no one runs.
            await instances.UpdateAsync(new InstanceUpdateRequest { Uuid = instance.Uuid, SetTaskState = true, TaskState = null, ExpectedTaskStates = [task] }, CancellationToken.None);
            if (migrationUuid is not null)
            {
                await migrations.UpdateAsync(new MigrationUpdateRequest { Uuid = migrationUuid, Status = MigrationStatus.Error }, CancellationToken.None);
            }
            throw;
        }
    }

    private Task<Instance> SetTaskStateAsync(Instance instance, TaskState task, IEnumerable<TaskState?> expected, CancellationToken cancellationToken, int? progress = null) =>
        instances.UpdateAsync(new InstanceUpdateRequest
        {
            Uuid = instance.Uuid,
            SetTaskState = true,
            TaskState = task,
            Progress = progress,
            ExpectedTaskStates = expected.ToList(),
        }, cancellationToken);

    /// <summary>A random admin password like Nova's utils.generate_password (12 characters).</summary>
    public static string GeneratePassword() =>
        RandomNumberGenerator.GetString("23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz", 12);
}
