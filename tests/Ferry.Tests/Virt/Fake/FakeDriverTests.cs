using System.Text.Json;
using Ferry.Core.Errors;
using Ferry.Tests.Shared;
using Ferry.Virt;
using Ferry.Virt.Fake;

namespace Ferry.Tests.Virt.Fake;

public sealed class FakeDriverTests : IDisposable
{
    private readonly string _root = TestTempNames.Path("fake-tests");
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(30));

    private CancellationToken Ct => _timeout.Token;

    public void Dispose()
    {
        _timeout.Dispose();
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    // --- spawn / destroy ---

    [Fact]
    public async Task Spawn_VifModelNoGuestCanHave_UnsupportedHardwareAndNothingDefined()
    {
        var driver = NewDriver("host1");
        var guest = Guest() with { VifModel = "bogus" };

        var refused = await Assert.ThrowsAsync<UnsupportedHardwareException>(() => driver.SpawnAsync(guest, reuseDisks: false, Ct));

        Assert.Equal("Requested hardware 'bogus' is not supported by the 'qemu' virt driver", refused.Message);
        Assert.Null(driver.GetGuest(guest.Uuid));
        Assert.False(driver.InstanceOnDisk(guest.Uuid));
    }

    [Fact]
    public async Task Spawn_WithConfigDrive_CreatesDiskConsoleAndConfigDrive()
    {
        var driver = NewDriver("host1");
        var guest = Guest(configDrive: true);

        await driver.SpawnAsync(guest, reuseDisks: false, Ct);

        var dir = driver.InstanceDirectory(guest.Uuid);
        Assert.True(File.Exists(Path.Combine(dir, "disk")));
        Assert.True(File.Exists(Path.Combine(dir, "console.log")));
        Assert.True(File.Exists(Path.Combine(dir, "disk.config")));
        Assert.True(driver.InstanceOnDisk(guest.Uuid));
        Assert.Equal(GuestPowerState.Running, driver.GetGuest(guest.Uuid)!.PowerState);
        using var disk = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "disk")));
        Assert.Equal("image-1", disk.RootElement.GetProperty("image_ref").GetString());
        Assert.Equal(20, disk.RootElement.GetProperty("size_gb").GetInt32());
    }

    [Fact]
    public async Task Spawn_VolumeBacked_CreatesNoRootDisk()
    {
        var driver = NewDriver("host1");
        var guest = Guest(volumeBacked: true);

        await driver.SpawnAsync(guest, reuseDisks: false, Ct);

        Assert.False(File.Exists(Path.Combine(driver.InstanceDirectory(guest.Uuid), "disk")));
        Assert.False(driver.HasLocalDisks(guest));
    }

    // --- volumes ---

    [Fact]
    public async Task AttachVolume_ConnectionHeldUntilDetachOrDestroy()
    {
        var driver = NewDriver("host1");
        var guest = Guest();
        await driver.SpawnAsync(guest, reuseDisks: false, Ct);
        var connection = new Ferry.Core.Volumes.VolumeConnectionInfo { Host = "127.0.0.1", Port = 10809, Export = "volume-v1" };

        await driver.AttachVolumeAsync(guest.Uuid, new GuestVolume("v1", "/dev/vdb", connection), Ct);
        await driver.AttachVolumeAsync(guest.Uuid, new GuestVolume("v2", "/dev/vdc", connection with { Export = "volume-v2" }), Ct);
        await driver.AttachVolumeAsync(guest.Uuid, new GuestVolume("v1", "/dev/vdb", connection), Ct);   // again: no second connection

        Assert.Equal([new FakeVolumeConnection(guest.Uuid, "v1", "/dev/vdb", "volume-v1"), new FakeVolumeConnection(guest.Uuid, "v2", "/dev/vdc", "volume-v2")],
            driver.VolumeConnections());
        await driver.DetachVolumeAsync(guest.Uuid, "v1", Ct);
        Assert.Equal(["v2"], driver.VolumeConnections().Select(c => c.VolumeId));
        await driver.DestroyAsync(guest.Uuid, destroyDisks: true, Ct);
        Assert.Empty(driver.VolumeConnections());
        await Assert.ThrowsAsync<InstanceNotFoundException>(() => driver.AttachVolumeAsync(guest.Uuid, new GuestVolume("v1", "/dev/vdb", connection), Ct));
    }

    [Fact]
    public async Task Spawn_AlreadyDefined_ThrowsConflict()
    {
        var driver = NewDriver("host1");
        var guest = Guest();
        await driver.SpawnAsync(guest, reuseDisks: false, Ct);

        await Assert.ThrowsAsync<ConflictException>(() => driver.SpawnAsync(guest, reuseDisks: false, Ct));
    }

    [Fact]
    public async Task Destroy_WithDestroyDisks_RemovesGuestAndDirectory()
    {
        var driver = NewDriver("host1");
        var guest = Guest();
        await driver.SpawnAsync(guest, reuseDisks: false, Ct);

        await driver.DestroyAsync(guest.Uuid, destroyDisks: true, Ct);

        Assert.Null(driver.GetGuest(guest.Uuid));
        Assert.False(driver.InstanceOnDisk(guest.Uuid));
    }

    [Fact]
    public async Task Destroy_KeepDisks_LeavesDirectory()
    {
        var driver = NewDriver("host1");
        var guest = Guest();
        await driver.SpawnAsync(guest, reuseDisks: false, Ct);

        await driver.DestroyAsync(guest.Uuid, destroyDisks: false, Ct);
        await driver.DestroyAsync(guest.Uuid, destroyDisks: false, Ct); // absent: no error

        Assert.Null(driver.GetGuest(guest.Uuid));
        Assert.True(driver.InstanceOnDisk(guest.Uuid));
    }

    [Fact]
    public async Task PowerOffAndOn_ExistingGuest_ChangesPowerState()
    {
        var driver = NewDriver("host1");
        var guest = Guest();
        await driver.SpawnAsync(guest, reuseDisks: false, Ct);

        await driver.PowerOffAsync(guest.Uuid, Ct);
        Assert.Equal(GuestPowerState.Shutdown, driver.GetGuest(guest.Uuid)!.PowerState);
        await driver.PowerOnAsync(guest.Uuid, Ct);
        Assert.Equal(GuestPowerState.Running, driver.GetGuest(guest.Uuid)!.PowerState);
        await Assert.ThrowsAsync<InstanceNotFoundException>(() => driver.PowerOnAsync(Guid.NewGuid().ToString(), Ct));
    }

    [Theory]
    [InlineData(false, false, true)]
    [InlineData(false, true, true)]
    [InlineData(true, false, false)]
    [InlineData(true, true, false)]
    public void HasLocalDisks_VolumeBackedAndConfigDrive_OnlyTheRootDiskCounts(bool volumeBacked, bool configDrive, bool expected)
    {
        var driver = NewDriver("host1");

        Assert.Equal(expected, driver.HasLocalDisks(Guest(volumeBacked: volumeBacked, configDrive: configDrive)));
    }

    [Fact]
    public async Task InitHost_RestartedDriverWithSameState_StillListsGuests()
    {
        var state = new FakeHypervisorState();
        var before = NewDriver("host1", state: state);
        var guest = Guest();
        await before.SpawnAsync(guest, reuseDisks: false, Ct);

        var after = NewDriver("host1", state: state);
        var guests = await after.InitHostAsync(Ct);

        var info = Assert.Single(guests);
        Assert.Equal(guest.Uuid, info.Uuid);
        Assert.Equal(GuestPowerState.Running, info.PowerState);
        await after.DestroyAsync(guest.Uuid, destroyDisks: true, Ct);
        Assert.Empty(before.ListGuests());
    }

    [Fact]
    public async Task InitHost_NewState_CreatesInstancesPathAndListsNothing()
    {
        var driver = NewDriver("host1");

        var guests = await driver.InitHostAsync(Ct);

        Assert.Empty(guests);
        Assert.True(Directory.Exists(driver.Options.InstancesPath));
    }

    [Fact]
    public async Task InitHost_NewProcessOnSameInstancesPath_FindsGuestsWithPowerState()
    {
        var before = NewDriver("host1");
        var (running, stopped) = (Guest(), Guest(configDrive: true));
        await before.SpawnAsync(running, reuseDisks: false, Ct);
        await before.SpawnAsync(stopped, reuseDisks: false, Ct);
        await before.PowerOffAsync(stopped.Uuid, Ct);

        // A new driver with a new state is what a new process builds.
        var after = NewDriver("host1");
        var guests = await after.InitHostAsync(Ct);

        Assert.Equal(
            [(running.Uuid, GuestPowerState.Running), (stopped.Uuid, GuestPowerState.Shutdown)],
            guests.Select(g => (g.Uuid, g.PowerState)).OrderBy(g => g.Uuid == stopped.Uuid));
        await after.PowerOnAsync(stopped.Uuid, Ct);
        Assert.Equal(GuestPowerState.Running, NewDriver("host1").GetGuest(stopped.Uuid)!.PowerState);
        await after.DestroyAsync(running.Uuid, destroyDisks: true, Ct);
        Assert.Null(NewDriver("host1").GetGuest(running.Uuid));
    }

    [Fact]
    public async Task InitHost_NewProcessAfterResizeAndIncomingMigration_KeepsSourceCopyAndIncomingGuest()
    {
        var (source, dest) = (NewDriver("host1"), NewDriver("host2"));
        var (resized, moving) = (Guest(), Guest());
        await source.SpawnAsync(resized, reuseDisks: false, Ct);
        await source.MigrateDiskAndPowerOffAsync(resized, "host2", resized, Ct);
        await dest.PreLiveMigrationAsync(moving, sharedInstancePath: false, blockMigration: true, parallelConnections: 1, Ct);

        var (source2, dest2) = (NewDriver("host1"), NewDriver("host2"));

        Assert.Equal(GuestPowerState.Shutdown, source2.GetGuest(resized.Uuid)!.PowerState);
        await source2.FinishRevertMigrationAsync(resized, powerOn: true, Ct);
        Assert.Equal(GuestPowerState.Running, NewDriver("host1").GetGuest(resized.Uuid)!.PowerState);
        Assert.Equal(GuestPowerState.Paused, dest2.GetGuest(moving.Uuid)!.PowerState);
        // Only an incoming guest can be resumed after a broken post-copy stream: the flag came back too.
        await dest2.RecoverPostCopyAtDestinationAsync(moving.Uuid, Ct);
    }

    [Fact]
    public async Task InitHost_SharedInstancesPath_EachHostFindsOnlyItsOwnGuests()
    {
        var path = Path.Combine(_root, "shared");
        var guest = Guest();
        await NewDriver("host1", instancesPath: path).SpawnAsync(guest, reuseDisks: false, Ct);

        Assert.Empty(await NewDriver("host2", instancesPath: path).InitHostAsync(Ct));
        Assert.Single(await NewDriver("host1", instancesPath: path).InitHostAsync(Ct));
    }

    // --- shared storage ---

    [Fact]
    public void SharedStorageTestFile_SameInstancesPath_VisibleFromOtherHost()
    {
        var path = Path.Combine(_root, "shared");
        var source = NewDriver("host1", instancesPath: path);
        var dest = NewDriver("host2", instancesPath: path);

        var name = dest.CreateSharedStorageTestFile();

        Assert.True(source.CheckSharedStorageTestFile(name));
        dest.CleanupSharedStorageTestFile(name);
        Assert.False(source.CheckSharedStorageTestFile(name));
    }

    [Fact]
    public void SharedStorageTestFile_DifferentInstancesPath_NotVisible()
    {
        var source = NewDriver("host1");
        var dest = NewDriver("host2");

        var name = dest.CreateSharedStorageTestFile();

        Assert.False(source.CheckSharedStorageTestFile(name));
        Assert.True(dest.CheckSharedStorageTestFile(name));
        Assert.False(source.CheckSharedStorageTestFile("../" + name));
        dest.CleanupSharedStorageTestFile(name);
    }

    // --- live migration ---

    [Fact]
    public async Task PreLiveMigration_OwnInboundAddress_IsNamedInTheIncomingUriAndChecksTheSourcesExpectation()
    {
        var source = NewDriver("host1");
        var dest = new FakeDriver(new FakeDriverOptions
        {
            HostName = "host2",
            InstancesPath = Path.Combine(_root, "host2"),
            MigrationAddress = "127.0.0.3",
            TimeScale = 0,
        });
        var guest = Guest();
        await source.SpawnAsync(guest, reuseDisks: false, Ct);

        var uri = await dest.PreLiveMigrationAsync(guest, sharedInstancePath: false, blockMigration: true, parallelConnections: 1, Ct);

        Assert.Equal("127.0.0.3", FakeDriver.IncomingAddress(uri));
        // A source told another inbound address than the one the destination listens on refuses to send.
        var error = await Assert.ThrowsAsync<InvalidMigrationStateException>(() =>
            source.LiveMigrateAsync(guest, Plan() with { IncomingUri = uri, DestAddress = "127.0.0.2" }, new RecordingCallbacks(), Ct));
        Assert.Contains("listens on 127.0.0.3, not on its live_migration_inbound_addr 127.0.0.2", error.Message);
        Assert.Equal(GuestPowerState.Running, source.GetGuest(guest.Uuid)!.PowerState);
        Assert.Equal(LiveMigrationOutcome.Completed,
            await source.LiveMigrateAsync(guest, Plan() with { IncomingUri = uri, DestAddress = "127.0.0.3" }, new RecordingCallbacks(), Ct));
    }

    [Fact]
    public async Task LiveMigrate_ZeroDirtyRate_CompletesAndLeavesOneRunningCopy()
    {
        var (source, dest) = (NewDriver("host1"), NewDriver("host2"));
        var guest = Guest(memoryMb: 2048);
        await source.SpawnAsync(guest, reuseDisks: false, Ct);
        var callbacks = new RecordingCallbacks();

        var uri = await dest.PreLiveMigrationAsync(guest, sharedInstancePath: false, blockMigration: true, parallelConnections: 1, Ct);
        Assert.Equal($"fake://host2/{guest.Uuid}?address=127.0.0.1", uri);
        Assert.Equal(GuestPowerState.Paused, dest.GetGuest(guest.Uuid)!.PowerState);

        var outcome = await source.LiveMigrateAsync(guest, Plan() with { IncomingUri = uri }, callbacks, Ct);

        Assert.Equal(LiveMigrationOutcome.Completed, outcome);
        var progress = Assert.Single(callbacks.Progress);
        Assert.Equal(2048L << 20, progress.MemoryTotalBytes);
        Assert.Equal(2048L << 20, progress.MemoryProcessedBytes);
        Assert.Equal(0, progress.MemoryRemainingBytes);
        Assert.Equal(1, progress.Iteration);
        Assert.Equal(GuestPowerState.Paused, source.GetGuest(guest.Uuid)!.PowerState);
        Assert.Equal(GuestPowerState.Paused, dest.GetGuest(guest.Uuid)!.PowerState);
        Assert.False(source.IsMigrating(guest.Uuid));

        await dest.PostLiveMigrationAtDestinationAsync(guest, Ct);
        await source.PostLiveMigrationAtSourceAsync(guest, sharedInstancePath: false, Ct);

        Assert.Equal(GuestPowerState.Running, dest.GetGuest(guest.Uuid)!.PowerState);
        Assert.Null(source.GetGuest(guest.Uuid));
        Assert.False(source.InstanceOnDisk(guest.Uuid));
        Assert.True(dest.InstanceOnDisk(guest.Uuid));
    }

    [Fact]
    public async Task LiveMigrate_BlockMigration_ReportsDiskProgress()
    {
        var source = NewDriver("host1");
        var guest = Guest(rootGb: 64);
        await source.SpawnAsync(guest, reuseDisks: false, Ct);
        var callbacks = new RecordingCallbacks();

        var outcome = await source.LiveMigrateAsync(guest, Plan() with { BlockMigration = true }, callbacks, Ct);

        Assert.Equal(LiveMigrationOutcome.Completed, outcome);
        var first = callbacks.Progress[0];
        Assert.Equal(1L << 30, first.DiskTotalBytes); // 64 GiB / DiskScaleDivisor
        Assert.Equal(first.DiskTotalBytes, first.DiskProcessedBytes);
        Assert.Equal(0, first.DiskRemainingBytes);
    }

    [Fact]
    public async Task LiveMigrate_InfiniteBandwidth_CompletesInFirstRoundDespiteDirtying()
    {
        var source = NewDriver("host1", bandwidthMiBps: 0);
        var guest = Guest(dirtyRateMiBps: 100_000);
        await source.SpawnAsync(guest, reuseDisks: false, Ct);
        var callbacks = new RecordingCallbacks();

        var outcome = await source.LiveMigrateAsync(guest, Plan(), callbacks, Ct);

        Assert.Equal(LiveMigrationOutcome.Completed, outcome);
        Assert.Single(callbacks.Progress);
    }

    [Fact]
    public async Task LiveMigrate_ModerateDirtyRate_ConvergesGeometrically()
    {
        var source = NewDriver("host1");
        var guest = Guest(memoryMb: 4096, dirtyRateMiBps: 500); // λ = 0.5
        await source.SpawnAsync(guest, reuseDisks: false, Ct);
        var callbacks = new RecordingCallbacks();

        var outcome = await source.LiveMigrateAsync(guest, Plan(), callbacks, Ct);

        Assert.Equal(LiveMigrationOutcome.Completed, outcome);
        Assert.True(callbacks.Progress.Count > 2);
        for (int i = 1; i < callbacks.Progress.Count; i++)
        {
            Assert.True(callbacks.Progress[i].MemoryRemainingBytes < callbacks.Progress[i - 1].MemoryRemainingBytes);
        }
        Assert.True(callbacks.Progress[^1].ExpectedDowntimeMs <= 500);
    }

    [Fact]
    public async Task LiveMigrate_NonConvergingWithAbortTimeout_Cancelled()
    {
        var source = NewDriver("host1");
        var guest = Guest(memoryMb: 1024, dirtyRateMiBps: 2000);
        await source.SpawnAsync(guest, reuseDisks: false, Ct);
        var callbacks = new RecordingCallbacks();

        var outcome = await source.LiveMigrateAsync(
            guest, Plan() with { CompletionTimeoutSecondsPerGiB = 10, TimeoutAction = CompletionTimeoutAction.Abort }, callbacks, Ct);

        Assert.Equal(LiveMigrationOutcome.Cancelled, outcome);
        Assert.Equal(GuestPowerState.Running, source.GetGuest(guest.Uuid)!.PowerState);
        // 1 GiB rounds at 1000 MiB/s last 1.024 s: the 10 s timeout fires after round 10.
        Assert.Equal(10, callbacks.Progress.Count);
        Assert.False(source.AbortLiveMigration(guest.Uuid));
    }

    [Fact]
    public async Task LiveMigrate_NonConvergingWithForceCompleteTimeoutAndPostCopy_CompletesInPostCopy()
    {
        var source = NewDriver("host1");
        var guest = Guest(memoryMb: 1024, dirtyRateMiBps: 2000);
        await source.SpawnAsync(guest, reuseDisks: false, Ct);
        var abortDuringPostCopy = true;
        var callbacks = new RecordingCallbacks { OnPostCopy = () => abortDuringPostCopy = source.AbortLiveMigration(guest.Uuid) };

        var outcome = await source.LiveMigrateAsync(
            guest,
            Plan() with { CompletionTimeoutSecondsPerGiB = 5, TimeoutAction = CompletionTimeoutAction.ForceComplete, PermitPostCopy = true },
            callbacks, Ct);

        Assert.Equal(LiveMigrationOutcome.Completed, outcome);
        Assert.Equal(1, callbacks.PostCopySwitches);
        Assert.False(abortDuringPostCopy);
        Assert.True(callbacks.Progress[^1].PostCopy);
        Assert.Equal(0, callbacks.Progress[^1].MemoryRemainingBytes);
        Assert.Equal(GuestPowerState.Paused, source.GetGuest(guest.Uuid)!.PowerState);
    }

    [Fact]
    public async Task LiveMigrate_NonConvergingWithForceCompleteTimeoutNoPostCopy_PausesThenCompletes()
    {
        var source = NewDriver("host1");
        var guest = Guest(memoryMb: 1024, dirtyRateMiBps: 2000);
        await source.SpawnAsync(guest, reuseDisks: false, Ct);
        var callbacks = new RecordingCallbacks();

        var outcome = await source.LiveMigrateAsync(
            guest, Plan() with { CompletionTimeoutSecondsPerGiB = 5, TimeoutAction = CompletionTimeoutAction.ForceComplete }, callbacks, Ct);

        Assert.Equal(LiveMigrationOutcome.Completed, outcome);
        Assert.Equal(0, callbacks.PostCopySwitches);
        Assert.Equal(0, callbacks.Progress[^1].DirtyRateBytesPerSecond);
    }

    [Fact]
    public async Task LiveMigrate_NonConvergingWithAutoConverge_Completes()
    {
        var source = NewDriver("host1");
        var guest = Guest(memoryMb: 1024, dirtyRateMiBps: 2000);
        await source.SpawnAsync(guest, reuseDisks: false, Ct);
        var callbacks = new RecordingCallbacks();

        var outcome = await source.LiveMigrateAsync(
            guest, Plan() with { CompletionTimeoutSecondsPerGiB = 0, PermitAutoConverge = true }, callbacks, Ct);

        Assert.Equal(LiveMigrationOutcome.Completed, outcome);
        Assert.Equal(0, callbacks.PostCopySwitches);
        Assert.True(callbacks.Progress[^1].DirtyRateBytesPerSecond < callbacks.Progress[0].DirtyRateBytesPerSecond);
    }

    [Fact]
    public async Task LiveMigrate_DowntimeSteps_ConvergesOnceLimitRises()
    {
        var source = NewDriver("host1");
        var guest = Guest(memoryMb: 1024, dirtyRateMiBps: 2000);
        await source.SpawnAsync(guest, reuseDisks: false, Ct);
        var callbacks = new RecordingCallbacks();

        // Every 1.024 s round leaves 1 GiB (1024 ms at 1000 MiB/s); the limit climbs 200 → 2000 ms by 180 ms per
        // simulated second, so it first reaches 1100 ms at the end of round 5 (5.12 s).
        var outcome = await source.LiveMigrateAsync(
            guest, Plan() with { DowntimeMs = 2000, DowntimeSteps = 10, DowntimeDelaySecondsPerGiB = 1, CompletionTimeoutSecondsPerGiB = 0 },
            callbacks, Ct);

        Assert.Equal(LiveMigrationOutcome.Completed, outcome);
        Assert.Equal(5, callbacks.Progress.Count);
    }

    [Fact]
    public async Task LiveMigrate_NonConvergingWithoutTimeAndTimeout_FailsAtRoundCap()
    {
        var source = NewDriver("host1");
        var guest = Guest(memoryMb: 1024, dirtyRateMiBps: 2000);
        await source.SpawnAsync(guest, reuseDisks: false, Ct);
        var callbacks = new RecordingCallbacks();

        var outcome = await source.LiveMigrateAsync(guest, Plan() with { CompletionTimeoutSecondsPerGiB = 0 }, callbacks, Ct);

        Assert.Equal(LiveMigrationOutcome.Failed, outcome);
        Assert.Equal(FakeDriver.MaxRoundsWithoutTime, callbacks.Progress.Count);
        Assert.Equal(GuestPowerState.Running, source.GetGuest(guest.Uuid)!.PowerState);
    }

    [Fact]
    public async Task AbortLiveMigration_FromProgressCallback_CancelledAndSourceRunning()
    {
        var source = NewDriver("host1");
        var guest = Guest(memoryMb: 1024, dirtyRateMiBps: 2000);
        await source.SpawnAsync(guest, reuseDisks: false, Ct);
        var aborted = false;
        var callbacks = new RecordingCallbacks
        {
            OnProgress = p => { if (p.Iteration == 3) { aborted = source.AbortLiveMigration(guest.Uuid); } },
        };

        var outcome = await source.LiveMigrateAsync(guest, Plan() with { CompletionTimeoutSecondsPerGiB = 0 }, callbacks, Ct);

        Assert.True(aborted);
        Assert.Equal(LiveMigrationOutcome.Cancelled, outcome);
        Assert.Equal(3, callbacks.Progress.Count);
        Assert.Equal(GuestPowerState.Running, source.GetGuest(guest.Uuid)!.PowerState);
    }

    [Fact]
    public async Task AbortLiveMigration_FromAnotherThreadMidFlight_CancelledAndSourceRunning()
    {
        // TimeScale 0.001: a 1 GiB round sleeps ~1 ms of real time, so the migration is really in flight.
        var source = NewDriver("host1", timeScale: 0.001);
        var guest = Guest(memoryMb: 1024, dirtyRateMiBps: 2000);
        await source.SpawnAsync(guest, reuseDisks: false, Ct);
        var callbacks = new RecordingCallbacks();

        var migrating = Task.Run(() => source.LiveMigrateAsync(guest, Plan() with { CompletionTimeoutSecondsPerGiB = 0 }, callbacks, Ct), Ct);
        await callbacks.FirstProgress.Task.WaitAsync(Ct);

        Assert.True(source.IsMigrating(guest.Uuid));
        Assert.True(source.AbortLiveMigration(guest.Uuid));
        var outcome = await migrating.WaitAsync(Ct);

        Assert.Equal(LiveMigrationOutcome.Cancelled, outcome);
        Assert.Equal(GuestPowerState.Running, source.GetGuest(guest.Uuid)!.PowerState);
        Assert.False(source.IsMigrating(guest.Uuid));
    }

    [Fact]
    public async Task AbortLiveMigration_AfterForceCompletePaused_SourceRunningAgain()
    {
        var source = NewDriver("host1");
        var guest = Guest(memoryMb: 1024, dirtyRateMiBps: 2000);
        await source.SpawnAsync(guest, reuseDisks: false, Ct);
        GuestPowerState? stateWhileForced = null;
        var callbacks = new RecordingCallbacks
        {
            OnProgress = p =>
            {
                if (p.Iteration == 1)
                {
                    source.ForceCompleteLiveMigration(guest.Uuid);
                }
                else
                {
                    stateWhileForced = source.GetGuest(guest.Uuid)!.PowerState;
                    source.AbortLiveMigration(guest.Uuid);
                }
            },
        };

        var outcome = await source.LiveMigrateAsync(guest, Plan() with { CompletionTimeoutSecondsPerGiB = 0 }, callbacks, Ct);

        Assert.Equal(GuestPowerState.Paused, stateWhileForced);
        Assert.Equal(LiveMigrationOutcome.Cancelled, outcome);
        Assert.Equal(GuestPowerState.Running, source.GetGuest(guest.Uuid)!.PowerState);
    }

    [Fact]
    public async Task ForceCompleteLiveMigration_WithoutPostCopy_PausesThenCompletes()
    {
        var source = NewDriver("host1");
        var guest = Guest(memoryMb: 1024, dirtyRateMiBps: 2000);
        await source.SpawnAsync(guest, reuseDisks: false, Ct);
        var forced = false;
        var powerStates = new List<GuestPowerState>();
        var callbacks = new RecordingCallbacks
        {
            OnProgress = p =>
            {
                powerStates.Add(source.GetGuest(guest.Uuid)!.PowerState);
                if (p.Iteration == 2) { forced = source.ForceCompleteLiveMigration(guest.Uuid); }
            },
        };

        var outcome = await source.LiveMigrateAsync(guest, Plan() with { CompletionTimeoutSecondsPerGiB = 0 }, callbacks, Ct);

        Assert.True(forced);
        Assert.Equal(LiveMigrationOutcome.Completed, outcome);
        Assert.Equal([GuestPowerState.Running, GuestPowerState.Running, GuestPowerState.Paused], powerStates);
        Assert.Equal(0, callbacks.PostCopySwitches);
        Assert.Equal(GuestPowerState.Paused, source.GetGuest(guest.Uuid)!.PowerState);
    }

    [Fact]
    public async Task ForceCompleteLiveMigration_WithPostCopy_SwitchesOnceAndRefusesAbort()
    {
        var source = NewDriver("host1");
        var guest = Guest(memoryMb: 1024, dirtyRateMiBps: 2000);
        await source.SpawnAsync(guest, reuseDisks: false, Ct);
        bool? abortInPostCopy = null;
        var callbacks = new RecordingCallbacks
        {
            OnProgress = p => { if (p.Iteration == 2) { source.ForceCompleteLiveMigration(guest.Uuid); } },
            OnPostCopy = () => abortInPostCopy = source.AbortLiveMigration(guest.Uuid),
        };

        var outcome = await source.LiveMigrateAsync(
            guest, Plan() with { CompletionTimeoutSecondsPerGiB = 0, PermitPostCopy = true }, callbacks, Ct);

        Assert.Equal(LiveMigrationOutcome.Completed, outcome);
        Assert.Equal(1, callbacks.PostCopySwitches);
        Assert.False(abortInPostCopy);
    }

    [Fact]
    public void AbortAndForceComplete_NoMigrationRunning_ReturnFalse()
    {
        var driver = NewDriver("host1");

        Assert.False(driver.AbortLiveMigration(Guid.NewGuid().ToString()));
        Assert.False(driver.ForceCompleteLiveMigration(Guid.NewGuid().ToString()));
    }

    [Fact]
    public async Task LiveMigrate_RoundFaultInjected_FailedAndSourceRunning()
    {
        var source = NewDriver("host1");
        var guest = Guest(dirtyRateMiBps: 500);
        await source.SpawnAsync(guest, reuseDisks: false, Ct);
        source.Faults.FailNext(FakeSteps.LiveMigrationRound);

        var outcome = await source.LiveMigrateAsync(guest, Plan(), new RecordingCallbacks(), Ct);

        Assert.Equal(LiveMigrationOutcome.Failed, outcome);
        Assert.Equal(GuestPowerState.Running, source.GetGuest(guest.Uuid)!.PowerState);
        Assert.Equal(LiveMigrationOutcome.Completed, await source.LiveMigrateAsync(guest, Plan(), new RecordingCallbacks(), Ct));
    }

    [Fact]
    public async Task LiveMigrate_DirtyRateFromMetadata_Reported()
    {
        var source = NewDriver("host1", bandwidthMiBps: 100);
        var guest = Guest(memoryMb: 256, dirtyRateMiBps: 10);
        await source.SpawnAsync(guest, reuseDisks: false, Ct);
        var callbacks = new RecordingCallbacks();

        await source.LiveMigrateAsync(guest, Plan(), callbacks, Ct);

        Assert.Equal(10L << 20, callbacks.Progress[0].DirtyRateBytesPerSecond);
    }

    // --- post-copy stream recovery ---

    [Fact]
    public async Task LiveMigrate_PostCopyStreamBreaksOnce_RecoversThroughDestinationAndCompletes()
    {
        var (source, dest, guest) = await PostCopyPairAsync();
        var callbacks = RecoveringThrough(dest, guest);
        source.Faults.FailNext(FakeSteps.PostCopyStream);

        var outcome = await source.LiveMigrateAsync(guest, PostCopyPlan(attempts: 1), callbacks, Ct);

        Assert.Equal(LiveMigrationOutcome.Completed, outcome);
        Assert.Equal(1, callbacks.Recoveries);
        Assert.Equal(1, callbacks.PostCopySwitches);
        Assert.True(callbacks.Progress[^1].PostCopy);
        Assert.Equal(0, callbacks.Progress[^1].MemoryRemainingBytes);
        Assert.Equal(GuestPowerState.Paused, source.GetGuest(guest.Uuid)!.PowerState);
        await dest.PostLiveMigrationAtDestinationAsync(guest, Ct);
        Assert.Equal(GuestPowerState.Running, dest.GetGuest(guest.Uuid)!.PowerState);
    }

    [Fact]
    public async Task LiveMigrate_PostCopyStreamBreaksMoreOftenThanAttempts_ThrowsAndKeepsBothCopies()
    {
        var (source, dest, guest) = await PostCopyPairAsync();
        var callbacks = RecoveringThrough(dest, guest);
        var plan = PostCopyPlan(attempts: 2);
        source.Faults.FailNext(FakeSteps.PostCopyStream, times: 3); // the first break and one after each resume

        var error = await Assert.ThrowsAnyAsync<FerryException>(() => source.LiveMigrateAsync(guest, plan, callbacks, Ct));

        Assert.Contains($"stream of migration {plan.MigrationUuid} broke during post-copy", error.Message);
        Assert.Contains("both copies are kept", error.Message);
        Assert.Equal(2, callbacks.Recoveries);
        Assert.Equal(GuestPowerState.Paused, source.GetGuest(guest.Uuid)!.PowerState);
        Assert.True(source.InstanceOnDisk(guest.Uuid));
        Assert.False(source.IsMigrating(guest.Uuid));
        Assert.NotNull(dest.GetGuest(guest.Uuid));
        Assert.True(dest.InstanceOnDisk(guest.Uuid));
        // Still incoming: an operator can have it listen once more.
        Assert.Equal($"fake://host2/{guest.Uuid}?resume=3", await dest.RecoverPostCopyAtDestinationAsync(guest.Uuid, Ct));
    }

    [Fact]
    public async Task LiveMigrate_RecoveryCallbackThrowsTwiceWithThreeAttempts_Completes()
    {
        var (source, dest, guest) = await PostCopyPairAsync();
        var calls = 0;
        var callbacks = new RecordingCallbacks
        {
            OnRecoverPostCopy = () => ++calls <= 2
                ? throw new RpcTimeoutException("recover_post_copy_at_destination timed out")
                : new ValueTask<string>(dest.RecoverPostCopyAtDestinationAsync(guest.Uuid, Ct)),
        };
        source.Faults.FailNext(FakeSteps.PostCopyStream);

        var outcome = await source.LiveMigrateAsync(guest, PostCopyPlan(attempts: 3), callbacks, Ct);

        Assert.Equal(LiveMigrationOutcome.Completed, outcome);
        Assert.Equal(3, calls);
    }

    [Fact]
    public async Task LiveMigrate_RecoveryCallbackAlwaysThrows_GivesUpAfterAttempts()
    {
        var (source, _, guest) = await PostCopyPairAsync();
        var calls = 0;
        var callbacks = new RecordingCallbacks { OnRecoverPostCopy = () => { calls++; throw new InjectedFailureException(FakeSteps.RecoverPostCopyAtDestination); } };
        source.Faults.FailNext(FakeSteps.PostCopyStream);

        await Assert.ThrowsAnyAsync<FerryException>(() => source.LiveMigrateAsync(guest, PostCopyPlan(attempts: 3), callbacks, Ct));

        Assert.Equal(3, calls);
        Assert.Equal(GuestPowerState.Paused, source.GetGuest(guest.Uuid)!.PowerState);
    }

    [Fact]
    public async Task LiveMigrate_PostCopyStreamBreaksWithZeroAttempts_ThrowsAtFirstBreak()
    {
        var (source, dest, guest) = await PostCopyPairAsync();
        var callbacks = RecoveringThrough(dest, guest);
        source.Faults.FailNext(FakeSteps.PostCopyStream);

        var error = await Assert.ThrowsAnyAsync<FerryException>(() => source.LiveMigrateAsync(guest, PostCopyPlan(attempts: 0), callbacks, Ct));

        Assert.Contains("resuming it is disabled", error.Message);
        Assert.Equal(0, callbacks.Recoveries);
        Assert.Equal(GuestPowerState.Paused, source.GetGuest(guest.Uuid)!.PowerState);
        Assert.NotNull(dest.GetGuest(guest.Uuid));
    }

    [Fact]
    public async Task LiveMigrate_StreamMovedBetweenBreaks_AttemptCountStartsOver()
    {
        var (source, dest, guest) = await PostCopyPairAsync();
        var callbacks = RecoveringThrough(dest, guest);
        // Break again after the first chunk went through: one attempt per break is enough.
        callbacks.OnProgress = p =>
        {
            if (p.PostCopy && p.MemoryRemainingBytes > 0 && callbacks.Recoveries == 1)
            {
                source.Faults.FailNext(FakeSteps.PostCopyStream);
            }
        };
        source.Faults.FailNext(FakeSteps.PostCopyStream);

        var outcome = await source.LiveMigrateAsync(guest, PostCopyPlan(attempts: 1), callbacks, Ct);

        Assert.Equal(LiveMigrationOutcome.Completed, outcome);
        Assert.Equal(2, callbacks.Recoveries);
    }

    [Fact]
    public async Task LiveMigrate_RecoveryAnswersAnotherHost_CountsAsFailedAttempt()
    {
        var (source, _, guest) = await PostCopyPairAsync();
        var callbacks = new RecordingCallbacks { OnRecoverPostCopy = () => new ValueTask<string>($"fake://host3/{guest.Uuid}?resume=1") };
        source.Faults.FailNext(FakeSteps.PostCopyStream);

        await Assert.ThrowsAnyAsync<FerryException>(() => source.LiveMigrateAsync(guest, PostCopyPlan(attempts: 2), callbacks, Ct));

        Assert.Equal(GuestPowerState.Paused, source.GetGuest(guest.Uuid)!.PowerState);
    }

    [Theory]
    [InlineData(1, 0)]
    [InlineData(2, 1)]
    [InlineData(3, 2)]
    [InlineData(4, 4)]
    [InlineData(5, 8)]
    [InlineData(6, 10)]
    [InlineData(9, 10)]
    public void PostCopyResumeDelay_Attempt_DoublesUpToTen(int attempt, double expected) =>
        Assert.Equal(expected, PostCopyResume.DelaySecondsBefore(attempt));

    [Fact]
    public async Task RecoverPostCopyAtDestination_IncomingGuest_CountsRecoveriesInAddress()
    {
        var dest = NewDriver("host2");
        var guest = Guest();
        await dest.PreLiveMigrationAsync(guest, sharedInstancePath: false, blockMigration: true, parallelConnections: 1, Ct);

        Assert.Equal($"fake://host2/{guest.Uuid}?resume=1", await dest.RecoverPostCopyAtDestinationAsync(guest.Uuid, Ct));
        Assert.Equal($"fake://host2/{guest.Uuid}?resume=2", await dest.RecoverPostCopyAtDestinationAsync(guest.Uuid, Ct));
    }

    [Fact]
    public async Task RecoverPostCopyAtDestination_GuestNotIncoming_ThrowsInvalidMigrationState()
    {
        var dest = NewDriver("host2");
        var running = Guest();
        await dest.SpawnAsync(running, reuseDisks: false, Ct);
        var arrived = Guest();
        await dest.PreLiveMigrationAsync(arrived, sharedInstancePath: false, blockMigration: true, parallelConnections: 1, Ct);
        await dest.PostLiveMigrationAtDestinationAsync(arrived, Ct);

        await Assert.ThrowsAsync<InvalidMigrationStateException>(() => dest.RecoverPostCopyAtDestinationAsync(running.Uuid, Ct));
        await Assert.ThrowsAsync<InvalidMigrationStateException>(() => dest.RecoverPostCopyAtDestinationAsync(arrived.Uuid, Ct));
        await Assert.ThrowsAsync<InvalidMigrationStateException>(() => dest.RecoverPostCopyAtDestinationAsync(Guid.NewGuid().ToString(), Ct));
        Assert.Equal(GuestPowerState.Running, dest.GetGuest(running.Uuid)!.PowerState);
    }

    [Fact]
    public async Task RecoverPostCopyAtDestination_FaultInjected_ThrowsOnceThenListens()
    {
        var dest = NewDriver("host2");
        var guest = Guest();
        await dest.PreLiveMigrationAsync(guest, sharedInstancePath: false, blockMigration: true, parallelConnections: 1, Ct);
        dest.Faults.FailNext(FakeSteps.RecoverPostCopyAtDestination);

        await Assert.ThrowsAsync<InjectedFailureException>(() => dest.RecoverPostCopyAtDestinationAsync(guest.Uuid, Ct));
        Assert.Equal($"fake://host2/{guest.Uuid}?resume=1", await dest.RecoverPostCopyAtDestinationAsync(guest.Uuid, Ct));
    }

    [Fact]
    public async Task PreLiveMigration_DestinationDirExistsOnUnsharedStorage_Throws()
    {
        var dest = NewDriver("host2");
        var guest = Guest();
        Directory.CreateDirectory(dest.InstanceDirectory(guest.Uuid));

        await Assert.ThrowsAsync<DestinationDiskExistsException>(
            () => dest.PreLiveMigrationAsync(guest, sharedInstancePath: false, blockMigration: true, parallelConnections: 1, Ct));
        Assert.Null(dest.GetGuest(guest.Uuid));
    }

    [Fact]
    public async Task RollbackLiveMigrationAtDestination_DestroyDisks_RemovesIncomingGuestAndFiles()
    {
        var dest = NewDriver("host2");
        var guest = Guest(volumeBacked: true, configDrive: true);
        await dest.PreLiveMigrationAsync(guest, sharedInstancePath: false, blockMigration: false, parallelConnections: 1, Ct);
        Assert.True(File.Exists(Path.Combine(dest.InstanceDirectory(guest.Uuid), "disk.config")));

        await dest.RollbackLiveMigrationAtDestinationAsync(guest, destroyDisks: true, Ct);

        Assert.Null(dest.GetGuest(guest.Uuid));
        Assert.False(dest.InstanceOnDisk(guest.Uuid));
    }

    [Fact]
    public async Task LiveMigrate_SharedStorage_SourcePostKeepsFiles()
    {
        var path = Path.Combine(_root, "shared");
        var (source, dest) = (NewDriver("host1", instancesPath: path), NewDriver("host2", instancesPath: path));
        var guest = Guest();
        await source.SpawnAsync(guest, reuseDisks: false, Ct);

        await dest.PreLiveMigrationAsync(guest, sharedInstancePath: true, blockMigration: false, parallelConnections: 1, Ct);
        Assert.Equal(LiveMigrationOutcome.Completed, await source.LiveMigrateAsync(guest, Plan(), new RecordingCallbacks(), Ct));
        await source.PostLiveMigrationAtSourceAsync(guest, sharedInstancePath: true, Ct);
        await dest.PostLiveMigrationAtDestinationAsync(guest, Ct);

        Assert.True(dest.InstanceOnDisk(guest.Uuid));
        Assert.Null(source.GetGuest(guest.Uuid));
        Assert.Equal(GuestPowerState.Running, dest.GetGuest(guest.Uuid)!.PowerState);
    }

    // --- cold migration / resize ---

    [Fact]
    public async Task ColdMigrate_ThenConfirm_MovesFilesAndDropsSourceCopy()
    {
        var (source, dest) = (NewDriver("host1"), NewDriver("host2"));
        var guest = Guest(configDrive: true);
        var resized = guest with { MemoryMb = 2048, RootGb = 40 };
        await source.SpawnAsync(guest, reuseDisks: false, Ct);

        var diskInfo = await source.MigrateDiskAndPowerOffAsync(guest, "host2", resized, Ct);

        Assert.False(source.InstanceOnDisk(guest.Uuid));
        Assert.True(Directory.Exists(source.ResizeDirectory(guest.Uuid)));
        Assert.Equal(GuestPowerState.Shutdown, source.GetGuest(guest.Uuid)!.PowerState);

        await dest.FinishMigrationAsync(resized, diskInfo, powerOn: true, Ct);

        var destDisk = Path.Combine(dest.InstanceDirectory(guest.Uuid), "disk");
        using (var disk = JsonDocument.Parse(File.ReadAllText(destDisk)))
        {
            Assert.Equal(40, disk.RootElement.GetProperty("size_gb").GetInt32());
            Assert.Equal("image-1", disk.RootElement.GetProperty("image_ref").GetString());
        }
        Assert.True(File.Exists(Path.Combine(dest.InstanceDirectory(guest.Uuid), "disk.config")));
        Assert.Equal(new GuestInfo(guest.Uuid, GuestPowerState.Running, 2048), dest.GetGuest(guest.Uuid));

        await source.ConfirmMigrationAsync(guest, Ct);

        Assert.False(Directory.Exists(source.ResizeDirectory(guest.Uuid)));
        Assert.Null(source.GetGuest(guest.Uuid));
    }

    [Fact]
    public async Task ColdMigrate_ThenRevert_RestoresSourceCopy()
    {
        var (source, dest) = (NewDriver("host1"), NewDriver("host2"));
        var guest = Guest();
        var resized = guest with { MemoryMb = 2048, RootGb = 40 };
        await source.SpawnAsync(guest, reuseDisks: false, Ct);
        var diskInfo = await source.MigrateDiskAndPowerOffAsync(guest, "host2", resized, Ct);
        await dest.FinishMigrationAsync(resized, diskInfo, powerOn: true, Ct);

        await dest.DestroyAsync(guest.Uuid, destroyDisks: true, Ct);
        await source.FinishRevertMigrationAsync(guest, powerOn: true, Ct);

        Assert.False(dest.InstanceOnDisk(guest.Uuid));
        Assert.True(source.InstanceOnDisk(guest.Uuid));
        Assert.False(Directory.Exists(source.ResizeDirectory(guest.Uuid)));
        Assert.Equal(new GuestInfo(guest.Uuid, GuestPowerState.Running, 1024), source.GetGuest(guest.Uuid));
        Assert.Equal(20, RootSizeGb(source, guest.Uuid));
    }

    [Fact]
    public async Task ColdMigrate_SharedStorageRevert_SourceCopyWinsOverDestinationFiles()
    {
        var path = Path.Combine(_root, "shared");
        var (source, dest) = (NewDriver("host1", instancesPath: path), NewDriver("host2", instancesPath: path));
        var guest = Guest();
        var resized = guest with { RootGb = 40 };
        await source.SpawnAsync(guest, reuseDisks: false, Ct);
        var diskInfo = await source.MigrateDiskAndPowerOffAsync(guest, "host2", resized, Ct);
        await dest.FinishMigrationAsync(resized, diskInfo, powerOn: false, Ct);
        Assert.Equal(40, RootSizeGb(dest, guest.Uuid));
        Assert.Equal(GuestPowerState.Shutdown, dest.GetGuest(guest.Uuid)!.PowerState);

        await dest.DestroyAsync(guest.Uuid, destroyDisks: false, Ct);
        await source.FinishRevertMigrationAsync(guest, powerOn: false, Ct);

        Assert.Equal(20, RootSizeGb(source, guest.Uuid));
        Assert.Equal(GuestPowerState.Shutdown, source.GetGuest(guest.Uuid)!.PowerState);
        Assert.Null(dest.GetGuest(guest.Uuid));
    }

    [Fact]
    public async Task MigrateDiskAndPowerOff_ResizeDiskDown_ThrowsRollbackAndKeepsGuestRunning()
    {
        var source = NewDriver("host1");
        var guest = Guest();
        await source.SpawnAsync(guest, reuseDisks: false, Ct);

        await Assert.ThrowsAsync<InstanceFaultRollbackException>(
            () => source.MigrateDiskAndPowerOffAsync(guest, "host2", guest with { RootGb = 10 }, Ct));

        Assert.Equal(GuestPowerState.Running, source.GetGuest(guest.Uuid)!.PowerState);
        Assert.True(source.InstanceOnDisk(guest.Uuid));
    }

    // --- fault injection ---

    public static TheoryData<string> ThrowingSteps() =>
        new(FakeSteps.All.Where(s => s != FakeSteps.LiveMigrationRound));

    [Theory]
    [MemberData(nameof(ThrowingSteps))]
    public async Task FaultInjector_FailNext_StepThrowsOnceThenWorksAgain(string step)
    {
        var driver = NewDriver("host1");
        var guest = Guest();
        if (step != FakeSteps.Spawn)
        {
            await driver.SpawnAsync(guest, reuseDisks: false, Ct);
        }
        driver.Faults.FailNext(step);

        var error = await Assert.ThrowsAsync<InjectedFailureException>(() => Invoke(driver, step, guest));

        Assert.Contains(step, error.Message);
        await Invoke(driver, step, guest); // disarmed after one failure: whatever happens is not injected
    }

    [Fact]
    public async Task CheckCanReceive_GuestLargerThanFreeMemory_RefusedWithRollbackFault()
    {
        var driver = NewDriver("host1");
        await driver.SpawnAsync(Guest() with { MemoryMb = driver.Options.MemoryMb - 1024 }, reuseDisks: false, Ct);

        await driver.CheckCanReceiveAsync(Guest() with { Uuid = Guid.NewGuid().ToString(), MemoryMb = 1024 }, Ct);
        await Assert.ThrowsAsync<InstanceFaultRollbackException>(() =>
            driver.CheckCanReceiveAsync(Guest() with { Uuid = Guid.NewGuid().ToString(), MemoryMb = 1025 }, Ct));
    }

    [Fact]
    public void FaultInjector_FailAlwaysThenClear_ThrowsUntilCleared()
    {
        var faults = new FakeFaultInjector();
        faults.FailAlways(FakeSteps.Spawn);
        faults.FailNext(FakeSteps.Destroy, times: 2);

        Assert.Throws<InjectedFailureException>(() => faults.Check(FakeSteps.Spawn));
        Assert.Throws<InjectedFailureException>(() => faults.Check(FakeSteps.Spawn));
        Assert.Throws<InjectedFailureException>(() => faults.Check(FakeSteps.Destroy));
        Assert.Throws<InjectedFailureException>(() => faults.Check(FakeSteps.Destroy));
        faults.Check(FakeSteps.Destroy);
        faults.Clear();
        faults.Check(FakeSteps.Spawn);
    }

    [Fact]
    public async Task FaultInjector_Delay_HoldsStepUntilCancelled()
    {
        var driver = NewDriver("host1");
        var guest = Guest();
        await driver.SpawnAsync(guest, reuseDisks: false, Ct);
        driver.Faults.Delay(FakeSteps.PowerOff, TimeSpan.FromMinutes(10));
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);

        var powerOff = driver.PowerOffAsync(guest.Uuid, cts.Token);
        await Task.Yield();

        Assert.False(powerOff.IsCompleted);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => powerOff);
        Assert.Equal(GuestPowerState.Running, driver.GetGuest(guest.Uuid)!.PowerState);
        driver.Faults.Delay(FakeSteps.PowerOff, TimeSpan.Zero);
        await driver.PowerOffAsync(guest.Uuid, Ct);
    }

    [Fact]
    public async Task FaultInjector_DelayOnRound_HoldsMigrationMidFlightUntilAborted()
    {
        var source = NewDriver("host1");
        var guest = Guest(memoryMb: 1024, dirtyRateMiBps: 2000);
        await source.SpawnAsync(guest, reuseDisks: false, Ct);
        var callbacks = new RecordingCallbacks();
        callbacks.OnProgress = _ => source.Faults.Delay(FakeSteps.LiveMigrationRound, TimeSpan.FromMilliseconds(1));

        var migrating = source.LiveMigrateAsync(guest, Plan() with { CompletionTimeoutSecondsPerGiB = 0 }, callbacks, Ct);
        await callbacks.FirstProgress.Task.WaitAsync(Ct);
        Assert.True(source.AbortLiveMigration(guest.Uuid));

        Assert.Equal(LiveMigrationOutcome.Cancelled, await migrating.WaitAsync(Ct));
        Assert.Equal(GuestPowerState.Running, source.GetGuest(guest.Uuid)!.PowerState);
    }

    // --- helpers ---

    private async Task Invoke(FakeDriver driver, string step, GuestSpec guest)
    {
        switch (step)
        {
            case FakeSteps.Spawn: await driver.SpawnAsync(guest, reuseDisks: true, Ct); break;
            case FakeSteps.Destroy: await driver.DestroyAsync(guest.Uuid, destroyDisks: false, Ct); break;
            case FakeSteps.PowerOff: await driver.PowerOffAsync(guest.Uuid, Ct); break;
            case FakeSteps.PowerOn: await driver.PowerOnAsync(guest.Uuid, Ct); break;
            case FakeSteps.PreLiveMigration: await IgnoreFerryErrors(driver.PreLiveMigrationAsync(guest, true, false, 1, Ct)); break;
            case FakeSteps.LiveMigration: await driver.LiveMigrateAsync(guest, Plan(), new RecordingCallbacks(), Ct); break;
            case FakeSteps.PostLiveMigrationAtSource: await driver.PostLiveMigrationAtSourceAsync(guest, true, Ct); break;
            case FakeSteps.PostLiveMigrationAtDestination: await driver.PostLiveMigrationAtDestinationAsync(guest, Ct); break;
            case FakeSteps.RollbackLiveMigrationAtDestination: await driver.RollbackLiveMigrationAtDestinationAsync(guest, false, Ct); break;
            case FakeSteps.CheckCanReceive: await driver.CheckCanReceiveAsync(guest, Ct); break;
            case FakeSteps.MigrateDiskAndPowerOff: await driver.MigrateDiskAndPowerOffAsync(guest, "host2", guest, Ct); break;
            case FakeSteps.FinishMigration: await driver.FinishMigrationAsync(guest, [], true, Ct); break;
            case FakeSteps.ConfirmMigration: await driver.ConfirmMigrationAsync(guest, Ct); break;
            case FakeSteps.FinishRevertMigration: await driver.FinishRevertMigrationAsync(guest, true, Ct); break;
            default: throw new ArgumentOutOfRangeException(nameof(step), step, null);
        }
    }

    private static async Task IgnoreFerryErrors(Task task)
    {
        try
        {
            await task;
        }
        catch (FerryException ex) when (ex is not InjectedFailureException)
        {
        }
    }

    private static int RootSizeGb(FakeDriver driver, string uuid)
    {
        using var disk = JsonDocument.Parse(File.ReadAllText(Path.Combine(driver.InstanceDirectory(uuid), "disk")));
        return disk.RootElement.GetProperty("size_gb").GetInt32();
    }

    private FakeDriver NewDriver(
        string host, string? instancesPath = null, FakeHypervisorState? state = null, long bandwidthMiBps = 1000, double timeScale = 0) =>
        new(new FakeDriverOptions
        {
            HostName = host,
            InstancesPath = instancesPath ?? Path.Combine(_root, host),
            LinkBandwidthMiBps = bandwidthMiBps,
            TimeScale = timeScale,
        }, state);

    private static GuestSpec Guest(
        int memoryMb = 1024, int rootGb = 20, bool volumeBacked = false, bool configDrive = false, double? dirtyRateMiBps = null)
    {
        var uuid = Guid.NewGuid().ToString();
        var metadata = new Dictionary<string, string>();
        if (dirtyRateMiBps is { } rate)
        {
            metadata[FakeDriver.DirtyRateMetadataKey] = rate.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        return new GuestSpec
        {
            Uuid = uuid,
            Name = "instance-00000001",
            Vcpus = 1,
            MemoryMb = memoryMb,
            RootGb = rootGb,
            ImageRef = "image-1",
            VolumeBacked = volumeBacked,
            ConfigDrive = configDrive,
            Metadata = metadata,
        };
    }

    /// <summary>A guest that never converges by itself, running on host1, with host2 prepared to receive it.</summary>
    private async Task<(FakeDriver Source, FakeDriver Dest, GuestSpec Guest)> PostCopyPairAsync()
    {
        var (source, dest) = (NewDriver("host1"), NewDriver("host2"));
        var guest = Guest(memoryMb: 1024, dirtyRateMiBps: 2000);
        await source.SpawnAsync(guest, reuseDisks: false, Ct);
        await dest.PreLiveMigrationAsync(guest, sharedInstancePath: false, blockMigration: true, parallelConnections: 1, Ct);
        return (source, dest, guest);
    }

    /// <summary>Forces completion through post-copy once the 5 s completion timeout fires.</summary>
    private static LiveMigrationPlan PostCopyPlan(int attempts) => Plan() with
    {
        CompletionTimeoutSecondsPerGiB = 5,
        TimeoutAction = CompletionTimeoutAction.ForceComplete,
        PermitPostCopy = true,
        PostCopyRecoveryAttempts = attempts,
    };

    /// <summary>Callbacks that recover as the compute layer does: by asking the destination driver.</summary>
    private RecordingCallbacks RecoveringThrough(FakeDriver dest, GuestSpec guest)
    {
        var callbacks = new RecordingCallbacks();
        callbacks.OnRecoverPostCopy = () =>
        {
            callbacks.Recoveries++;
            return new ValueTask<string>(dest.RecoverPostCopyAtDestinationAsync(guest.Uuid, Ct));
        };
        return callbacks;
    }

    private static LiveMigrationPlan Plan() => new() { MigrationUuid = Guid.NewGuid().ToString(), DestHost = "host2" };

    private sealed class RecordingCallbacks : IDriverCallbacks
    {
        public List<MigrationProgress> Progress { get; } = [];

        public int PostCopySwitches { get; private set; }

        public TaskCompletionSource FirstProgress { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Action<MigrationProgress>? OnProgress { get; set; }

        public Action? OnPostCopy { get; set; }

        public ValueTask MigrationProgressAsync(string instanceUuid, MigrationProgress progress, CancellationToken cancellationToken)
        {
            lock (Progress)
            {
                Progress.Add(progress);
            }
            OnProgress?.Invoke(progress);
            FirstProgress.TrySetResult();
            return ValueTask.CompletedTask;
        }

        public Func<ValueTask<string>>? OnRecoverPostCopy { get; set; }

        public int Recoveries { get; set; }

        public ValueTask<string> RecoverPostCopyAsync(string instanceUuid, CancellationToken cancellationToken) =>
            OnRecoverPostCopy?.Invoke() ?? throw new InvalidOperationException("This test expects no post-copy recovery.");

        public ValueTask MigrationSwitchedToPostCopyAsync(string instanceUuid, CancellationToken cancellationToken)
        {
            PostCopySwitches++;
            OnPostCopy?.Invoke();
            return ValueTask.CompletedTask;
        }
    }
}
