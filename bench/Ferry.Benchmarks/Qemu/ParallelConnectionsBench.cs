using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Ferry.Virt;
using Ferry.Virt.Qemu;

namespace Ferry.Benchmarks.Qemu;

/// <summary>
/// <c>./ferry bench qemu --parallel [--json] [--repeat N] [--only 128M-unlimited-x2,…]</c>: the same two in-process
/// <see cref="QemuDriver"/>s as <see cref="QemuMigrationBench"/>, moving an idle test guest whose region (RAM − 5 MiB)
/// is written once at boot, over 1, 2 and 4 parallel connections (above 1, QEMU multifd), for 128 and 256 MiB of RAM,
/// unlimited bandwidth and 64 MiB/s. Each cell is compared with the 1-connection cell of the same RAM and bandwidth
/// from the same run: that measurement is what the operator default <c>--lm-parallel-connections 1</c> rests on.
/// The grid runs <see cref="DefaultRounds"/> times (<c>--repeat N</c>); the table shows each cell's median.
/// </summary>
internal static class ParallelConnectionsBench
{
    public static readonly int[] RamMib = [128, 256];

    /// <summary>MiB/s; 0 = unlimited (the driver then sets max-bandwidth to 8 GiB/s, QEMU's own default being 128 MiB/s).</summary>
    public static readonly long[] BandwidthsMiBps = [0, 64];

    public static readonly int[] Connections = [1, 2, 4];

    /// <summary>
    /// A cell takes 2–7 s (boot, fill, move, check), and a sub-second migration on a shared 2-core machine varies by
    /// tens of percent from one try to the next: five rounds of the grid take about 4 minutes and give a median.
    /// </summary>
    public const int DefaultRounds = 5;

    /// <summary>The plan's completion timeout, then abort. The data is under 1 GiB, which the driver counts as 1 GiB.</summary>
    public const int CompletionTimeoutSeconds = 60;

    /// <summary>The harness's own bound, past the completion timeout: abort, then give up 30 s later.</summary>
    private static readonly TimeSpan s_harnessLimit = TimeSpan.FromSeconds(CompletionTimeoutSeconds + 30);

    private static void Log(string line) => Console.Error.WriteLine($"[bench qemu --parallel {DateTime.Now:HH:mm:ss}] {line}");

    public static async Task<int> RunAsync(QemuBenchArguments args)
    {
        var json = args.Json;
        var repeat = args.Repeat ?? DefaultRounds;
        var only = args.Only;
        using var run = new QemuBenchRun("fqp");
        var (kernel, work, logs) = (run.Kernel, run.Work, run.Logs);
        var cells = (from ram in RamMib
                     from bandwidth in BandwidthsMiBps
                     from connections in Connections
                     select new ParallelCell(ram, bandwidth, connections))
            .Where(c => only is null || only.Contains(c.Key))
            .ToList();
        var results = new List<ParallelResult>();
        await using (var source = QemuMigrationBench.NewDriver("bench-src", Path.Combine(work, "s"), kernel))
        await using (var dest = QemuMigrationBench.NewDriver("bench-dst", Path.Combine(work, "d"), kernel))
        {
            Log($"{cells.Count} cells × {repeat}, accel {source.Accel}, work {work}, kernel {kernel}");
            // Rounds over the whole grid rather than N in a row per cell, so a burst of load elsewhere spreads over the cells.
            for (var round = 1; round <= repeat; round++)
            {
                foreach (var cell in cells)
                {
                    run.Token.ThrowIfCancellationRequested();
                    var result = await RunCellAsync(source, dest, cell, round, logs, run.Token);
                    results.Add(result);
                    Log($"{cell.Key} (round {round}): {result.Outcome}, total {result.TotalMs:0} ms, downtime {result.DowntimeMs:0} ms, "
                        + $"{result.TransferredBytes / (1 << 20):0.0} MiB sent ({result.MultifdBytes / (1 << 20):0.0} via multifd), continues {result.GuestContinues?.ToString() ?? "—"} {result.Note}");
                }
            }
        }
        QemuMigrationBench.TryDelete(work);

        var report = new ParallelReport(results, run.LoadAtStart, Results.LoadAverage(), run.Clock.Elapsed, QemuMigrationBench.QemuVersion(), repeat);
        Log($"done in {run.Clock.Elapsed.TotalSeconds:0} s");
        Console.Out.Write(json ? report.ToJson() : report.ToMarkdown());
        return 0; // a slower cell is a finding in the output, not a harness failure
    }

    private static GuestSpec Guest(ParallelCell cell) => new()
    {
        Uuid = Guid.NewGuid().ToString(),
        Name = "instance-" + Random.Shared.Next(1, 0xffff).ToString("x8", CultureInfo.InvariantCulture),
        Vcpus = 1,
        MemoryMb = cell.RamMib,
        RootGb = 1,
        ImageRef = QemuTestGuest.DefaultImageRef,
        Metadata = new Dictionary<string, string>
        {
            // Written once at boot and never again: no zero pages, and nothing to send twice.
            [QemuTestGuest.RegionMetadataKey] = (cell.RamMib - QemuMigrationBench.GuestReservedMib).ToString(CultureInfo.InvariantCulture),
            [QemuTestGuest.DirtyRateMetadataKey] = "0",
        },
    };

    /// <summary>Ferry's defaults except the bandwidth, the connections and a short completion timeout.</summary>
    private static LiveMigrationPlan Plan(ParallelCell cell, string uri) => new()
    {
        MigrationUuid = Guid.NewGuid().ToString(),
        DestHost = "bench-dst",
        IncomingUri = uri,
        BandwidthMiBps = cell.BandwidthMiBps,
        ParallelConnections = cell.Connections,
        CompletionTimeoutSecondsPerGiB = CompletionTimeoutSeconds,
        TimeoutAction = CompletionTimeoutAction.Abort,
    };

    /// <summary>One migration, start to clean-up; whatever goes wrong becomes the cell's outcome, never an exception.</summary>
    private static async Task<ParallelResult> RunCellAsync(QemuDriver source, QemuDriver dest, ParallelCell cell, int round, string logs, CancellationToken cancellationToken)
    {
        var guest = Guest(cell);
        var clock = Stopwatch.StartNew();
        var result = new ParallelResult { Cell = cell, Round = round, Outcome = "not started" };
        var sourceTail = new ConsoleTail(source.ConsoleLogPath(guest.Uuid), clock);
        var destTail = new ConsoleTail(dest.ConsoleLogPath(guest.Uuid), clock);
        var logName = $"parallel-{cell.Key}-r{round.ToString(CultureInfo.InvariantCulture)}";
        var destDefined = false;
        var completed = false;
        try
        {
            await source.SpawnAsync(guest, reuseDisks: false, cancellationToken);
            // The first counter line comes after the boot-time fill: from then on the region is all non-zero.
            if (!await sourceTail.WaitAsync(t => t.Points.Count >= 1, TimeSpan.FromSeconds(60), cancellationToken))
            {
                return result with { Outcome = "error: the guest printed no status line within 60 s" };
            }
            var boot = sourceTail.Boot ?? (0, 0);

            var uri = await dest.PreLiveMigrationAsync(guest, sharedInstancePath: false, blockMigration: false, cell.Connections, cancellationToken);
            destDefined = true;
            var recorder = new ProgressRecorder(clock, dest);
            var startMs = clock.Elapsed.TotalMilliseconds;
            var (outcome, _, endMs) = await HarnessLimit.MigrateAsync(source, guest, Plan(cell, uri), recorder, s_harnessLimit, clock, cancellationToken);
            var wallMs = endMs - startMs;
            result = result with { Outcome = outcome };
            if (!result.Completed)
            {
                return result with { TransferredBytes = recorder.Last?.MemoryProcessedBytes ?? double.NaN, Note = $"gave up after {wallMs / 1000:0.0} s" };
            }

            completed = true;
            var info = await QemuMigrationBench.QueryMigrateAsync(source, guest.Uuid, cancellationToken);
            result = Figures(result, recorder.Last, info, wallMs);
            var (continues, note) = await QemuMigrationBench.FinishAndCheckGuestAsync(
                source, dest, guest, sourceTail, destTail, boot, Path.Combine(logs, logName), result.Note, cancellationToken);
            return result with { GuestContinues = continues, Note = note };
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
        }
    }

    /// <summary>Total time and downtime from the driver's final sample (else query-migrate, else the wall clock); bytes from query-migrate.</summary>
    private static ParallelResult Figures(ParallelResult result, MigrationProgress? last, JsonElement? info, double wallMs)
    {
        var (totalMs, downtimeMs, source, transferred) = QemuMigrationBench.MigrationFigures(last, info, wallMs);
        var multifd = info is { } i && i.TryGetProperty("ram", out var ram) && ram.TryGetProperty("multifd-bytes", out var mb) ? mb.GetDouble() : double.NaN;
        return result with { TotalMs = totalMs, DowntimeMs = downtimeMs, Source = source, TransferredBytes = transferred, MultifdBytes = multifd };
    }
}
