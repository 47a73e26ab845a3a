using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Ferry.Core.Domain;
using Ferry.Host.Distributed;
using Ferry.Virt;
using Ferry.Virt.Qemu;

namespace Ferry.Benchmarks.Qemu;

/// <summary>
/// <c>./ferry bench net [--json] [--link-latency MS]</c> (root): the network blackout of a live migration. Two QEMU hosts, each in a network
/// namespace of a <see cref="NetnsLab"/> whose links are shaped to 1 Gbit/s and to 100 Mbit/s (and delayed MS ms each way); the test guest (its
/// address from the config drive) is probed every millisecond from the root namespace while it moves, and the longest
/// time without an answer is set beside QEMU's own reported downtime. Also total time ÷ (RAM ÷ link bandwidth).
/// The drivers run in this process (as in <see cref="QemuMigrationBench"/>) with their QEMUs, taps and bridges in the
/// namespaces, so the memory stream crosses the shaped veths.
/// </summary>
internal static class NetworkBlackoutBench
{
    private const int RamMib = 64;
    private const string GuestAddress = "192.168.233.50";
    private static readonly TimeSpan s_probeInterval = TimeSpan.FromMilliseconds(1);

    /// <summary>How long the guest is probed before it moves, for the baseline gap.</summary>
    private static readonly TimeSpan s_baseline = TimeSpan.FromSeconds(3);

    private static void Log(string line) => Console.Error.WriteLine($"[bench net {DateTime.Now:HH:mm:ss}] {line}");

    internal sealed record Cell(double LinkMbit, string Guest, double DirtyMiBps, double LatencyMs)
    {
        /// <summary>What `--only` names (the latency is the run's, the same for every cell).</summary>
        public string Key => string.Create(CultureInfo.InvariantCulture, $"{LinkMbit}M-{Guest}");

        public string Link => LatencyMs > 0 ? string.Create(CultureInfo.InvariantCulture, $"{LinkMbit} Mbit/s, {LatencyMs} ms") : string.Create(CultureInfo.InvariantCulture, $"{LinkMbit} Mbit/s");

        /// <summary>RAM ÷ link bandwidth: the time the guest's memory needs on the link once.</summary>
        public double BoundSeconds => RamMib * 1024 * 1024 * 8 / (LinkMbit * 1_000_000);
    }

    /// <summary>
    /// The prober's gaps beside the blackout (the longest gap from the migration's start until the destination answers):
    /// the one across the switch-over (QEMU's stop-and-copy and the destination's first answers), the longest one that
    /// ended before the stop (the guest running but not answering: throttled, or its vCPU not scheduled on a busy
    /// machine), and the longest one in the same guest's <see cref="s_baseline"/> before the migration (what this
    /// machine's load does to a guest that does not move).
    /// </summary>
    internal sealed record Gaps(double SwitchOverMs, double BeforeStopMs, double BaselineMs, long MaxThrottlePercent)
    {
        public static readonly Gaps None = new(double.NaN, double.NaN, double.NaN, 0);
    }

    internal sealed record CellResult(Cell Cell, string Outcome, double TotalMs, double DowntimeMs, double BlackoutMs, long Probes, long Answers, string Note,
        Gaps? Gaps = null, long WireDropped = 0, long WireLost = 0)
    {
        public double Ratio => TotalMs / 1000 / Cell.BoundSeconds;
    }

    /// <param name="latencyMs">Every link's delay each way (NetnsLab's DelayWire), 0 for none: source and destination are 4×MS apart in round trip.</param>
    public static async Task<int> RunAsync(bool json, double latencyMs, string? only = null)
    {
        if (NetnsLab.Unavailable() is { } missing)
        {
            Console.Error.WriteLine($"ferry bench net: {missing}");
            return 2;
        }
        var root = QemuMigrationBench.RepositoryRoot();
        var kernel = QemuMigrationBench.BuildTestGuest(root);
        var load = Results.LoadAverage();
        var total = Stopwatch.StartNew();
        // A converging guest (1 MiB/s) and a hot one, dirtying well over half of what the slower link carries.
        Cell[] cells = [new(1000, "converging", 1, latencyMs), new(1000, "hot", 24, latencyMs), new(100, "converging", 1, latencyMs), new(100, "hot", 8, latencyMs)];
        if (only is not null)
        {
            var wanted = only.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            cells = cells.Where(c => wanted.Contains(c.Key, StringComparer.OrdinalIgnoreCase)).ToArray();
        }
        var results = new List<CellResult>();
        foreach (var cell in cells)
        {
            var result = await RunCellAsync(cell, kernel, CancellationToken.None);
            results.Add(result);
            Log($"{cell.Key}: {result.Outcome}, total {result.TotalMs / 1000:0.00} s ({result.Ratio:0.00}× RAM÷bandwidth), QEMU downtime {result.DowntimeMs:0} ms, " +
                $"blackout {result.BlackoutMs:0} ms, {result.Answers}/{result.Probes} answers {result.Note}");
        }
        Console.Out.Write(json ? ToJson(results, load, total.Elapsed) : ToMarkdown(results, load, total.Elapsed));
        return 0; // a missed target is a finding in the output, not a harness failure
    }

    private static async Task<CellResult> RunCellAsync(Cell cell, string kernel, CancellationToken cancellationToken)
    {
        var work = Path.Combine("/tmp", $"fbn{Environment.ProcessId}-{cell.Key}");
        Directory.CreateDirectory(work);
        await using var lab = await NetnsLab.CreateAsync(work, hosts: 2, cell.LinkMbit, cell.LatencyMs > 0 ? cell.LatencyMs : null, guestGateway: "192.168.233.1/24", cancellationToken);
        await using var source = NewDriver(lab, 1, Path.Combine(work, "s"), kernel);
        await using var dest = NewDriver(lab, 2, Path.Combine(work, "d"), kernel);
        await source.InitHostAsync(cancellationToken);
        await dest.InitHostAsync(cancellationToken);
        var guest = Guest(cell);
        var clock = Stopwatch.StartNew();
        var destDefined = false;
        var completed = false;
        try
        {
            await source.SpawnAsync(guest, reuseDisks: false, cancellationToken);
            await using var prober = TestGuestProber.Start(IPAddress.Parse(GuestAddress), s_probeInterval, TimeSpan.FromMinutes(5));
            await prober.WaitForReplyAsync(TimeSpan.Zero, TimeSpan.FromSeconds(60), cancellationToken);
            // The baseline: the same guest, not moving, probed as long as a fast migration lasts.
            var baselineFrom = prober.Elapsed;
            await Task.Delay(s_baseline, cancellationToken);
            var (baseline, _) = prober.LongestGap(baselineFrom);

            var uri = await dest.PreLiveMigrationAsync(guest, sharedInstancePath: false, blockMigration: false, parallelConnections: 1, cancellationToken);
            destDefined = true;
            var recorder = new ProgressRecorder(clock, dest);
            var monitor = new SourceMonitor(source, guest.Uuid, clock);
            using var stopMonitor = new CancellationTokenSource();
            var monitoring = monitor.RunAsync(stopMonitor.Token);
            var startedAt = prober.Elapsed;
            var clockAtStart = clock.Elapsed;
            var outcome = await source.LiveMigrateAsync(guest, Plan(cell, uri), recorder, cancellationToken);
            await stopMonitor.CancelAsync();
            await monitoring;
            var info = outcome == LiveMigrationOutcome.Completed ? await QemuMigrationBench.QueryMigrateAsync(source, guest.Uuid, cancellationToken) : null;
            var wallMs = (prober.Elapsed - startedAt).TotalMilliseconds;
            if (outcome != LiveMigrationOutcome.Completed)
            {
                return new CellResult(cell, outcome.ToString().ToLowerInvariant(), wallMs, double.NaN, double.NaN, prober.Sent, prober.Replies.Count, "");
            }
            completed = true;
            await source.PostLiveMigrationAtSourceAsync(guest, sharedInstancePath: false, cancellationToken);
            await dest.PostLiveMigrationAtDestinationAsync(guest, cancellationToken);
            // Answers from the destination for a while after the end, so a gap that runs past it is measured whole.
            await prober.WaitForReplyAsync(prober.Elapsed, TimeSpan.FromSeconds(30), cancellationToken);
            await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            var (totalMs, downtimeMs, figures, _) = QemuMigrationBench.MigrationFigures(recorder.Last, info, wallMs);
            var (gap, gapAt) = prober.LongestGap(startedAt);
            var gaps = Split(prober, startedAt, wallMs - downtimeMs, baseline, monitor.MaxThrottlePercent);
            var (wireDropped, wireLost) = lab.DelayWireFrames;
            Log($"{cell.Key}: longest gap {gap.TotalMilliseconds:0} ms from {(gapAt - startedAt).TotalSeconds:0.000} s, stop at ~{(wallMs - downtimeMs) / 1000:0.000} s, " +
                $"end {wallMs / 1000:0.000} s; switch-over gap {gaps.SwitchOverMs:0} ms, before the stop {gaps.BeforeStopMs:0} ms, baseline {gaps.BaselineMs:0} ms; throttle {Throttle(monitor, clockAtStart)}; " +
                $"delay wires dropped {wireDropped} and lost {wireLost} frames");
            return new CellResult(cell, "completed", totalMs, downtimeMs, gap.TotalMilliseconds, prober.Sent, prober.Replies.Count,
                figures == "driver" ? "" : $"(times from {figures})", gaps, wireDropped, wireLost);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return new CellResult(cell, $"error: {ex.GetType().Name}: {ex.Message}", double.NaN, double.NaN, double.NaN, 0, 0, "");
        }
        finally
        {
            await QemuMigrationBench.CleanUpAsync(source, dest, guest, destDefined, completed);
            QemuMigrationBench.TryDelete(work);
        }
    }

    /// <summary>
    /// The gaps between answers from <paramref name="startedAt"/> on, split at the stop-and-copy (QEMU stops the source
    /// about <c>stopAtMs</c> after the start): the gap that spans it, and the longest one that ended before it.
    /// </summary>
    private static Gaps Split(TestGuestProber prober, TimeSpan startedAt, double stopAtMs, TimeSpan baseline, long maxThrottle)
    {
        var times = prober.Replies.Where(r => r.ReceivedAt >= startedAt).Select(r => (r.ReceivedAt - startedAt).TotalMilliseconds).ToList();
        double beforeStop = 0, switchOver = 0;
        for (var i = 1; i < times.Count; i++)
        {
            var gap = times[i] - times[i - 1];
            if (times[i] < stopAtMs)
            {
                beforeStop = Math.Max(beforeStop, gap);
            }
            else if (times[i - 1] <= stopAtMs)
            {
                switchOver = gap; // the last answer before the stop to the first one after it
            }
        }
        return new Gaps(switchOver, beforeStop, baseline.TotalMilliseconds, maxThrottle);
    }

    private static string Throttle(SourceMonitor monitor, TimeSpan clockAtStart)
    {
        var changes = string.Join(" ", monitor.ThrottleChanges.Select(t => Invariant($"{(t.AtMs - clockAtStart.TotalMilliseconds) / 1000:0.0}s:{t.Percent}%")));
        return changes.Length == 0 ? "none" : changes;
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private static QemuDriver NewDriver(NetnsLab lab, int host, string instances, string kernel)
    {
        Directory.CreateDirectory(instances);
        return new QemuDriver(new QemuDriverOptions
        {
            HostName = $"compute{host}",
            InstancesPath = instances,
            TestGuestKernelPath = kernel,
            Accel = "auto",
            KillGuestsOnDispose = true,
            NetworkNamespace = lab.Namespace(host),
            Bridge = NetnsLab.HostBridge,
            MigrationAddress = lab.HostAddress(host),
            HostAddress = lab.HostAddress(host),
        });
    }

    private static GuestSpec Guest(Cell cell)
    {
        var port = Guid.NewGuid().ToString();
        return new GuestSpec
        {
            Uuid = Guid.NewGuid().ToString(),
            Name = "instance-" + Random.Shared.Next(1, 0xffff).ToString("x8", CultureInfo.InvariantCulture),
            Vcpus = 1,
            MemoryMb = RamMib,
            RootGb = 1,
            ImageRef = QemuTestGuest.DefaultImageRef,
            ConfigDrive = true,
            Metadata = new Dictionary<string, string>
            {
                // The region covers the RAM and is written at boot: no zero pages, so RAM ÷ bandwidth is a real bound.
                [QemuTestGuest.RegionMetadataKey] = (RamMib - QemuMigrationBench.GuestReservedMib).ToString(CultureInfo.InvariantCulture),
                [QemuTestGuest.DirtyRateMetadataKey] = cell.DirtyMiBps.ToString(CultureInfo.InvariantCulture),
            },
            Vifs =
            [
                new Vif
                {
                    Id = port,
                    MacAddress = "fa:16:3e:be:0c:01",
                    NetworkId = "bench",
                    NetworkLabel = "bench",
                    Ips = [new VifIp(GuestAddress, "bench", "192.168.233.0/24", "192.168.233.1")],
                },
            ],
        };
    }

    /// <summary>Nova's defaults but no bandwidth cap (the link is the cap) and auto-converge for the hot guest.</summary>
    private static LiveMigrationPlan Plan(Cell cell, string uri) => new()
    {
        MigrationUuid = Guid.NewGuid().ToString(),
        DestHost = "compute2",
        IncomingUri = uri,
        BandwidthMiBps = 0,
        DowntimeMs = QemuMigrationBench.DowntimeLimitMs,
        DowntimeSteps = 3,
        DowntimeDelaySecondsPerGiB = Math.Max(1, (int)Math.Ceiling(cell.BoundSeconds * 16 / 3)),
        CompletionTimeoutSecondsPerGiB = (int)Math.Ceiling(cell.BoundSeconds * 16 * 6),
        TimeoutAction = CompletionTimeoutAction.ForceComplete,
        PermitAutoConverge = cell.Guest == "hot",
    };

    private static string ToMarkdown(List<CellResult> results, string load, TimeSpan elapsed)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Network blackout of a live migration ({RamMib} MiB test guest, {QemuMigrationBench.QemuVersion()}, 1 ms UDP prober in the root namespace, " +
            $"load {load}, {elapsed.TotalSeconds:0} s):");
        text.AppendLine();
        text.AppendLine("| link | guest | outcome | total | total ÷ (RAM ÷ link) | QEMU downtime | blackout (longest gap) | blackout − downtime | switch-over gap | longest gap before the stop | baseline gap (not moving, 3 s) | throttle | answers | frames the delay wires dropped / lost |");
        text.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in results)
        {
            var g = r.Gaps ?? Gaps.None;
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {r.Cell.Link} | {r.Cell.Guest} ({r.Cell.DirtyMiBps} MiB/s) | {r.Outcome} | {r.TotalMs / 1000:0.00} s | {r.Ratio:0.00}× | {r.DowntimeMs:0} ms | {r.BlackoutMs:0} ms | " +
                $"{r.BlackoutMs - r.DowntimeMs:0} ms | {g.SwitchOverMs:0} ms | {g.BeforeStopMs:0} ms | {g.BaselineMs:0} ms | {(g.MaxThrottlePercent > 0 ? $"{g.MaxThrottlePercent}%" : "none")} | {r.Answers}/{r.Probes} {r.Note}| {r.WireDropped} / {r.WireLost} |");
        }
        return text.ToString();
    }

    private static string ToJson(List<CellResult> results, string load, TimeSpan elapsed) =>
        JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["load"] = load,
            ["seconds"] = Math.Round(elapsed.TotalSeconds),
            ["cells"] = results.Select(r => new Dictionary<string, object>
            {
                ["link_mbit"] = r.Cell.LinkMbit,
                ["link_latency_ms"] = r.Cell.LatencyMs,
                ["guest"] = r.Cell.Guest,
                ["dirty_mibps"] = r.Cell.DirtyMiBps,
                ["outcome"] = r.Outcome,
                ["total_ms"] = double.IsNaN(r.TotalMs) ? -1 : Math.Round(r.TotalMs),
                ["ratio_to_bound"] = double.IsNaN(r.Ratio) ? -1 : Math.Round(r.Ratio, 2),
                ["qemu_downtime_ms"] = double.IsNaN(r.DowntimeMs) ? -1 : Math.Round(r.DowntimeMs),
                ["blackout_ms"] = double.IsNaN(r.BlackoutMs) ? -1 : Math.Round(r.BlackoutMs),
                ["switch_over_gap_ms"] = Rounded(r.Gaps?.SwitchOverMs),
                ["longest_gap_before_stop_ms"] = Rounded(r.Gaps?.BeforeStopMs),
                ["baseline_gap_ms"] = Rounded(r.Gaps?.BaselineMs),
                ["max_throttle_percent"] = r.Gaps?.MaxThrottlePercent ?? 0,
                ["answers"] = r.Answers,
                ["probes"] = r.Probes,
                ["delay_wire_frames_dropped"] = r.WireDropped,
                ["delay_wire_frames_lost"] = r.WireLost,
            }).ToList(),
        }) + Environment.NewLine;

    private static double Rounded(double? ms) => ms is { } v && !double.IsNaN(v) ? Math.Round(v) : -1;
}
