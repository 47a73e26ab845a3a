using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Ferry.Core.Volumes;
using Ferry.Virt;
using Ferry.Virt.Qemu;
using Ferry.Virt.Storage;

namespace Ferry.Benchmarks.Qemu;

/// <summary>
/// <c>./ferry bench qemu --volumes [--json] [--repeat N] [--data-mib N]</c> (issue 12): what a live migration sends for a guest
/// booted from a volume against a guest with a local root disk of the same size, and how long each takes. Both are the
/// <see cref="RamMib"/> MiB test guest, idle, its region written at boot, moved between the same two in-process
/// <see cref="QemuDriver"/>s as <see cref="QemuMigrationBench"/>:
/// <list type="bullet">
/// <item>the volume-backed guest's root disk (/dev/vda, boot index 0) is a <see cref="DiskGb"/> GiB volume of the real
/// <see cref="QemuStorageDaemonBackend"/> (one qemu-storage-daemon for the run), opened over NBD by both hosts; the driver
/// migrates its RAM only;</item>
/// <item>the local-disk guest has a <see cref="DiskGb"/> GiB qcow2 overlay, moved by block migration (the destination exports a
/// fresh overlay over NBD, the source mirrors the top layer into it, then RAM follows).</item>
/// </list>
/// Before each move the same <c>--data-mib</c> MiB of non-zero data is written to the root disk (the volume through its export,
/// the local disk through the guest's own disk device); after it the guest must go on on the destination and the data read
/// back there. The two cases alternate (which goes first flips every round) for <see cref="DefaultRounds"/> rounds.
/// </summary>
internal static class VolumeMigrationBench
{
    public const int RamMib = 64;

    /// <summary>The root disk's virtual size, the volume's and the local overlay's alike.</summary>
    public const int DiskGb = 1;

    public const int DefaultDataMib = 64;

    /// <summary>Three rounds of the two cases take about a minute on a quiet 2-core machine.</summary>
    public const int DefaultRounds = 3;

    /// <summary>
    /// MiB/s, for the memory stream and (block migration) the mirror alike: a capped link makes the time follow the bytes
    /// rather than how much CPU the loopback copy gets on a shared 2-core machine. The parallel bench's capped cells use it too.
    /// </summary>
    public const int BandwidthMiBps = 64;

    /// <summary>The plan's completion timeout, then abort. RAM plus the disk data is under 1 GiB, which the driver counts as 1 GiB.</summary>
    public const int CompletionTimeoutSeconds = 60;

    /// <summary>The byte qemu-io writes and then expects on the destination.</summary>
    private const string Pattern = "0xa5";

    /// <summary>
    /// The local root disk's virtio backend (QOM path): <c>qemu-io -d</c> writes through the device's own block backend. Through
    /// the node (<c>qemu-io disk0</c>) QEMU refuses a second writer beside the device; a read through the node is allowed.
    /// </summary>
    private const string LocalDiskBackend = "/machine/peripheral/disk0-dev/virtio-backend";

    private const string LocalDiskNode = "disk0";

    private static readonly TimeSpan s_harnessLimit = TimeSpan.FromSeconds(CompletionTimeoutSeconds + 30);
    private static readonly TimeSpan s_qemuIoLimit = TimeSpan.FromSeconds(30);
    private static readonly VolumeConnector s_connector = new() { Host = "bench-src", Ip = "127.0.0.1" };

    private static void Log(string line) => Console.Error.WriteLine($"[bench qemu --volumes {DateTime.Now:HH:mm:ss}] {line}");

    public static async Task<int> RunAsync(QemuBenchArguments args)
    {
        var dataMib = args.DataMib ?? DefaultDataMib;
        if (dataMib > DiskGb * 1024)
        {
            Console.Error.WriteLine($"ferry bench qemu --volumes: --data-mib {dataMib} does not fit the {DiskGb} GiB root disk");
            return 2;
        }
        var repeat = args.Repeat ?? DefaultRounds;
        using var run = new QemuBenchRun("fqv");
        var (kernel, work, logs) = (run.Kernel, run.Work, run.Logs);
        var results = new List<VolumeMigrationResult>();
        try
        {
            await using var source = QemuMigrationBench.NewDriver("bench-src", Path.Combine(work, "s"), kernel);
            await using var dest = QemuMigrationBench.NewDriver("bench-dst", Path.Combine(work, "d"), kernel);
            var storage = new QemuStorageDaemonBackend(new QemuStorageDaemonOptions
            {
                VolumesDirectory = Path.Combine(work, "volumes"),
                RunDirectory = Path.Combine(work, "run"),
            });
            try
            {
                await storage.StartAsync(run.Token);
                Log($"2 cases × {repeat}, {RamMib} MiB guest, {DiskGb} GiB root disk, {dataMib} MiB written, {BandwidthMiBps} MiB/s, accel {source.Accel}, " +
                    $"qemu-storage-daemon pid {storage.DaemonPid} on port {storage.Port}, work {work}");
                for (var round = 1; round <= repeat; round++)
                {
                    // Which case goes first flips every round, so neither always follows the other's clean-up.
                    RootDiskKind[] order = round % 2 == 1 ? [RootDiskKind.Volume, RootDiskKind.LocalDisk] : [RootDiskKind.LocalDisk, RootDiskKind.Volume];
                    foreach (var kind in order)
                    {
                        run.Token.ThrowIfCancellationRequested();
                        var result = await RunCaseAsync(source, dest, storage, kind, round, dataMib, logs, run.Token);
                        results.Add(result);
                        Log($"{kind} (round {round}): {result.Outcome}, total {result.TotalMs:0} ms (QEMU {result.QemuTotalMs:0} ms), downtime {result.DowntimeMs:0} ms, " +
                            $"RAM {result.RamBytes / (1 << 20):0.0} MiB + disk {result.DiskBytes / (1 << 20):0.0} MiB, continues {result.GuestContinues?.ToString() ?? "—"}, " +
                            $"data {result.DataReadsBack?.ToString() ?? "—"} {result.Note}");
                    }
                }
            }
            finally
            {
                // The daemon runs in a session of its own and would outlive this process.
                await storage.StopAsync(killDaemon: true, CancellationToken.None);
            }
        }
        finally
        {
            QemuMigrationBench.TryDelete(work);
        }

        var report = new VolumeMigrationReport(results, dataMib, run.LoadAtStart, Results.LoadAverage(), run.Clock.Elapsed, QemuMigrationBench.QemuVersion(), repeat);
        Log($"done in {run.Clock.Elapsed.TotalSeconds:0} s");
        Console.Out.Write(args.Json ? report.ToJson() : report.ToMarkdown());
        return 0; // a slower case is a finding in the output, not a harness failure
    }

    private static GuestSpec Guest() => new()
    {
        Uuid = Guid.NewGuid().ToString(),
        Name = "instance-" + Random.Shared.Next(1, 0xffff).ToString("x8", CultureInfo.InvariantCulture),
        Vcpus = 1,
        MemoryMb = RamMib,
        RootGb = DiskGb,
        ImageRef = QemuTestGuest.DefaultImageRef,
        Metadata = new Dictionary<string, string>
        {
            // Written once at boot and never again: every page is non-zero and crosses the wire once.
            [QemuTestGuest.RegionMetadataKey] = (RamMib - QemuMigrationBench.GuestReservedMib).ToString(CultureInfo.InvariantCulture),
            [QemuTestGuest.DirtyRateMetadataKey] = "0",
        },
    };

    /// <summary>Ferry's defaults except the bandwidth, block migration for the local disk and a short completion timeout.</summary>
    private static LiveMigrationPlan Plan(RootDiskKind kind, string uri) => new()
    {
        MigrationUuid = Guid.NewGuid().ToString(),
        DestHost = "bench-dst",
        IncomingUri = uri,
        BlockMigration = kind == RootDiskKind.LocalDisk,
        BandwidthMiBps = BandwidthMiBps,
        CompletionTimeoutSecondsPerGiB = CompletionTimeoutSeconds,
        TimeoutAction = CompletionTimeoutAction.Abort,
    };

    /// <summary>One migration, start to clean-up; whatever goes wrong becomes the case's outcome, never an exception.</summary>
    private static async Task<VolumeMigrationResult> RunCaseAsync(QemuDriver source, QemuDriver dest, QemuStorageDaemonBackend storage, RootDiskKind kind,
        int round, int dataMib, string logs, CancellationToken cancellationToken)
    {
        var guest = Guest();
        var clock = Stopwatch.StartNew();
        var result = new VolumeMigrationResult { Kind = kind, Round = round, Outcome = "not started" };
        var sourceTail = new ConsoleTail(source.ConsoleLogPath(guest.Uuid), clock);
        var destTail = new ConsoleTail(dest.ConsoleLogPath(guest.Uuid), clock);
        var logName = $"volumes-{kind}-r{round.ToString(CultureInfo.InvariantCulture)}";
        var write = string.Create(CultureInfo.InvariantCulture, $"write -P {Pattern} 0 {dataMib}M");
        var read = string.Create(CultureInfo.InvariantCulture, $"read -P {Pattern} 0 {dataMib}M");
        var bytes = (dataMib * (1L << 20)).ToString(CultureInfo.InvariantCulture);
        string? volumeId = null;
        var destDefined = false;
        var completed = false;
        try
        {
            if (kind == RootDiskKind.Volume)
            {
                volumeId = Guid.NewGuid().ToString();
                await storage.CreateAsync(volumeId, DiskGb, sourceImagePath: null, cancellationToken);
                var connection = await storage.ConnectionInfoAsync(volumeId, s_connector, cancellationToken);
                // Filled through the volume's export, as any NBD client of the volume service would, before the guest boots from it.
                var wrote = await RunToolAsync("qemu-io", ["-f", "raw", "-c", write, $"nbd://{connection.Host}:{connection.Port}/{connection.Export}"], cancellationToken);
                if (!wrote.Contains($"wrote {bytes}/{bytes} bytes", StringComparison.Ordinal))
                {
                    return result with { Outcome = $"error: qemu-io could not write the volume: {wrote.Trim()}" };
                }
                guest = guest with { VolumeBacked = true, Volumes = [new GuestVolume(volumeId, "/dev/vda", connection, BootIndex: 0)] };
            }
            await source.SpawnAsync(guest, reuseDisks: false, cancellationToken);
            if (!await sourceTail.WaitAsync(t => t.Points.Count >= 1, TimeSpan.FromSeconds(60), cancellationToken))
            {
                return result with { Outcome = "error: the guest printed no status line within 60 s" };
            }
            var boot = sourceTail.Boot ?? (0, 0);
            if (kind == RootDiskKind.LocalDisk)
            {
                var wrote = await QemuIoAsync(source, guest.Uuid, $"-d {LocalDiskBackend}", write, $"wrote {bytes}/{bytes} bytes", cancellationToken);
                if (!wrote.Ok)
                {
                    return result with { Outcome = $"error: qemu-io could not write the local disk: {wrote.Output}" };
                }
            }

            var uri = await dest.PreLiveMigrationAsync(guest, sharedInstancePath: false, blockMigration: kind == RootDiskKind.LocalDisk, parallelConnections: 1, cancellationToken);
            destDefined = true;
            var recorder = new ProgressRecorder(clock, dest);
            var startMs = clock.Elapsed.TotalMilliseconds;
            var (outcome, _, endMs) = await HarnessLimit.MigrateAsync(source, guest, Plan(kind, uri), recorder, s_harnessLimit, clock, cancellationToken);
            var wallMs = endMs - startMs;
            result = result with { Outcome = outcome };
            if (!result.Completed)
            {
                return result with { Note = $"gave up after {wallMs / 1000:0.0} s" };
            }

            completed = true;
            var info = await QemuMigrationBench.QueryMigrateAsync(source, guest.Uuid, cancellationToken);
            var (qemuTotalMs, downtimeMs, figures, ramBytes) = QemuMigrationBench.MigrationFigures(recorder.Last, info, wallMs);
            result = result with
            {
                TotalMs = wallMs,
                QemuTotalMs = figures == "wall clock" ? double.NaN : qemuTotalMs,
                DowntimeMs = downtimeMs,
                RamBytes = ramBytes,
                DiskBytes = recorder.Last?.DiskProcessedBytes ?? double.NaN,
            };
            var (continues, note) = await QemuMigrationBench.FinishAndCheckGuestAsync(
                source, dest, guest, sourceTail, destTail, boot, Path.Combine(logs, logName), result.Note, cancellationToken);
            var readBack = await QemuIoAsync(dest, guest.Uuid, kind == RootDiskKind.Volume ? guest.Volumes[0].NodeName : LocalDiskNode, read,
                $"read {bytes}/{bytes} bytes", cancellationToken);
            if (!readBack.Ok)
            {
                note = (note + " read back on the destination: " + readBack.Output).Trim();
            }
            return result with { GuestContinues = continues, DataReadsBack = readBack.Ok, Note = note };
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return result with { Outcome = $"error: {ex.GetType().Name}: {ex.Message}" };
        }
        finally
        {
            if (!completed)
            {
                QemuMigrationBench.CopyQuietly(sourceTail.Path, Path.Combine(logs, logName + "-src.log"));
            }
            QemuMigrationBench.CopyQuietly(destTail.Path, Path.Combine(logs, logName + "-dst.log"));
            await QemuMigrationBench.CleanUpAsync(source, dest, guest, destDefined, completed);
            if (volumeId is not null)
            {
                try
                {
                    await storage.DeleteAsync(volumeId, CancellationToken.None);
                }
                catch (Exception ex)
                {
                    // The daemon, and every export with it, ends with the run.
                    Log($"could not delete volume {volumeId}: {ex.Message}");
                }
            }
        }
    }

    /// <summary>
    /// qemu-io inside the guest's QEMU (HMP). It prints to QEMU's stdout, the guest's qemu.log, and the monitor answers only
    /// errors: the log is read from where it stood until <paramref name="expect"/> or a failure shows up.
    /// </summary>
    private static async Task<(bool Ok, string Output)> QemuIoAsync(QemuDriver driver, string uuid, string target, string command, string expect, CancellationToken cancellationToken)
    {
        var log = Path.Combine(driver.InstanceDirectory(uuid), "qemu.log");
        var start = File.Exists(log) ? new FileInfo(log).Length : 0;
        var reply = (await driver.ExecuteQmpAsync(uuid, "human-monitor-command",
            new JsonObject { ["command-line"] = $"qemu-io {target} \"{command}\"" }, cancellationToken)).GetString() ?? "";
        var waited = Stopwatch.StartNew();
        var output = reply;
        while (waited.Elapsed < s_qemuIoLimit)
        {
            output = reply + await ReadFromAsync(log, start, cancellationToken);
            if (output.Contains(expect, StringComparison.Ordinal) || output.Contains("failed", StringComparison.OrdinalIgnoreCase) || reply.Length > 0)
            {
                break;
            }
            await Task.Delay(50, cancellationToken);
        }
        output = output.Trim();
        return (output.Contains(expect, StringComparison.Ordinal) && !output.Contains("Pattern verification failed", StringComparison.Ordinal), output);
    }

    private static async Task<string> ReadFromAsync(string path, long offset, CancellationToken cancellationToken)
    {
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        stream.Seek(offset, SeekOrigin.Begin);
        using var reader = new StreamReader(stream);
        return await reader.ReadToEndAsync(cancellationToken);
    }

    /// <summary>A host tool's stdout and stderr together; killed when cancelled.</summary>
    private static async Task<string> RunToolAsync(string file, IReadOnlyList<string> arguments, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {file}");
        try
        {
            var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var errors = process.StandardError.ReadToEndAsync(cancellationToken);
            await process.WaitForExitAsync(cancellationToken);
            return await output + await errors;
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }
}
