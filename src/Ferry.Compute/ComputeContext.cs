using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Networking;
using Ferry.Core.Placement;
using Ferry.Core.Rpc.Compute;
using Ferry.Core.Rpc.Conductor;
using Ferry.Core.Volumes;
using Ferry.Virt;
using Microsoft.Extensions.Logging;

namespace Ferry.Compute;

/// <summary>What every flow class of one compute agent works with.</summary>
public sealed partial class ComputeContext(
    ComputeOptions options,
    IComputeDriver driver,
    ConductorClient conductor,
    ComputeClient compute,
    PlacementHttpClient placement,
    TimeProvider time,
    ILogger logger)
{
    public ComputeOptions Options { get; } = options;
    public string Host => Options.Host;
    public IComputeDriver Driver { get; } = driver;
    public ConductorClient Conductor { get; } = conductor;
    public ComputeClient Compute { get; } = compute;
    public PlacementHttpClient Placement { get; } = placement;
    /// <summary>The network service (ports and their bindings); null when the agent has none, and its servers get no NICs.</summary>
    public NetworkHttpClient? Network { get; init; }

    /// <summary>The servers' ports on this host, through <see cref="Network"/>.</summary>
    public InstanceNetworks Networks => _networks ??= new InstanceNetworks(this);

    private InstanceNetworks? _networks;

    /// <summary>The block storage service (volume attachments); null when the agent has none, and its servers get no volumes.</summary>
    public VolumeHttpClient? Volume { get; init; }

    /// <summary>The servers' volumes on this host, through <see cref="Volume"/>.</summary>
    public InstanceVolumes Volumes => _volumes ??= new InstanceVolumes(this);

    private InstanceVolumes? _volumes;
    public TimeProvider Time { get; } = time;
    public ILogger Logger { get; } = logger;

    /// <summary>This host's compute node (and resource provider) uuid, known after start-up.</summary>
    public string NodeUuid { get; set; } = "";

    public static GuestSpec GuestFor(Instance instance, Flavor? flavor = null)
    {
        var f = flavor ?? instance.Flavor;
        return new GuestSpec
        {
            Uuid = instance.Uuid,
            Name = instance.Name,
            DisplayName = instance.DisplayName,
            ProjectId = instance.ProjectId,
            AvailabilityZone = instance.AvailabilityZone,
            UserData = instance.UserData,
            KeyName = instance.KeyName,
            KeyData = instance.KeyData,
            KeyType = instance.KeyType,
            Vcpus = f.Vcpus,
            MemoryMb = f.MemoryMb,
            RootGb = f.RootGb,
            // A server booted from a volume runs what its root volume was made from.
            ImageRef = instance.ImageRef.Length > 0 ? instance.ImageRef : instance.BlockDevices.FirstOrDefault(b => b.BootIndex == 0)?.ImageId ?? "",
            ConfigDrive = instance.ConfigDrive,
            VolumeBacked = instance.VolumeBacked,
            Metadata = instance.Metadata,
            Vifs = instance.NetworkInfo,
            VifModel = ImageSystemMetadata.Property(instance.SystemMetadata, ImageSystemMetadata.VifModelProperty),
            Volumes = [.. instance.BlockDevices.Where(b => b.ConnectionInfo is not null)
                .Select(b => new GuestVolume(b.VolumeId, b.DeviceName, b.ConnectionInfo!, b.BootIndex))],
        };
    }

    public static PowerState ToPowerState(GuestPowerState state) => (PowerState)(int)state;

    public PowerState PowerStateOf(string uuid) =>
        Driver.GetGuest(uuid) is { } guest ? ToPowerState(guest.PowerState) : PowerState.NoState;

    /// <summary>
    /// Runs one compute step as an instance-action event (Nova's wrap_instance_event + wrap_instance_fault):
    /// start and finish are recorded, and a failure leaves a fault before it propagates.
    /// </summary>
    public Task<T> RunEventAsync<T>(Instance instance, string? requestId, string eventName, Func<Task<T>> step, CancellationToken ct) =>
        RunEventAsync(instance, null, requestId, eventName, step, ct);

    /// <summary>The same, for a step of a move: its log line names the migration too.</summary>
    /// <remarks>
    /// The start is a cast the step does not wait for (Nova waits: a conductor round trip and two durable commits on every
    /// step of a move); the finish stays a call, so the event list is complete when the step's outcome is visible. Both carry
    /// the run's key, which makes the order in which they land irrelevant.
    /// </remarks>
    public async Task<T> RunEventAsync<T>(Instance instance, Migration? migration, string? requestId, string eventName, Func<Task<T>> step, CancellationToken ct)
    {
        var open = new OpenEvent(instance.Uuid, eventName, Guid.NewGuid().ToString("N"), Time.GetUtcNow(), s_openEvents.Value);
        StartEvent(new ActionEventRequest(instance.Uuid, requestId, eventName, Host, false, false, null, Key: open.Key, StartTime: open.StartTime));
        var started = Time.GetTimestamp();
        s_openEvents.Value = open;
        try
        {
            var result = await step();
            await Conductor.RecordActionEventAsync(new ActionEventRequest(instance.Uuid, requestId, eventName, Host, true, false, null,
                Key: open.Key, StartTime: open.StartTime), ct);
            Log.StepDone(Logger, eventName, instance.Uuid, migration?.Uuid ?? "-", Host, (long)Time.GetElapsedTime(started).TotalMilliseconds);
            return result;
        }
        catch (Exception ex) when (ex is not OperationCanceledException and not FaultRecordedException)
        {
            Log.StepFailed(Logger, ex, eventName, instance.Uuid, migration?.Uuid ?? "-", Host, (long)Time.GetElapsedTime(started).TotalMilliseconds, ex.Message);
            await RecordFaultAsync(instance.Uuid, requestId, eventName, ex, ct);
            throw;
        }
        finally
        {
            s_openEvents.Value = open.Outer;
        }
    }

    /// <summary>The events this flow has started and not finished (innermost first): a fault recorded inside one finishes it by its key.</summary>
    private static readonly AsyncLocal<OpenEvent?> s_openEvents = new();

    private sealed record OpenEvent(string InstanceUuid, string Event, string Key, DateTimeOffset StartTime, OpenEvent? Outer);

    private static OpenEvent? FindOpenEvent(string instanceUuid, string eventName)
    {
        for (var e = s_openEvents.Value; e is not null; e = e.Outer)
        {
            if (e.InstanceUuid == instanceUuid && e.Event == eventName)
            {
                return e;
            }
        }
        return null;
    }

    /// <summary>Sends an event's start without waiting for it: if it is lost, the finish records the event whole.</summary>
    private void StartEvent(ActionEventRequest start)
    {
        Task sent;
        try
        {
            sent = Conductor.CastActionEventStartAsync(start, CancellationToken.None);
        }
        catch (Exception ex)
        {
            sent = Task.FromException(ex);
        }
        _ = sent.ContinueWith(t => Log.EventStartNotSent(Logger, t.Exception!.GetBaseException(), start.Event, start.InstanceUuid),
            CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    public Task RunEventAsync(Instance instance, string? requestId, string eventName, Func<Task> step, CancellationToken ct) =>
        RunEventAsync(instance, null, requestId, eventName, step, ct);

    public Task RunEventAsync(Instance instance, Migration? migration, string? requestId, string eventName, Func<Task> step, CancellationToken ct) =>
        RunEventAsync(instance, migration, requestId, eventName, async () =>
        {
            await step();
            return true;
        }, ct);

    /// <summary>Records a fault and a failed event; never throws (it runs on failure paths).</summary>
    public async Task RecordFaultAsync(string instanceUuid, string? requestId, string eventName, Exception ex, CancellationToken ct)
    {
        try
        {
            var code = ex is FerryException f ? f.HttpStatus : 500;
            await Conductor.RecordFaultAsync(new InstanceFaultRequest(instanceUuid, code, ex.Message, Host, code == 500 ? FaultDetails.Describe(ex) : null), ct);
            // Inside the step's own run: its key, so the finish lands on the row its start made (or will make).
            var open = FindOpenEvent(instanceUuid, eventName);
            await Conductor.RecordActionEventAsync(new ActionEventRequest(instanceUuid, requestId, eventName, Host, true, true, ex.Message, FaultDetails.Describe(ex),
                open?.Key, open?.StartTime), ct);
        }
        catch (Exception inner) when (inner is not OperationCanceledException)
        {
            Log.FaultNotRecorded(Logger, inner, instanceUuid);
        }
    }

    /// <summary>Runs a clean-up step on a failure path: logs instead of throwing so the rest of the rollback still runs.</summary>
    public async Task TryAsync(string what, string instanceUuid, Func<Task> step)
    {
        try
        {
            await step();
        }
        catch (Exception ex)
        {
            Log.RollbackStepFailed(Logger, ex, what, instanceUuid);
        }
    }

    public Task<Instance> UpdateInstanceAsync(InstanceUpdateRequest request, CancellationToken ct) => Conductor.UpdateInstanceAsync(request, ct);

    public Task<Migration> SetMigrationStatusAsync(string migrationUuid, string status, CancellationToken ct) =>
        Conductor.UpdateMigrationAsync(new MigrationUpdateRequest { Uuid = migrationUuid, Status = status }, ct);

    private static partial class Log
    {
        [LoggerMessage(EventId = 201, Level = LogLevel.Error, Message = "Could not record a fault for instance {InstanceId}")]
        public static partial void FaultNotRecorded(ILogger logger, Exception ex, string instanceId);

        [LoggerMessage(EventId = 202, Level = LogLevel.Error, Message = "Rollback step {Step} failed for instance {InstanceId}")]
        public static partial void RollbackStepFailed(ILogger logger, Exception ex, string step, string instanceId);
    }
}
