using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.Virt;
using Ferry.Virt.Qemu;
using Xunit.Abstractions;

namespace Ferry.Tests.Virt.Qemu;

/// <summary>
/// Live migration between two QEMU drivers with their own (not shared) instances paths, on the test guest: its
/// counter must continue on the destination and its memory checksum stay right (tools/test-guest/README.md).
/// "Hot" guests rewrite a working set far larger than bandwidth × downtime, so pre-copy alone never ends.
/// </summary>
[Trait("Requires", "qemu")]
public sealed class QemuLiveMigrationTests(TestGuestFixture fixture, ITestOutputHelper output) : QemuDriverTest(TimeSpan.FromSeconds(120)), IClassFixture<TestGuestFixture>
{
    private const int HotRegionMib = 24;
    private const string HotDirtyMiBps = "400"; // more than TCG can write: the dirty rate follows the vCPU's CPU share
    private const int HotBandwidthMiBps = 16;  // 16 MiB/s × 300 ms = 4.8 MiB ≪ 24 MiB working set
    // Post-copy still has ~20 MiB to send after the switch: ~1.3 s at 16 MiB/s, which a loaded CI machine once spent
    // before the test could cut the link; ~5 s at this rate.
    private const int InterruptibleBandwidthMiBps = 4;
    private const string RootDiskBackend = "/machine/peripheral/disk0-dev/virtio-backend";

    private QemuDriver NewDriver(string host, string address = "127.0.0.1")
    {
        var driver = new QemuDriver(new QemuDriverOptions
        {
            HostName = host,
            InstancesPath = Path.Combine(Root, host),
            TestGuestKernelPath = fixture.KernelPath,
            MigrationAddress = address,
            HostAddress = address,
        }, new TestOutputLogger<QemuDriver>(output, host));
        Drivers.Add(driver);
        return driver;
    }

    private static GuestSpec Guest(string dirtyMiBps, int regionMib = QemuTestGuest.DefaultRegionMib) => new()
    {
        Uuid = Guid.NewGuid().ToString(),
        Name = "instance-" + Random.Shared.Next(1, 0xffff).ToString("x8", CultureInfo.InvariantCulture),
        Vcpus = 1,
        MemoryMb = 64,
        RootGb = 1,
        ImageRef = QemuTestGuest.DefaultImageRef,
        Metadata = new Dictionary<string, string>
        {
            [QemuTestGuest.DirtyRateMetadataKey] = dirtyMiBps,
            [QemuTestGuest.RegionMetadataKey] = regionMib.ToString(CultureInfo.InvariantCulture),
        },
    };

    private static LiveMigrationPlan Plan(string incomingUri, long bandwidthMiBps) => new()
    {
        MigrationUuid = Guid.NewGuid().ToString(),
        DestHost = "dest",
        IncomingUri = incomingUri,
        BandwidthMiBps = bandwidthMiBps,
        DowntimeMs = 300,
        DowntimeSteps = 3,
        DowntimeDelaySecondsPerGiB = 0,
        CompletionTimeoutSecondsPerGiB = 0,
    };

    /// <summary>Spawns the guest on a fresh source, waits for it to run, and prepares a fresh destination.</summary>
    private async Task<Pair> PrepareAsync(GuestSpec guest, bool blockMigration = false, int parallelConnections = 1,
        string sourceAddress = "127.0.0.1", string destAddress = "127.0.0.1")
    {
        var source = NewDriver("src", sourceAddress);
        var dest = NewDriver("dst", destAddress);
        await source.SpawnAsync(guest, reuseDisks: false, Ct);
        var sourcePid = source.GetProcessId(guest.Uuid)!.Value;
        Pids.Add((sourcePid, guest.Uuid));
        await WaitForSamplesAsync(source, guest.Uuid, 2);
        var uri = await dest.PreLiveMigrationAsync(guest, sharedInstancePath: false, blockMigration, parallelConnections, Ct);
        var destPid = dest.GetProcessId(guest.Uuid)!.Value;
        Pids.Add((destPid, guest.Uuid));
        return new Pair(source, dest, guest, sourcePid, destPid, uri);
    }

    private sealed record Pair(QemuDriver Source, QemuDriver Dest, GuestSpec Guest, int SourcePid, int DestPid, string IncomingUri);

    /// <summary>Waits until the console log holds at least <paramref name="count"/> status lines.</summary>
    private async Task<IReadOnlyList<QemuTestGuest.Sample>> WaitForSamplesAsync(QemuDriver driver, string uuid, int count, TimeSpan? within = null)
    {
        var log = driver.ConsoleLogPath(uuid);
        var started = Stopwatch.StartNew();
        while (true)
        {
            var text = File.Exists(log) ? await File.ReadAllTextAsync(log, Ct) : "";
            var samples = QemuTestGuest.ParseSamples(text);
            if (samples.Count >= count)
            {
                return samples;
            }
            if (started.Elapsed > (within ?? TimeSpan.FromSeconds(30)))
            {
                Assert.Fail($"waiting for {count} status lines of {uuid}: got {samples.Count} after {started.Elapsed.TotalSeconds:F1} s; log: {text}");
            }
            await Task.Delay(100, Ct);
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what, TimeSpan within)
    {
        var started = Stopwatch.StartNew();
        while (!condition())
        {
            if (started.Elapsed > within)
            {
                Assert.Fail($"{what}: not reached after {started.Elapsed.TotalSeconds:F1} s");
            }
            await Task.Delay(50);
        }
    }

    private static (int RegionMib, int KibPerTick) GuestParameters(GuestSpec guest)
    {
        var append = QemuTestGuest.KernelAppend(guest).Split(' ').Select(p => p.Split('=')).ToDictionary(p => p[0], p => int.Parse(p[1], CultureInfo.InvariantCulture));
        return (append["region_mib"], append["dirty_kib_per_tick"]);
    }

    /// <summary>Counters increase and every line matches the closed form; Healing (more lines needed) only for a TCG destination.</summary>
    /// <param name="destination">The host the guest moved to (the TCG stale-page tolerance applies there); null for a source log.</param>
    /// <param name="label">Names the log in a failure message (kept apart from the log: a prefix would hide its first line from the check).</param>
    private static QemuTestGuest.Integrity AssertSamplesIntact(QemuDriver? destination, GuestSpec guest, IReadOnlyList<QemuTestGuest.Sample> samples, string label, string log)
    {
        var (region, kib) = GuestParameters(guest);
        for (var i = 1; i < samples.Count; i++)
        {
            Assert.True(samples[i].Counter > samples[i - 1].Counter, $"counter did not increase: {samples[i - 1]} then {samples[i]}");
        }
        // Under TCG, QEMU 7.2 may hand over a stale copy of a page; the guest heals (QemuTestGuest.TcgStaleCounterTicks).
        var (verdict, detail) = QemuTestGuest.CheckIntegrity(log, region, kib, tolerateStalePage: destination?.Accel == "tcg");
        Assert.True(verdict != QemuTestGuest.Integrity.Lost, $"{detail}: {label}: {log[Math.Max(0, log.Length - 2000)..]}");
        return verdict;
    }

    /// <summary>After Completed: the destination continues the guest (not a reboot) with intact memory; the source copy is gone.</summary>
    private async Task AssertMovedAsync(Pair pair, long lastSourceCounter)
    {
        var (source, dest, guest) = (pair.Source, pair.Dest, pair.Guest);
        Assert.Equal(GuestPowerState.Paused, await source.QueryPowerStateAsync(guest.Uuid, Ct)); // postmigrate, never resumed
        var sourceLog = await File.ReadAllTextAsync(source.ConsoleLogPath(guest.Uuid), Ct);
        Assert.Equal(QemuTestGuest.Integrity.Intact, AssertSamplesIntact(null, guest, QemuTestGuest.ParseSamples(sourceLog), "source", sourceLog));
        await source.PostLiveMigrationAtSourceAsync(guest, sharedInstancePath: false, Ct);
        await dest.PostLiveMigrationAtDestinationAsync(guest, Ct);
        Assert.False(QemuProcess.IsAlive(pair.SourcePid, guest.Uuid), "the source QEMU survived PostLiveMigrationAtSource");
        Assert.False(Directory.Exists(source.InstanceDirectory(guest.Uuid)));
        Assert.Equal(GuestPowerState.Running, await dest.QueryPowerStateAsync(guest.Uuid, Ct));
        // At least two lines, and more while a stale page under TCG heals (CheckIntegrity).
        for (var lines = 2; ; lines++)
        {
            var samples = await WaitForSamplesAsync(dest, guest.Uuid, lines);
            Assert.True(samples[0].Counter >= lastSourceCounter, $"the destination restarted the counter ({samples[0].Counter} < {lastSourceCounter}): a reboot, not a migration");
            var log = await File.ReadAllTextAsync(dest.ConsoleLogPath(guest.Uuid), Ct);
            if (AssertSamplesIntact(dest, guest, QemuTestGuest.ParseSamples(log), "destination", log) == QemuTestGuest.Integrity.Intact)
            {
                break;
            }
        }
    }

    /// <summary>After Failed or Cancelled: the guest still runs on the source, and the destination rolls back without a trace.</summary>
    private async Task AssertStayedAsync(Pair pair)
    {
        var (source, dest, guest) = (pair.Source, pair.Dest, pair.Guest);
        Assert.Equal(GuestPowerState.Running, await source.QueryPowerStateAsync(guest.Uuid, Ct));
        var before = (await WaitForSamplesAsync(source, guest.Uuid, 1)).Count;
        var after = await WaitForSamplesAsync(source, guest.Uuid, before + 2);
        Assert.Equal(QemuTestGuest.Integrity.Intact, AssertSamplesIntact(null, guest, after, "source", await File.ReadAllTextAsync(source.ConsoleLogPath(guest.Uuid), Ct)));
        var jobs = await source.ExecuteQmpAsync(guest.Uuid, "query-block-jobs", null, Ct);
        Assert.Equal(0, jobs.GetArrayLength());
        var nodes = await source.ExecuteQmpAsync(guest.Uuid, "query-named-block-nodes", null, Ct);
        Assert.DoesNotContain(nodes.EnumerateArray(), n => n.GetProperty("drv").GetString() == "nbd");

        await dest.RollbackLiveMigrationAtDestinationAsync(guest, destroyDisks: true, Ct);
        Assert.False(QemuProcess.IsAlive(pair.DestPid, guest.Uuid), "the destination QEMU survived the rollback");
        Assert.False(Directory.Exists(dest.InstanceDirectory(guest.Uuid)));
        Assert.Null(dest.GetGuest(guest.Uuid));
    }

    private static async Task<long> LastCounterAsync(QemuDriver driver, string uuid) =>
        QemuTestGuest.ParseSamples(await File.ReadAllTextAsync(driver.ConsoleLogPath(uuid))).Last().Counter;

    private void Report(string name, Stopwatch wall, RecordingCallbacks callbacks)
    {
        var final = callbacks.Samples.LastOrDefault();
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{name}: wall {wall.ElapsedMilliseconds} ms, samples {callbacks.Samples.Count}, total-time {final?.TotalTimeMs} ms, downtime {final?.DowntimeMs} ms, " +
            $"memory sent {final?.MemoryProcessedBytes / (1 << 20)} MiB, disk {final?.DiskProcessedBytes / (1 << 20)}/{final?.DiskTotalBytes / (1 << 20)} MiB, " +
            $"iterations {final?.Iteration}, post-copy {callbacks.PostCopySwitches}"));
    }

    /// <summary>
    /// Two hosts on their own loopback addresses (127.0.0.2 and .3): the destination QEMU listens only on its inbound
    /// address, the URI it hands back names it, and the source reaches it there.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task LiveMigrate_HostsOnTheirOwnAddresses_DestinationListensOnlyOnItsInboundAddress(bool blockMigration)
    {
        var guest = Guest(dirtyMiBps: "4");
        var pair = await PrepareAsync(guest, blockMigration, sourceAddress: "127.0.0.2", destAddress: "127.0.0.3");

        var endpoints = QemuDriver.IncomingEndpoints.Parse(pair.IncomingUri);
        Assert.StartsWith("tcp:127.0.0.3:", endpoints.MigrationUri, StringComparison.Ordinal);
        var listening = await ListeningSockets.OfProcessAsync(pair.DestPid);
        Assert.Equal(blockMigration ? 2 : 1, listening.Count); // the memory stream, and the NBD server of a block migration
        Assert.All(listening, l => Assert.Equal(IPAddress.Parse("127.0.0.3"), l.Address));
        Assert.True(await ListeningSockets.RefusesAsync("127.0.0.2", listening[0].Port), "the destination also listens on the source's address");
        if (blockMigration)
        {
            Assert.Contains("127.0.0.3", endpoints.NbdUri, StringComparison.Ordinal);
        }
        Assert.Empty(await ListeningSockets.OfProcessAsync(pair.SourcePid));
        var counter = await LastCounterAsync(pair.Source, guest.Uuid);

        var outcome = await pair.Source.LiveMigrateAsync(guest, Plan(pair.IncomingUri, 64) with { BlockMigration = blockMigration }, new RecordingCallbacks(), Ct);

        Assert.Equal(LiveMigrationOutcome.Completed, outcome);
        await AssertMovedAsync(pair, counter);
    }

    [Fact]
    public async Task LiveMigrate_PreCopyBetweenTwoHosts_GuestContinuesWithIntactMemory()
    {
        var pair = await PrepareAsync(Guest(dirtyMiBps: "4"));
        var callbacks = new RecordingCallbacks();
        var counter = await LastCounterAsync(pair.Source, pair.Guest.Uuid);
        var wall = Stopwatch.StartNew();

        var outcome = await pair.Source.LiveMigrateAsync(pair.Guest, Plan(pair.IncomingUri, 64), callbacks, Ct);

        Report("pre-copy", wall, callbacks);
        Assert.Equal(LiveMigrationOutcome.Completed, outcome);
        var final = callbacks.Samples.Last();
        Assert.NotNull(final.DowntimeMs);
        Assert.True(final.TotalTimeMs > 0, $"total time {final.TotalTimeMs}");
        Assert.Equal(0, callbacks.PostCopySwitches);
        Assert.DoesNotContain(callbacks.Samples, s => s.PostCopy);
        await AssertMovedAsync(pair, counter);
    }

    [Fact]
    public async Task LiveMigrate_ParallelConnections_MovesMemoryOverMultifdChannels()
    {
        var pair = await PrepareAsync(Guest(dirtyMiBps: "4"), parallelConnections: 2);
        var callbacks = new RecordingCallbacks();
        var counter = await LastCounterAsync(pair.Source, pair.Guest.Uuid);

        var outcome = await pair.Source.LiveMigrateAsync(pair.Guest, Plan(pair.IncomingUri, 64) with { ParallelConnections = 2 }, callbacks, Ct);

        Assert.Equal(LiveMigrationOutcome.Completed, outcome);
        foreach (var driver in new[] { pair.Source, pair.Dest })
        {
            var capabilities = await driver.ExecuteQmpAsync(pair.Guest.Uuid, "query-migrate-capabilities", null, Ct);
            Assert.Contains(capabilities.EnumerateArray(), c => c.GetProperty("capability").GetString() == "multifd" && c.GetProperty("state").GetBoolean());
            var parameters = await driver.ExecuteQmpAsync(pair.Guest.Uuid, "query-migrate-parameters", null, Ct);
            Assert.Equal(2, parameters.GetProperty("multifd-channels").GetInt32());
        }
        await AssertMovedAsync(pair, counter);
    }

    [Fact]
    public async Task LiveMigrate_BlockMigration_MirrorsOverlayOverDestinationsOwnBase()
    {
        var guest = Guest(dirtyMiBps: "4");
        var pair = await PrepareAsync(guest, blockMigration: true);
        // On 7.2 "qemu-io disk0 …" is refused (virtio-blk does not share write on node disk0): go through the
        // device's own BlockBackend. qemu-io prints to QEMU's stdout, so the HMP reply is empty on success.
        var written = await HmpAsync(pair.Source, guest.Uuid, $"qemu-io -d {RootDiskBackend} \"write -P 0x5a 0 1M\"");
        Assert.Equal("", written.Trim());
        var callbacks = new RecordingCallbacks();
        var counter = await LastCounterAsync(pair.Source, guest.Uuid);
        var wall = Stopwatch.StartNew();

        var outcome = await pair.Source.LiveMigrateAsync(guest, Plan(pair.IncomingUri, 64) with { BlockMigration = true }, callbacks, Ct);

        Report("block", wall, callbacks);
        Assert.Equal(LiveMigrationOutcome.Completed, outcome);
        Assert.Contains(callbacks.Samples, s => s.DiskTotalBytes >= 1 << 20);
        var final = callbacks.Samples.Last();
        Assert.Equal(final.DiskTotalBytes, final.DiskProcessedBytes);
        Assert.NotNull(final.DowntimeMs);
        await AssertMovedAsync(pair, counter);
        // The NBD export is gone after the switch.
        var exports = await pair.Dest.ExecuteQmpAsync(guest.Uuid, "query-block-exports", null, Ct);
        Assert.Equal(0, exports.GetArrayLength());
        // Read the pattern back from the destination's overlay once its QEMU has flushed and closed it.
        await pair.Dest.PowerOffAsync(guest.Uuid, Ct);
        var disk = Path.Combine(pair.Dest.InstanceDirectory(guest.Uuid), "disk");
        var read = await RunAsync("qemu-io", "-r", "-f", "qcow2", disk, "-c", "read -P 0x5a 0 1M", "-c", "read -P 0 1M 1M");
        Assert.DoesNotContain("Pattern verification failed", read);
        Assert.Contains("read 1048576/1048576 bytes at offset 0", read);
        Assert.Contains("read 1048576/1048576 bytes at offset 1048576", read);
        // The overlay sits on the destination's own _base copy, which was never copied over.
        var info = JsonNode.Parse(await RunAsync("qemu-img", "info", "-U", "--output=json", disk))!;
        var destBase = Path.Combine(pair.Dest.BaseDirectory, Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(guest.ImageRef))));
        Assert.Equal(destBase, (string?)info["backing-filename"]);
        Assert.Equal("qcow2", (string?)info["format"]);
    }

    [Fact]
    public async Task LiveMigrate_NonConvergingWithPostCopyTimeoutAction_CompletesInPostCopy()
    {
        var pair = await PrepareAsync(Guest(HotDirtyMiBps, HotRegionMib));
        var callbacks = new RecordingCallbacks();
        var counter = await LastCounterAsync(pair.Source, pair.Guest.Uuid);
        var wall = Stopwatch.StartNew();

        var outcome = await pair.Source.LiveMigrateAsync(pair.Guest, Plan(pair.IncomingUri, HotBandwidthMiBps) with
        {
            CompletionTimeoutSecondsPerGiB = 3,
            TimeoutAction = CompletionTimeoutAction.ForceComplete,
            PermitPostCopy = true,
        }, callbacks, Ct);

        Report("post-copy", wall, callbacks);
        Assert.Equal(LiveMigrationOutcome.Completed, outcome);
        Assert.Equal(1, callbacks.PostCopySwitches);
        Assert.Contains(callbacks.Samples, s => s.PostCopy);
        Assert.True(wall.Elapsed >= TimeSpan.FromSeconds(3), $"completed after {wall.Elapsed}: the guest converged, so this proves nothing about post-copy");
        Assert.False(pair.Source.AbortLiveMigration(pair.Guest.Uuid));
        await AssertMovedAsync(pair, counter);
    }

    [Fact]
    public async Task LiveMigrate_NonConvergingWithAutoConverge_Completes()
    {
        // 24 MiB/s (1.5 × the link) over 8 MiB (well above 16 MiB/s × 300 ms): pre-copy alone never ends, but a
        // moderate throttle does, so the test stays short on a loaded machine (a maximal dirtier needs ~99 %, minutes).
        var pair = await PrepareAsync(Guest("24", regionMib: 8));
        var callbacks = new RecordingCallbacks();
        var counter = await LastCounterAsync(pair.Source, pair.Guest.Uuid);
        var wall = Stopwatch.StartNew();

        var outcome = await pair.Source.LiveMigrateAsync(pair.Guest, Plan(pair.IncomingUri, HotBandwidthMiBps) with { PermitAutoConverge = true }, callbacks, Ct);

        Report("auto-converge", wall, callbacks);
        Assert.Equal(LiveMigrationOutcome.Completed, outcome);
        Assert.True(callbacks.Samples.Last().Iteration > 2, "a hot guest needs several passes while the throttle rises");
        Assert.Equal(0, callbacks.PostCopySwitches);
        // Many bitmap syncs make QEMU 7.2's TCG stale-page race (QemuTestGuest.TcgStaleCounterTicks) likely here.
        await AssertMovedAsync(pair, counter);
    }

    [Fact]
    public async Task LiveMigrate_NonConvergingWithAbortTimeoutAction_CancelledAndGuestStaysOnSource()
    {
        var pair = await PrepareAsync(Guest(HotDirtyMiBps, HotRegionMib));
        var callbacks = new RecordingCallbacks();
        var wall = Stopwatch.StartNew();

        var outcome = await pair.Source.LiveMigrateAsync(pair.Guest, Plan(pair.IncomingUri, HotBandwidthMiBps) with
        {
            CompletionTimeoutSecondsPerGiB = 2,
            TimeoutAction = CompletionTimeoutAction.Abort,
        }, callbacks, Ct);

        Report("timeout-abort", wall, callbacks);
        Assert.Equal(LiveMigrationOutcome.Cancelled, outcome);
        Assert.True(wall.Elapsed >= TimeSpan.FromSeconds(2), $"cancelled after {wall.Elapsed}, before the 2 s completion timeout");
        await AssertStayedAsync(pair);
    }

    [Fact]
    public async Task AbortLiveMigration_WhileActive_CancelledAndGuestStaysOnSource()
    {
        var pair = await PrepareAsync(Guest(HotDirtyMiBps, HotRegionMib));
        var callbacks = new RecordingCallbacks();
        Assert.False(pair.Source.AbortLiveMigration(pair.Guest.Uuid));

        var migrate = pair.Source.LiveMigrateAsync(pair.Guest, Plan(pair.IncomingUri, HotBandwidthMiBps), callbacks, Ct);
        await WaitUntilAsync(() => callbacks.Samples.Any(s => s.MemoryProcessedBytes > 4 << 20), "4 MiB sent", TimeSpan.FromSeconds(30));
        Assert.True(pair.Source.AbortLiveMigration(pair.Guest.Uuid));

        Assert.Equal(LiveMigrationOutcome.Cancelled, await migrate);
        Assert.False(pair.Source.AbortLiveMigration(pair.Guest.Uuid));
        await AssertStayedAsync(pair);
    }

    [Fact]
    public async Task LiveMigrate_DestinationKilledDuringCopy_FailedAndGuestStaysOnSource()
    {
        var pair = await PrepareAsync(Guest(HotDirtyMiBps, HotRegionMib));
        var callbacks = new RecordingCallbacks();

        var migrate = pair.Source.LiveMigrateAsync(pair.Guest, Plan(pair.IncomingUri, HotBandwidthMiBps), callbacks, Ct);
        await WaitUntilAsync(() => callbacks.Samples.Any(s => s.MemoryProcessedBytes > 4 << 20), "4 MiB sent", TimeSpan.FromSeconds(30));
        using (var destination = Process.GetProcessById(pair.DestPid))
        {
            destination.Kill();
        }

        Assert.Equal(LiveMigrationOutcome.Failed, await migrate);
        await AssertStayedAsync(pair);
    }

    [Fact]
    public async Task ForceCompleteLiveMigration_WithoutPostCopy_PausesGuestAndCompletes()
    {
        var pair = await PrepareAsync(Guest(HotDirtyMiBps, HotRegionMib));
        var callbacks = new RecordingCallbacks();
        var counter = await LastCounterAsync(pair.Source, pair.Guest.Uuid);
        Assert.False(pair.Source.ForceCompleteLiveMigration(pair.Guest.Uuid));
        var wall = Stopwatch.StartNew();

        var migrate = pair.Source.LiveMigrateAsync(pair.Guest, Plan(pair.IncomingUri, HotBandwidthMiBps), callbacks, Ct);
        await WaitUntilAsync(() => callbacks.Samples.Any(s => s.MemoryProcessedBytes > 4 << 20), "4 MiB sent", TimeSpan.FromSeconds(30));
        Assert.True(pair.Source.ForceCompleteLiveMigration(pair.Guest.Uuid));

        Assert.Equal(LiveMigrationOutcome.Completed, await migrate);
        Report("force-complete (pause)", wall, callbacks);
        Assert.True(callbacks.Samples.Last().TotalTimeMs > 0, "the final sample carries QEMU's total time");
        Assert.Equal(0, callbacks.PostCopySwitches);
        await AssertMovedAsync(pair, counter);
    }

    /// <summary>
    /// Starts a migration of a hot guest that is forced into post-copy once 4 MiB crossed, and returns when the
    /// destination runs the guest (from then on an interrupted stream pauses the migration; earlier, while the
    /// destination still loads the device state, the destination QEMU would exit instead).
    /// </summary>
    private async Task<Task<LiveMigrationOutcome>> StartPostCopyAsync(Pair pair, LiveMigrationPlan plan, RecordingCallbacks callbacks)
    {
        var migrate = pair.Source.LiveMigrateAsync(pair.Guest, plan with { PermitPostCopy = true }, callbacks, Ct);
        await WaitUntilAsync(() => callbacks.Samples.Any(s => s.MemoryProcessedBytes > 4 << 20), "4 MiB sent", TimeSpan.FromSeconds(30));
        Assert.True(pair.Source.ForceCompleteLiveMigration(pair.Guest.Uuid));
        await WaitUntilAsync(() => callbacks.PostCopySwitches == 1, "switch to post-copy", TimeSpan.FromSeconds(30));
        var started = Stopwatch.StartNew();
        while ((await pair.Dest.ExecuteQmpAsync(pair.Guest.Uuid, "query-status", null, Ct)).GetProperty("status").GetString() != "running")
        {
            Assert.True(started.Elapsed < TimeSpan.FromSeconds(30), "the destination never ran the guest");
            await Task.Delay(20, Ct);
        }
        Assert.False(migrate.IsCompleted, "post-copy ended before the test could interrupt it");
        return migrate;
    }

    /// <summary>Callbacks that resume a broken post-copy stream the way the compute layer does: through the destination driver.</summary>
    private RecordingCallbacks ResumingAtDestination(Pair pair) => new()
    {
        OnRecoverPostCopy = () => new ValueTask<string>(pair.Dest.RecoverPostCopyAtDestinationAsync(pair.Guest.Uuid, Ct)),
    };

    [Fact]
    public async Task LiveMigrate_PostCopyStreamCut_ResumedByMigrateRecoverAndGuestContinues()
    {
        var pair = await PrepareAsync(Guest(HotDirtyMiBps, HotRegionMib));
        await using var network = new TcpRelay(pair.IncomingUri);
        var callbacks = ResumingAtDestination(pair);
        var counter = await LastCounterAsync(pair.Source, pair.Guest.Uuid);
        var wall = Stopwatch.StartNew();
        var migrate = await StartPostCopyAsync(pair, Plan(network.Uri, InterruptibleBandwidthMiBps), callbacks);

        network.Cut();
        var outcome = await migrate;

        Report("post-copy cut and resumed", wall, callbacks);
        Assert.Equal(LiveMigrationOutcome.Completed, outcome);
        Assert.True(callbacks.Recoveries >= 1, "the stream was cut but never resumed");
        await AssertMovedAsync(pair, counter);
    }

    [Fact]
    public async Task LiveMigrate_PostCopyLinkGoesSilent_StallCutAndResumed()
    {
        var pair = await PrepareAsync(Guest(HotDirtyMiBps, HotRegionMib));
        await using var network = new TcpRelay(pair.IncomingUri);
        var callbacks = ResumingAtDestination(pair);
        var counter = await LastCounterAsync(pair.Source, pair.Guest.Uuid);
        var migrate = await StartPostCopyAsync(pair, Plan(network.Uri, InterruptibleBandwidthMiBps) with { PostCopyStallSeconds = 2 }, callbacks);

        network.Silence(); // no reset reaches either QEMU: only the monitor's stall check can notice
        var outcome = await migrate;

        Assert.Equal(LiveMigrationOutcome.Completed, outcome);
        Assert.True(callbacks.Recoveries >= 1, "the link went silent but the stream was never resumed");
        await AssertMovedAsync(pair, counter);
    }

    [Fact]
    public async Task LiveMigrate_PostCopySourceFrozenLongerThanAMonitorTimeout_AskedAgainAndCompletes()
    {
        var pair = await PrepareAsync(Guest(HotDirtyMiBps, HotRegionMib));
        var callbacks = ResumingAtDestination(pair);
        var counter = await LastCounterAsync(pair.Source, pair.Guest.Uuid);
        var migrate = await StartPostCopyAsync(pair, Plan(pair.IncomingUri, InterruptibleBandwidthMiBps), callbacks);

        // A source host so busy that its QEMU answers nothing for longer than a QMP command may take (20 s).
        Assert.Equal(0, Ferry.Host.Distributed.ProcessSignals.Send(pair.SourcePid, "STOP"));
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(25), Ct);
            Assert.False(migrate.IsCompleted, "the migration ended while its source QEMU was stopped");
        }
        finally
        {
            Ferry.Host.Distributed.ProcessSignals.Send(pair.SourcePid, "CONT");
        }

        Assert.Equal(LiveMigrationOutcome.Completed, await migrate);
        await AssertMovedAsync(pair, counter);
    }

    /// <summary>QEMU 7.2 waits for good in postcopy-recover when the destination never answers: the monitor must give up, not hang.</summary>
    [Fact]
    public async Task LiveMigrate_PostCopyResumeHandshakeNeverAnswered_GivesUpAndTouchesNeitherCopy()
    {
        var pair = await PrepareAsync(Guest(HotDirtyMiBps, HotRegionMib));
        await using var network = new TcpRelay(pair.IncomingUri);
        TcpRelay? deadPath = null;
        var callbacks = new RecordingCallbacks
        {
            OnRecoverPostCopy = async () =>
            {
                // The destination listens again, but the path to it drops everything from now on.
                deadPath ??= new TcpRelay(await pair.Dest.RecoverPostCopyAtDestinationAsync(pair.Guest.Uuid, Ct));
                deadPath.Silence();
                return deadPath.Uri;
            },
        };
        try
        {
            var migrate = await StartPostCopyAsync(pair, Plan(network.Uri, InterruptibleBandwidthMiBps) with { PostCopyStallSeconds = 2 }, callbacks);
            network.Cut();

            var error = await Assert.ThrowsAsync<Ferry.Core.Errors.FerryException>(() => migrate);
            Assert.Contains("post-copy", error.Message, StringComparison.Ordinal);
            Assert.True(callbacks.Recoveries >= 1, "the stream was cut but no resume was tried");
            Assert.True(QemuProcess.IsAlive(pair.SourcePid, pair.Guest.Uuid), "the source holds part of the guest's memory: it must stay");
            Assert.True(QemuProcess.IsAlive(pair.DestPid, pair.Guest.Uuid), "the destination runs the guest: it must stay");
            var status = await pair.Source.ExecuteQmpAsync(pair.Guest.Uuid, "query-status", null, Ct);
            Assert.NotEqual("running", status.GetProperty("status").GetString()); // never resumed on the source (split brain)
        }
        finally
        {
            if (deadPath is not null)
            {
                await deadPath.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task LiveMigrate_PostCopyCannotResume_FailsLoudlyAndTouchesNeitherCopy()
    {
        var pair = await PrepareAsync(Guest(HotDirtyMiBps, HotRegionMib));
        await using var network = new TcpRelay(pair.IncomingUri);
        var callbacks = new RecordingCallbacks { OnRecoverPostCopy = () => throw new Ferry.Core.Errors.FerryException("the destination host does not answer") };
        var migrate = await StartPostCopyAsync(pair, Plan(network.Uri, InterruptibleBandwidthMiBps) with { PostCopyRecoveryAttempts = 2 }, callbacks);

        network.Cut();

        var error = await Assert.ThrowsAsync<Ferry.Core.Errors.FerryException>(() => migrate);
        Assert.Contains("post-copy", error.Message, StringComparison.Ordinal);
        Assert.Equal(2, callbacks.Recoveries);
        Assert.False(pair.Source.AbortLiveMigration(pair.Guest.Uuid));
        Assert.True(QemuProcess.IsAlive(pair.SourcePid, pair.Guest.Uuid), "the source holds part of the guest's memory: it must stay");
        Assert.True(QemuProcess.IsAlive(pair.DestPid, pair.Guest.Uuid), "the destination runs the guest: it must stay");
        var status = await pair.Source.ExecuteQmpAsync(pair.Guest.Uuid, "query-status", null, Ct);
        Assert.NotEqual("running", status.GetProperty("status").GetString()); // never resumed on the source (split brain)
        // The destination still waits for its pages: a later resume by hand remains possible.
        var incoming = await pair.Dest.ExecuteQmpAsync(pair.Guest.Uuid, "query-migrate", null, Ct);
        Assert.Equal("postcopy-paused", incoming.GetProperty("status").GetString());
    }

    /// <summary>
    /// The destination QEMU dies after the switch (OOM, an operator's kill): the resumes the compute layer asks of the
    /// destination fail with that QEMU's last words, and the monitor's error quotes them, as a QEMU that failed to start is quoted.
    /// </summary>
    [Fact]
    public async Task LiveMigrate_DestinationQemuDiesAfterPostCopySwitch_ErrorQuotesItsLastLineAndLog()
    {
        var pair = await PrepareAsync(Guest(HotDirtyMiBps, HotRegionMib));
        var callbacks = ResumingAtDestination(pair);
        var log = Path.Combine(pair.Dest.InstanceDirectory(pair.Guest.Uuid), "qemu.log");
        var migrate = await StartPostCopyAsync(pair, Plan(pair.IncomingUri, InterruptibleBandwidthMiBps) with { PostCopyRecoveryAttempts = 2 }, callbacks);

        // SIGTERM makes QEMU say why it stops ("terminating on signal 15 from pid …") before it goes.
        using (var kill = Process.Start(new ProcessStartInfo("kill") { ArgumentList = { "-TERM", pair.DestPid.ToString(CultureInfo.InvariantCulture) } })!)
        {
            await kill.WaitForExitAsync(Ct);
            Assert.Equal(0, kill.ExitCode);
        }

        var error = await Assert.ThrowsAsync<Ferry.Core.Errors.FerryException>(() => migrate);
        Assert.Contains("broke during post-copy", error.Message, StringComparison.Ordinal);
        Assert.Contains("terminating on signal 15", error.Message, StringComparison.Ordinal);
        Assert.Contains($"Last lines of {log}:", error.Details, StringComparison.Ordinal);
        Assert.Contains("terminating on signal 15", error.Details, StringComparison.Ordinal);
        Assert.True(QemuProcess.IsAlive(pair.SourcePid, pair.Guest.Uuid), "the source holds part of the guest's memory: it must stay");
    }

    [Fact]
    public async Task PreLiveMigration_GuestFilesAlreadyHere_RefusedAndLeftAlone()
    {
        var dest = NewDriver("dst");
        var guest = Guest(dirtyMiBps: "4");
        var leftover = Path.Combine(dest.InstanceDirectory(guest.Uuid), "disk");
        Directory.CreateDirectory(Path.GetDirectoryName(leftover)!);
        await File.WriteAllTextAsync(leftover, "an earlier copy", Ct);

        await Assert.ThrowsAsync<DestinationDiskExistsException>(() => dest.PreLiveMigrationAsync(guest, sharedInstancePath: false, blockMigration: true, parallelConnections: 1, Ct));

        Assert.Equal("an earlier copy", await File.ReadAllTextAsync(leftover, Ct));
        Assert.Null(dest.GetGuest(guest.Uuid));
    }

    [Fact]
    public async Task RecoverPostCopyAtDestination_NoPausedPostCopy_Refused()
    {
        var pair = await PrepareAsync(Guest(dirtyMiBps: "4"));

        var error = await Assert.ThrowsAsync<Ferry.Core.Errors.ConflictException>(() => pair.Dest.RecoverPostCopyAtDestinationAsync(pair.Guest.Uuid, Ct));

        Assert.Contains("not waiting for a post-copy resume", error.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<Ferry.Core.Errors.ConflictException>(() => pair.Source.RecoverPostCopyAtDestinationAsync(pair.Guest.Uuid, Ct));
    }

    [Fact]
    public void DowntimeSchedule_FollowsNovaSteps()
    {
        // Nova's docstring example: 10 steps, 30 s per GiB, 3 GiB, 400 ms → every 90 s: 40, 76, 112 … 400 ms.
        var schedule = new DowntimeSchedule(new LiveMigrationPlan
        {
            MigrationUuid = "m", DestHost = "d", DowntimeMs = 400, DowntimeSteps = 10, DowntimeDelaySecondsPerGiB = 30,
        }, dataGiB: 3);

        Assert.Equal(40, schedule.LimitMsAt(TimeSpan.Zero));
        Assert.Equal(40, schedule.LimitMsAt(TimeSpan.FromSeconds(89)));
        Assert.Equal(76, schedule.LimitMsAt(TimeSpan.FromSeconds(90)));
        Assert.Equal(364, schedule.LimitMsAt(TimeSpan.FromSeconds(810)));
        Assert.Equal(400, schedule.LimitMsAt(TimeSpan.FromSeconds(900)));
        Assert.Equal(400, schedule.LimitMsAt(TimeSpan.FromHours(1)));
    }

    [Fact]
    public void IncomingEndpoints_RoundTripsMigrationAndNbdAddresses()
    {
        var text = new QemuDriver.IncomingEndpoints("tcp:127.0.0.1:4711", QemuDriver.IncomingEndpoints.FormatNbdUri("127.0.0.1", 4712, "disk0")).ToString();

        var parsed = QemuDriver.IncomingEndpoints.Parse(text);

        Assert.Equal("tcp:127.0.0.1:4711 nbd:127.0.0.1:4712:exportname=disk0", text);
        Assert.Equal("tcp:127.0.0.1:4711", parsed.MigrationUri);
        Assert.Equal(("127.0.0.1", "4712", "disk0"), parsed.Nbd());
        Assert.Null(QemuDriver.IncomingEndpoints.Parse("tcp:127.0.0.1:4711").NbdUri);
        Assert.Equal(("::1", "4712", "disk0"), QemuDriver.IncomingEndpoints.Parse("tcp:[::1]:1 nbd:[::1]:4712:exportname=disk0").Nbd());
        Assert.Throws<Ferry.Core.Errors.BadRequestException>(() => QemuDriver.IncomingEndpoints.Parse("tcp:a:1 nbd:a:x:exportname=disk0"));
    }

    private async Task<string> HmpAsync(QemuDriver driver, string uuid, string commandLine)
    {
        var reply = await driver.ExecuteQmpAsync(uuid, "human-monitor-command", new JsonObject { ["command-line"] = commandLine }, Ct);
        return reply.ValueKind == JsonValueKind.String ? reply.GetString() ?? "" : reply.ToString();
    }

    private async Task<string> RunAsync(string binary, params string[] args)
    {
        var psi = new ProcessStartInfo(binary) { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }
        using var process = Process.Start(psi)!;
        var stdout = await process.StandardOutput.ReadToEndAsync(Ct);
        await process.WaitForExitAsync(Ct);
        return stdout;
    }

    private sealed class RecordingCallbacks : IDriverCallbacks
    {
        private int _postCopySwitches;

        public ConcurrentQueue<MigrationProgress> Samples { get; } = new();

        public int PostCopySwitches => Volatile.Read(ref _postCopySwitches);

        public ValueTask MigrationProgressAsync(string instanceUuid, MigrationProgress progress, CancellationToken cancellationToken)
        {
            Samples.Enqueue(progress);
            return ValueTask.CompletedTask;
        }

        private int _recoveries;

        public Func<ValueTask<string>>? OnRecoverPostCopy { get; set; }

        public int Recoveries => Volatile.Read(ref _recoveries);

        public ValueTask<string> RecoverPostCopyAsync(string instanceUuid, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _recoveries);
            return OnRecoverPostCopy?.Invoke() ?? throw new InvalidOperationException("This test expects no post-copy recovery.");
        }

        public ValueTask MigrationSwitchedToPostCopyAsync(string instanceUuid, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _postCopySwitches);
            return ValueTask.CompletedTask;
        }
    }
}
