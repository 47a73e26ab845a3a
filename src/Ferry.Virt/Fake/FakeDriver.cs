using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using Ferry.Core.Errors;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ferry.Virt.Fake;

/// <summary>
/// A first-class in-memory hypervisor (nova/virt/fake.py, made honest). Guests are records in a
/// <see cref="FakeHypervisorState"/>, but their files are real: <c>&lt;InstancesPath&gt;/&lt;uuid&gt;/disk</c>
/// (a small JSON descriptor, never the real size), <c>console.log</c> and <c>disk.config</c>, so shared
/// storage, evacuation and resize file moves behave as on a real host. Live migration runs the pre-copy
/// model of docs/reference/live-migration.md §1 on a simulated clock scaled by <see cref="FakeDriverOptions.TimeScale"/>.
/// </summary>
/// <remarks>
/// Block migration copies the root disk as <c>RootGb / 64</c> GiB (<see cref="DiskScaleDivisor"/>): the fake
/// disk is thin and only that fraction counts as allocated. It keeps numbers sane (a 20 GiB flavor copies
/// 320 MiB, not 20 GiB) while disk size still matters. A config drive is written again on the destination, as the
/// QEMU driver does, so it copies nothing.
/// </remarks>
public sealed partial class FakeDriver : IComputeDriver
{
    public const string DirtyRateMetadataKey = "ferry:dirty_rate_mibps";

    /// <summary>Divisor applied to RootGb to get the bytes a block migration copies.</summary>
    public const int DiskScaleDivisor = 64;

    /// <summary>The directory under the instances path that holds each host's guest definitions; never an instance.</summary>
    public const string RuntimeDirectoryName = "_run";

    /// <summary>Round cap when <see cref="FakeDriverOptions.TimeScale"/> is 0 and nothing else ends the copy.</summary>
    public const int MaxRoundsWithoutTime = 10_000;

    private const double MiB = 1024d * 1024d;
    private const double GiB = 1024d * MiB;
    private const double AutoConvergeStep = 0.2;
    private const double AutoConvergeMax = 0.99;

    /// <summary>The pages a post-copy migration still sends cross in this many chunks; the stream may break before each.</summary>
    private const int PostCopyChunks = 4;

    private readonly FakeDriverOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, MigrationControl> _migrations = new(StringComparer.Ordinal);

    public FakeDriver(
        FakeDriverOptions options,
        FakeHypervisorState? state = null,
        TimeProvider? timeProvider = null,
        ILogger<FakeDriver>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.InstancesPath);
        ArgumentOutOfRangeException.ThrowIfNegative(options.TimeScale);
        ArgumentOutOfRangeException.ThrowIfNegative(options.LinkBandwidthMiBps);
        _options = options;
        _timeProvider = timeProvider ?? TimeProvider.System;
        _logger = logger ?? NullLogger<FakeDriver>.Instance;
        State = state ?? new FakeHypervisorState();
        State.Attach(RunDirectory);
        Faults = new FakeFaultInjector(_timeProvider);
    }

    public string HypervisorType => _options.HypervisorType;

    public FakeDriverOptions Options => _options;

    public FakeHypervisorState State { get; }

    public FakeFaultInjector Faults { get; }

    /// <summary>
    /// This host's guest definitions (<see cref="FakeHypervisorState"/>): per host even on shared storage, as
    /// the QEMU driver's <c>_run/&lt;host&gt;</c>, so hosts sharing an instances path never adopt each other's guests.
    /// </summary>
    public string RunDirectory => Path.Combine(_options.InstancesPath, RuntimeDirectoryName, ValidSegment(_options.HostName));

    /// <summary>Where the guest's files live on this host.</summary>
    public string InstanceDirectory(string uuid) => Path.Combine(_options.InstancesPath, ValidSegment(uuid));

    /// <summary>Where migrate_disk_and_power_off keeps the source copy until confirm or revert.</summary>
    public string ResizeDirectory(string uuid) => InstanceDirectory(uuid) + "_resize";

    /// <summary>True while a live migration of the guest runs from this host.</summary>
    public bool IsMigrating(string uuid) => _migrations.ContainsKey(uuid);

    public Task<IReadOnlyList<GuestInfo>> InitHostAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(_options.InstancesPath);
        var guests = ListGuests();
        LogHostInitialized(_options.HostName, guests.Count);
        return Task.FromResult(guests);
    }

    public HostResources GetHostResources() => new()
    {
        HypervisorType = HypervisorType,
        HypervisorVersion = _options.HypervisorVersion,
        Vcpus = _options.Vcpus,
        MemoryMb = _options.MemoryMb,
        LocalGb = _options.LocalGb,
        CpuModel = _options.CpuModel,
        CpuFeatures = _options.CpuFeatures,
    };

    public event Action<string>? GuestStopped;

    public GuestInfo? GetGuest(string uuid) =>
        State.Guests.TryGetValue(uuid, out var guest) ? guest.ToInfo()
        : State.ResizeSources.TryGetValue(uuid, out var source) ? source.ToInfo()
        : null;

    /// <summary>
    /// The host's tap devices, as a real host's would be: one per VIF of every guest defined here (a running guest, or
    /// one coming in by live migration: plugged in spawn, pre_live_migration and finish_migration; unplugged by destroy,
    /// post-migration at the source, rollback, and migrate_disk_and_power_off, whose kept copy has none).
    /// </summary>
    public IReadOnlyList<FakeTap> TapDevices() =>
        [.. State.Guests.Values.SelectMany(g => g.Spec.Vifs.Select(v => new FakeTap(v.DeviceName, v.Id, v.MacAddress, g.Uuid, VifModels.Resolve(g.Spec.VifModel))))
            .OrderBy(t => t.Name, StringComparer.Ordinal)];

    /// <summary>
    /// The volume connections this host holds: one per volume of every guest defined here (incoming ones too), as the
    /// taps are; a connection made in pre_live_migration or finish_migration, gone with the guest's definition.
    /// </summary>
    public IReadOnlyList<FakeVolumeConnection> VolumeConnections() =>
        [.. State.Guests.Values.SelectMany(g => g.Spec.Volumes.Select(v => new FakeVolumeConnection(g.Uuid, v.VolumeId, v.DeviceName, v.Connection.Export)))
            .OrderBy(c => c.GuestUuid, StringComparer.Ordinal).ThenBy(c => c.DeviceName, StringComparer.Ordinal)];

    public async Task AttachVolumeAsync(string uuid, GuestVolume volume, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(volume);
        await Faults.CheckAsync(FakeSteps.AttachVolume, cancellationToken);
        if (!State.TryUpdate(uuid, g => g with { Spec = g.Spec with { Volumes = [.. g.Spec.Volumes.Where(v => v.VolumeId != volume.VolumeId), volume] } }))
        {
            throw new InstanceNotFoundException(uuid);
        }
    }

    public async Task DetachVolumeAsync(string uuid, string volumeId, CancellationToken cancellationToken)
    {
        await Faults.CheckAsync(FakeSteps.DetachVolume, cancellationToken);
        if (!State.TryUpdate(uuid, g => g with { Spec = g.Spec with { Volumes = [.. g.Spec.Volumes.Where(v => v.VolumeId != volumeId)] } }))
        {
            throw new InstanceNotFoundException(uuid);
        }
    }

    public IReadOnlyList<GuestInfo> ListGuests()
    {
        var guests = State.Guests.Values.Select(g => g.ToInfo()).ToList();
        guests.AddRange(State.ResizeSources.Values
            .Where(s => !State.Guests.ContainsKey(s.Uuid))
            .Select(s => s.ToInfo()));
        return guests;
    }

    public async Task SpawnAsync(GuestSpec guest, bool reuseDisks, CancellationToken cancellationToken)
    {
        await Faults.CheckAsync(FakeSteps.Spawn, cancellationToken);
        VifModels.Resolve(guest.VifModel);     // what the QEMU driver refuses, a fake host refuses too
        var dir = InstanceDirectory(guest.Uuid);
        var record = new FakeGuest(guest.Uuid, GuestPowerState.Running, guest.MemoryMb, guest);
        if (!State.Guests.TryAdd(guest.Uuid, record))
        {
            throw new ConflictException($"Guest {guest.Uuid} is already defined on {_options.HostName}.");
        }
        try
        {
            Directory.CreateDirectory(dir);
            await WriteGuestFilesAsync(guest, dir, overwrite: !reuseDisks, cancellationToken);
            await AppendConsoleAsync(dir, $"spawned on {_options.HostName}", cancellationToken);
        }
        catch
        {
            State.Guests.TryRemove(guest.Uuid, out _);
            throw;
        }
        LogSpawned(guest.Uuid, _options.HostName, reuseDisks);
        FakeCrashPoint.After(FakeSteps.Spawn);
    }

    public async Task DestroyAsync(string uuid, bool destroyDisks, CancellationToken cancellationToken)
    {
        await Faults.CheckAsync(FakeSteps.Destroy, cancellationToken);
        if (_migrations.TryGetValue(uuid, out var migration))
        {
            migration.TryAbort();
        }
        if (!State.Guests.TryRemove(uuid, out _) && State.ResizeSources.TryRemove(uuid, out _) && destroyDisks)
        {
            // Only the kept source copy of a resize was defined here (its confirm failed, or the guest moved on):
            // destroying it removes it with its files, as libvirt's delete_instance_files takes <uuid>_resize too.
            DeleteDirectory(ResizeDirectory(uuid));
        }
        if (destroyDisks)
        {
            DeleteDirectory(InstanceDirectory(uuid));
        }
        LogDestroyed(uuid, _options.HostName, destroyDisks);
        FakeCrashPoint.After(FakeSteps.Destroy);
    }

    public async Task PowerOffAsync(string uuid, CancellationToken cancellationToken)
    {
        await Faults.CheckAsync(FakeSteps.PowerOff, cancellationToken);
        SetPowerState(uuid, GuestPowerState.Shutdown);
        FakeCrashPoint.After(FakeSteps.PowerOff);
    }

    public async Task PowerOnAsync(string uuid, CancellationToken cancellationToken)
    {
        await Faults.CheckAsync(FakeSteps.PowerOn, cancellationToken);
        SetPowerState(uuid, GuestPowerState.Running);
        FakeCrashPoint.After(FakeSteps.PowerOn);
    }

    public async Task RebootAsync(string uuid, bool hard, CancellationToken cancellationToken)
    {
        await Faults.CheckAsync(FakeSteps.Reboot, cancellationToken);
        SetPowerState(uuid, GuestPowerState.Running);
        await AppendConsoleAsync(InstanceDirectory(uuid), $"rebooted ({(hard ? "hard" : "soft")}) on {_options.HostName}", cancellationToken);
    }

    public Task<string> GetConsoleOutputAsync(string uuid, CancellationToken cancellationToken) =>
        State.Guests.ContainsKey(uuid)
            ? ConsoleLog.ReadTailAsync(Path.Combine(InstanceDirectory(uuid), "console.log"), cancellationToken)
            : throw new NotFoundException($"Guest {uuid} is not defined on {_options.HostName}.");

    // --- shared storage detection ---

    public string CreateSharedStorageTestFile()
    {
        Directory.CreateDirectory(_options.InstancesPath);
        var name = $"ferry-shared-{Guid.NewGuid():N}.tmp";
        File.WriteAllText(Path.Combine(_options.InstancesPath, name), _options.HostName);
        return name;
    }

    public bool CheckSharedStorageTestFile(string filename) =>
        IsPlainFileName(filename) && File.Exists(Path.Combine(_options.InstancesPath, filename));

    public void CleanupSharedStorageTestFile(string filename)
    {
        if (IsPlainFileName(filename))
        {
            File.Delete(Path.Combine(_options.InstancesPath, filename));
        }
    }

    public bool InstanceOnDisk(string uuid) => Directory.Exists(InstanceDirectory(uuid));

    /// <summary>
    /// A config drive is a local disk even for a volume-backed guest: Nova once treated such a guest as
    /// having no local disks, so its config drive was never copied and the migration broke it.
    /// </summary>
    public bool HasLocalDisks(GuestSpec guest) => !guest.VolumeBacked;

    // --- live migration: destination side ---

    /// <remarks>The simulated link is one pipe: <paramref name="parallelConnections"/> changes nothing here.</remarks>
    public async Task<string> PreLiveMigrationAsync(GuestSpec guest, bool sharedInstancePath, bool blockMigration, int parallelConnections, CancellationToken cancellationToken)
    {
        await Faults.CheckAsync(FakeSteps.PreLiveMigration, cancellationToken);
        var dir = InstanceDirectory(guest.Uuid);
        if (!sharedInstancePath && Directory.Exists(dir))
        {
            throw new DestinationDiskExistsException(dir);
        }
        var record = new FakeGuest(guest.Uuid, GuestPowerState.Paused, guest.MemoryMb, guest) { Incoming = true };
        if (!State.Guests.TryAdd(guest.Uuid, record))
        {
            throw new InvalidMigrationStateException($"Guest {guest.Uuid} is already defined on {_options.HostName}.");
        }
        if (!sharedInstancePath)
        {
            try
            {
                Directory.CreateDirectory(dir);
                // The block copy fills these in; without it the disks are remote (volumes) or the
                // config drive is copied ahead, as nova's pre_live_migration does.
                await WriteGuestFilesAsync(guest, dir, overwrite: true, cancellationToken);
            }
            catch
            {
                State.Guests.TryRemove(guest.Uuid, out _);
                DeleteDirectory(dir);
                throw;
            }
        }
        FakeCrashPoint.After(FakeSteps.PreLiveMigration);
        return $"fake://{_options.HostName}/{guest.Uuid}?address={_options.MigrationAddress}";
    }

    public async Task PostLiveMigrationAtDestinationAsync(GuestSpec guest, CancellationToken cancellationToken)
    {
        await Faults.CheckAsync(FakeSteps.PostLiveMigrationAtDestination, cancellationToken);
        if (!State.TryUpdate(guest.Uuid, g => g with { PowerState = GuestPowerState.Running, Incoming = false, Spec = guest }))
        {
            throw new InstanceNotFoundException(guest.Uuid);
        }
        await AppendConsoleAsync(InstanceDirectory(guest.Uuid), $"resumed on {_options.HostName} after live migration", cancellationToken);
        FakeCrashPoint.After(FakeSteps.PostLiveMigrationAtDestination);
    }

    public async Task<string> RecoverPostCopyAtDestinationAsync(string uuid, CancellationToken cancellationToken)
    {
        await Faults.CheckAsync(FakeSteps.RecoverPostCopyAtDestination, cancellationToken);
        // Counted on the record itself, so a repeated update (a lost race) recounts from the winner.
        var recoveries = 0;
        var incoming = false;
        var present = State.TryUpdate(uuid, g =>
        {
            incoming = g.Incoming;
            recoveries = g.PostCopyRecoveries + 1;
            return incoming ? g with { PostCopyRecoveries = recoveries } : g;
        });
        if (!present || !incoming)
        {
            throw new InvalidMigrationStateException($"No post-copy migration of {uuid} waits on {_options.HostName}.");
        }
        var uri = string.Create(CultureInfo.InvariantCulture, $"fake://{_options.HostName}/{uuid}?resume={recoveries}");
        LogPostCopyRecoverListening(uuid, _options.HostName, uri);
        return uri;
    }

    public async Task RollbackLiveMigrationAtDestinationAsync(GuestSpec guest, bool destroyDisks, CancellationToken cancellationToken)
    {
        await Faults.CheckAsync(FakeSteps.RollbackLiveMigrationAtDestination, cancellationToken);
        // A guest pre_live_migration never defined here (it refused over files already here) has no files of this attempt.
        if (State.Guests.TryRemove(guest.Uuid, out _) && destroyDisks)
        {
            DeleteDirectory(InstanceDirectory(guest.Uuid));
        }
        FakeCrashPoint.After(FakeSteps.RollbackLiveMigrationAtDestination);
    }

    // --- live migration: source side ---

    public async Task<LiveMigrationOutcome> LiveMigrateAsync(GuestSpec guest, LiveMigrationPlan plan, IDriverCallbacks callbacks, CancellationToken cancellationToken)
    {
        await Faults.CheckAsync(FakeSteps.LiveMigration, cancellationToken);
        if (!State.Guests.TryGetValue(guest.Uuid, out var source))
        {
            throw new InstanceNotFoundException(guest.Uuid);
        }
        var migration = new MigrationControl();
        if (!_migrations.TryAdd(guest.Uuid, migration))
        {
            throw new InvalidMigrationStateException($"A live migration of {guest.Uuid} is already running on {_options.HostName}.");
        }
        // As QEMU would: the stream goes where the destination said it listens, which must be its inbound address.
        if (plan.DestAddress is { } expected && IncomingAddress(plan.IncomingUri) is { } listening && listening != expected)
        {
            _migrations.TryRemove(guest.Uuid, out _);
            throw new InvalidMigrationStateException(
                $"The destination {plan.DestHost} listens on {listening}, not on its live_migration_inbound_addr {expected}.");
        }
        var originalPowerState = source.PowerState;
        var outcome = LiveMigrationOutcome.Failed;
        LogMigrationStarted(guest.Uuid, _options.HostName, plan.DestHost, plan.MigrationUuid);
        try
        {
            outcome = await RunPreCopyAsync(guest, plan, callbacks, migration, cancellationToken);
            return outcome;
        }
        finally
        {
            migration.Finish();
            _migrations.TryRemove(guest.Uuid, out _);
            // Never two running copies: a completed source stays paused until post_live_migration_at_source, and so
            // does one whose post-copy stream could not be resumed (the destination runs the guest, part of its
            // memory is only here); anything else leaves the guest as it was (unpaused if force-complete paused it).
            var final = outcome == LiveMigrationOutcome.Completed || migration.PostCopy ? GuestPowerState.Paused : originalPowerState;
            State.TryUpdate(guest.Uuid, g => g with { PowerState = final });
            LogMigrationFinished(guest.Uuid, plan.MigrationUuid, outcome);
            FakeCrashPoint.After(FakeSteps.LiveMigration);
        }
    }

    /// <summary>The <c>address</c> an incoming URI of <see cref="PreLiveMigrationAsync"/> names; null for any other URI.</summary>
    internal static string? IncomingAddress(string? uri)
    {
        if (!Uri.TryCreate(uri, UriKind.Absolute, out var parsed) || parsed.Scheme != "fake")
        {
            return null;
        }
        foreach (var pair in parsed.Query.TrimStart('?').Split('&'))
        {
            if (pair.StartsWith("address=", StringComparison.Ordinal))
            {
                return Uri.UnescapeDataString(pair["address=".Length..]);
            }
        }
        return null;
    }

    /// <summary>The simulated copy runs only under its monitor: once the agent is gone, so is the migration.</summary>
    public Task<LiveMigrationOutcome> ReattachLiveMigrationAsync(GuestSpec guest, LiveMigrationPlan plan, IDriverCallbacks callbacks, CancellationToken cancellationToken) =>
        Task.FromResult(LiveMigrationOutcome.Failed);

    public bool AbortLiveMigration(string uuid) =>
        _migrations.TryGetValue(uuid, out var migration) && migration.TryAbort();

    public bool ForceCompleteLiveMigration(string uuid) =>
        _migrations.TryGetValue(uuid, out var migration) && migration.TryForceComplete();

    public async Task PostLiveMigrationAtSourceAsync(GuestSpec guest, bool sharedInstancePath, CancellationToken cancellationToken)
    {
        await Faults.CheckAsync(FakeSteps.PostLiveMigrationAtSource, cancellationToken);
        State.Guests.TryRemove(guest.Uuid, out _);
        if (!sharedInstancePath)
        {
            DeleteDirectory(InstanceDirectory(guest.Uuid));
        }
        FakeCrashPoint.After(FakeSteps.PostLiveMigrationAtSource);
    }

    // --- cold migration / resize ---

    public async Task CheckCanReceiveAsync(GuestSpec resized, CancellationToken cancellationToken)
    {
        await Faults.CheckAsync(FakeSteps.CheckCanReceive, cancellationToken);
        var used = State.Guests.Values.Where(g => g.Uuid != resized.Uuid).Sum(g => (long)g.MemoryMb);
        if (used + resized.MemoryMb > Options.MemoryMb)
        {
            throw new InstanceFaultRollbackException(
                $"Insufficient compute resources: Free memory {Options.MemoryMb - used} MB < requested {resized.MemoryMb} MB.");
        }
    }

    public async Task<Dictionary<string, string>> MigrateDiskAndPowerOffAsync(GuestSpec guest, string destHost, GuestSpec resized, CancellationToken cancellationToken)
    {
        await Faults.CheckAsync(FakeSteps.MigrateDiskAndPowerOff, cancellationToken);
        if (!guest.VolumeBacked && resized.RootGb < guest.RootGb)
        {
            throw new InstanceFaultRollbackException("Unable to resize disk down.");
        }
        if (!State.Guests.TryRemove(guest.Uuid, out var source))
        {
            throw new InstanceNotFoundException(guest.Uuid);
        }
        State.ResizeSources[guest.Uuid] = source with { PowerState = GuestPowerState.Shutdown };

        var dir = InstanceDirectory(guest.Uuid);
        var resizeDir = ResizeDirectory(guest.Uuid);
        DeleteDirectory(resizeDir);
        if (Directory.Exists(dir))
        {
            Directory.Move(dir, resizeDir);
        }
        else
        {
            Directory.CreateDirectory(resizeDir);
        }
        FakeCrashPoint.After(FakeSteps.MigrateDiskAndPowerOff);
        return new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["disk_path"] = Path.Combine(resizeDir, "disk"),
            ["config_drive_path"] = Path.Combine(resizeDir, "disk.config"),
            ["image_ref"] = guest.ImageRef,
            ["source_host"] = _options.HostName,
            ["source_address"] = _options.HostAddress,
            ["dest_host"] = destHost,
        };
    }

    public async Task FinishMigrationAsync(GuestSpec resized, Dictionary<string, string> diskInfo, bool powerOn, CancellationToken cancellationToken)
    {
        await Faults.CheckAsync(FakeSteps.FinishMigration, cancellationToken);
        var dir = InstanceDirectory(resized.Uuid);
        Directory.CreateDirectory(dir);
        var imageRef = resized.ImageRef;
        if (diskInfo.TryGetValue("disk_path", out var diskPath) && File.Exists(diskPath))
        {
            // Stands in for the copy (rsync/scp) of the root disk; the resized size is applied after it.
            File.Copy(diskPath, Path.Combine(dir, "disk"), overwrite: true);
            imageRef = ReadImageRef(diskPath) ?? imageRef;
        }
        if (!resized.VolumeBacked)
        {
            await WriteDiskAsync(resized with { ImageRef = imageRef }, dir, cancellationToken);
        }
        if (resized.ConfigDrive)
        {
            await WriteConfigDriveAsync(resized, dir, cancellationToken);
        }
        await AppendConsoleAsync(dir, $"migrated to {_options.HostName}", cancellationToken);
        var state = powerOn ? GuestPowerState.Running : GuestPowerState.Shutdown;
        State.Guests[resized.Uuid] = new FakeGuest(resized.Uuid, state, resized.MemoryMb, resized);
        FakeCrashPoint.After(FakeSteps.FinishMigration);
    }

    public async Task ConfirmMigrationAsync(GuestSpec guest, CancellationToken cancellationToken)
    {
        await Faults.CheckAsync(FakeSteps.ConfirmMigration, cancellationToken);
        DeleteDirectory(ResizeDirectory(guest.Uuid));
        State.ResizeSources.TryRemove(guest.Uuid, out _);
        FakeCrashPoint.After(FakeSteps.ConfirmMigration);
    }

    public async Task FinishRevertMigrationAsync(GuestSpec guest, bool powerOn, CancellationToken cancellationToken)
    {
        await Faults.CheckAsync(FakeSteps.FinishRevertMigration, cancellationToken);
        var dir = InstanceDirectory(guest.Uuid);
        var resizeDir = ResizeDirectory(guest.Uuid);
        if (Directory.Exists(resizeDir))
        {
            // On shared storage (or a same-host resize) the destination's copy sits at <uuid>; the kept
            // source copy wins.
            DeleteDirectory(dir);
            Directory.Move(resizeDir, dir);
        }
        else
        {
            Directory.CreateDirectory(dir);
            await WriteGuestFilesAsync(guest, dir, overwrite: false, cancellationToken);
        }
        State.ResizeSources.TryRemove(guest.Uuid, out _);
        var state = powerOn ? GuestPowerState.Running : GuestPowerState.Shutdown;
        State.Guests[guest.Uuid] = new FakeGuest(guest.Uuid, state, guest.MemoryMb, guest);
        await AppendConsoleAsync(dir, $"reverted on {_options.HostName}", cancellationToken);
        FakeCrashPoint.After(FakeSteps.FinishRevertMigration);
    }

    // --- helpers ---

    /// <summary>Dirty rate in MiB/s: the guest's metadata key, else the host default.</summary>
    internal double DirtyRateMiBps(GuestSpec guest) =>
        guest.Metadata.TryGetValue(DirtyRateMetadataKey, out var text)
        && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var rate)
        && rate >= 0 && double.IsFinite(rate)
            ? rate
            : _options.DefaultDirtyRateMiBps;

    /// <summary>Bytes a block migration copies for the guest's local root disk (see the class remarks).</summary>
    internal static long BlockMigrationDiskBytes(GuestSpec guest) =>
        guest.VolumeBacked ? 0L : (long)guest.RootGb * (1L << 30) / DiskScaleDivisor;

    private void SetPowerState(string uuid, GuestPowerState powerState)
    {
        if (!State.TryUpdate(uuid, g => g with { PowerState = powerState }))
        {
            throw new InstanceNotFoundException(uuid);
        }
    }

    private static string ValidSegment(string uuid)
    {
        if (string.IsNullOrWhiteSpace(uuid) || uuid is "." or ".." || !IsPlainFileName(uuid))
        {
            throw new BadRequestException($"Invalid instance uuid '{uuid}'.");
        }
        return uuid;
    }

    private static bool IsPlainFileName(string name) =>
        !string.IsNullOrEmpty(name) && name.IndexOfAny(Path.GetInvalidFileNameChars()) < 0
        && !name.Contains('/') && !name.Contains('\\') && name is not ("." or "..");

    /// <summary>Deletes a directory tree that another host may be deleting at the same time (shared instances path).</summary>
    private static void DeleteDirectory(string path)
    {
        try
        {
            Directory.Delete(path, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    private async Task WriteGuestFilesAsync(GuestSpec guest, string dir, bool overwrite, CancellationToken cancellationToken)
    {
        if (!guest.VolumeBacked && (overwrite || !File.Exists(Path.Combine(dir, "disk"))))
        {
            await WriteDiskAsync(guest, dir, cancellationToken);
        }
        if (guest.ConfigDrive && (overwrite || !File.Exists(Path.Combine(dir, "disk.config"))))
        {
            await WriteConfigDriveAsync(guest, dir, cancellationToken);
        }
        if (!File.Exists(Path.Combine(dir, "console.log")))
        {
            await File.WriteAllTextAsync(Path.Combine(dir, "console.log"), "", cancellationToken);
        }
    }

    private Task WriteDiskAsync(GuestSpec guest, string dir, CancellationToken cancellationToken) =>
        WriteJsonAsync(Path.Combine(dir, "disk"), w =>
        {
            w.WriteString("uuid", guest.Uuid);
            w.WriteString("format", "fake");
            w.WriteString("image_ref", guest.ImageRef);
            w.WriteNumber("size_gb", guest.RootGb);
            w.WriteString("host", _options.HostName);
        }, cancellationToken);

    private Task WriteConfigDriveAsync(GuestSpec guest, string dir, CancellationToken cancellationToken) =>
        WriteJsonAsync(Path.Combine(dir, "disk.config"), w =>
        {
            w.WriteString("uuid", guest.Uuid);
            w.WriteString("format", "iso9660");
            w.WriteString("name", guest.Name);
        }, cancellationToken);

    private static async Task WriteJsonAsync(string path, Action<Utf8JsonWriter> body, CancellationToken cancellationToken)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            writer.WriteStartObject();
            body(writer);
            writer.WriteEndObject();
        }
        await File.WriteAllBytesAsync(path, buffer.WrittenMemory, cancellationToken);
    }

    private static string? ReadImageRef(string diskPath)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(diskPath));
            return doc.RootElement.TryGetProperty("image_ref", out var value) ? value.GetString() : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private Task AppendConsoleAsync(string dir, string line, CancellationToken cancellationToken) =>
        Directory.Exists(dir)
            ? File.AppendAllTextAsync(Path.Combine(dir, "console.log"),
                $"{_timeProvider.GetUtcNow():O} {line}{Environment.NewLine}", cancellationToken)
            : Task.CompletedTask;
}
