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

    private static void Log(string line) => Console.Error.WriteLine($"[bench net {DateTime.Now:HH:mm:ss}] {line}");

    internal sealed record Cell(double LinkMbit, string Guest, double DirtyMiBps, double LatencyMs)
    {
        public string Key => string.Create(CultureInfo.InvariantCulture, $"{LinkMbit}M-{LatencyMs}ms-{Guest}");

        public string Link => LatencyMs > 0 ? string.Create(CultureInfo.InvariantCulture, $"{LinkMbit} Mbit/s, {LatencyMs} ms") : string.Create(CultureInfo.InvariantCulture, $"{LinkMbit} Mbit/s");

        /// <summary>RAM ÷ link bandwidth: the time the guest's memory needs on the link once.</summary>
        public double BoundSeconds => RamMib * 1024 * 1024 * 8 / (LinkMbit * 1_000_000);
    }

    internal sealed record CellResult(Cell Cell, string Outcome, double TotalMs, double DowntimeMs, double BlackoutMs, long Probes, long Answers, string Note)
    {
        public double Ratio => TotalMs / 1000 / Cell.BoundSeconds;
    }

    /// <param name="latencyMs">Every link's delay each way (NetnsLab's DelayWire), 0 for none: source and destination are 4×MS apart in round trip.</param>
    public static async Task<int> RunAsync(bool json, double latencyMs)
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
            // The hot guest's rate is measured over its first seconds, as a prober would see it settle.
            await Task.Delay(TimeSpan.FromSeconds(2), cancellationToken);

            var uri = await dest.PreLiveMigrationAsync(guest, sharedInstancePath: false, blockMigration: false, parallelConnections: 1, cancellationToken);
            destDefined = true;
            var recorder = new ProgressRecorder(clock, dest);
            var startedAt = prober.Elapsed;
            var outcome = await source.LiveMigrateAsync(guest, Plan(cell, uri), recorder, cancellationToken);
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
            var (gap, _) = prober.LongestGap(startedAt);
            return new CellResult(cell, "completed", totalMs, downtimeMs, gap.TotalMilliseconds, prober.Sent, prober.Replies.Count,
                figures == "driver" ? "" : $"(times from {figures})");
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
        text.AppendLine("| link | guest | outcome | total | total ÷ (RAM ÷ link) | QEMU downtime | blackout (longest gap) | blackout − downtime | answers |");
        text.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var r in results)
        {
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {r.Cell.Link} | {r.Cell.Guest} ({r.Cell.DirtyMiBps} MiB/s) | {r.Outcome} | {r.TotalMs / 1000:0.00} s | {r.Ratio:0.00}× | {r.DowntimeMs:0} ms | {r.BlackoutMs:0} ms | " +
                $"{r.BlackoutMs - r.DowntimeMs:0} ms | {r.Answers}/{r.Probes} {r.Note}|");
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
                ["answers"] = r.Answers,
                ["probes"] = r.Probes,
            }).ToList(),
        }) + Environment.NewLine;
}
