using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Ferry.Benchmarks.Qemu;

/// <summary>
/// Follows a test guest's console.log (tools/test-guest/README.md) and stamps each <c>counter=</c> line with the time it
/// was first seen, so the guest's real dirty rate can be measured from wall time rather than trusted from its command line.
/// </summary>
internal sealed partial class ConsoleTail
{
    private readonly List<Point> _points = [];
    private readonly Lock _lock = new();
    private int _consumedLines;

    public ConsoleTail(string path, Stopwatch clock)
    {
        Path = path;
        Clock = clock;
    }

    public string Path { get; }

    public Stopwatch Clock { get; }

    /// <summary>The region and per-tick rewrite the guest actually uses (it clamps what it was given), from its boot line.</summary>
    public (int RegionMib, int DirtyKibPerTick)? Boot { get; private set; }

    public bool SawCorrupt { get; private set; }

    public sealed record Point(double AtMs, long Counter, uint Checksum);

    public IReadOnlyList<Point> Points
    {
        get
        {
            lock (_lock)
            {
                return [.. _points];
            }
        }
    }

    /// <summary>Reads whatever complete lines were added since the last call.</summary>
    public void Poll()
    {
        string text;
        try
        {
            using var stream = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(stream);
            text = reader.ReadToEnd();
        }
        catch (IOException)
        {
            return;
        }
        catch (UnauthorizedAccessException)
        {
            return;
        }
        var now = Clock.Elapsed.TotalMilliseconds;
        var lines = text.Split('\n');
        // The last element is a partial line (or empty after a final newline): leave it for the next poll.
        for (var i = _consumedLines; i < lines.Length - 1; i++)
        {
            var line = lines[i].TrimEnd('\r');
            if (line.StartsWith("ferry-guest corrupt", StringComparison.Ordinal))
            {
                SawCorrupt = true;
            }
            else if (BootLine().Match(line) is { Success: true } boot)
            {
                Boot = (int.Parse(boot.Groups[1].ValueSpan, CultureInfo.InvariantCulture), int.Parse(boot.Groups[2].ValueSpan, CultureInfo.InvariantCulture));
            }
            else if (CounterLine().Match(line) is { Success: true } m)
            {
                lock (_lock)
                {
                    _points.Add(new Point(now,
                        long.Parse(m.Groups[1].ValueSpan, CultureInfo.InvariantCulture),
                        uint.Parse(m.Groups[2].ValueSpan, NumberStyles.HexNumber, CultureInfo.InvariantCulture)));
                }
            }
        }
        _consumedLines = Math.Max(_consumedLines, lines.Length - 1);
    }

    /// <summary>Polls every 100 ms until <paramref name="done"/> holds or the timeout passes; false on timeout.</summary>
    public async Task<bool> WaitAsync(Func<ConsoleTail, bool> done, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = Clock.Elapsed + timeout;
        while (true)
        {
            Poll();
            if (done(this))
            {
                return true;
            }
            if (Clock.Elapsed > deadline)
            {
                return false;
            }
            await Task.Delay(100, cancellationToken);
        }
    }

    /// <summary>Polls every 100 ms until cancelled (a background follower).</summary>
    public async Task FollowAsync(CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                Poll();
                await Task.Delay(100, cancellationToken);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>The guest's dirty rate in MiB/s over the counter lines seen in [fromMs, toMs]; NaN with fewer than two.</summary>
    public double DirtyRateMiBps(double fromMs, double toMs)
    {
        if (Boot is not { } boot)
        {
            return double.NaN;
        }
        var inside = Points.Where(p => p.AtMs >= fromMs && p.AtMs <= toMs).ToList();
        if (inside.Count < 2 || inside[^1].AtMs <= inside[0].AtMs)
        {
            return double.NaN;
        }
        var ticks = inside[^1].Counter - inside[0].Counter;
        return ticks * boot.DirtyKibPerTick / 1024.0 / ((inside[^1].AtMs - inside[0].AtMs) / 1000.0);
    }

    [GeneratedRegex(@"^ferry-guest boot region_mib=(\d+) dirty_kib_per_tick=(\d+)")]
    private static partial Regex BootLine();

    [GeneratedRegex(@"^ferry-guest counter=(\d+) checksum=([0-9a-f]{8})$")]
    private static partial Regex CounterLine();
}
