using System.Globalization;
using System.Text.RegularExpressions;

namespace Ferry.Virt.Qemu;

/// <summary>
/// What the driver and tests know about the Ferry test guest (tools/test-guest): its command line and the
/// function its printed checksum must equal (tools/test-guest/README.md).
/// </summary>
public static partial class QemuTestGuest
{
    public const string DefaultImageRef = "ferry-test-guest";

    /// <summary>Guest dirty rate in MiB/s (the key the fake driver reads too).</summary>
    public const string DirtyRateMetadataKey = "ferry:dirty_rate_mibps";

    /// <summary>Size of the dirtied region in MiB.</summary>
    public const string RegionMetadataKey = "ferry:region_mib";

    /// <summary>Ticks between status lines (the guest's default 50); large regions checksum less often.</summary>
    public const string StatusEveryTicksMetadataKey = "ferry:status_every_ticks";

    public const int TicksPerSecond = 100;

    public const int DefaultRegionMib = 4;

    /// <summary>The guest's cap (its 32-bit position arithmetic needs pages² &lt; 2³²).</summary>
    public const int MaxRegionMib = 255;

    /// <summary>The kernel command line for a guest: the dirty rate and region come from its metadata.</summary>
    public static string KernelAppend(GuestSpec guest)
    {
        ArgumentNullException.ThrowIfNull(guest);
        var region = DefaultRegionMib;
        if (guest.Metadata.TryGetValue(RegionMetadataKey, out var r) && int.TryParse(r, CultureInfo.InvariantCulture, out var parsedRegion) && parsedRegion > 0)
        {
            region = Math.Min(parsedRegion, MaxRegionMib);
        }
        var kibPerTick = 0;
        if (guest.Metadata.TryGetValue(DirtyRateMetadataKey, out var d) && double.TryParse(d, CultureInfo.InvariantCulture, out var mibps) && mibps > 0)
        {
            kibPerTick = (int)Math.Ceiling(mibps * 1024 / TicksPerSecond);
        }
        var append = string.Create(CultureInfo.InvariantCulture, $"region_mib={region} dirty_kib_per_tick={kibPerTick}");
        if (guest.Metadata.TryGetValue(StatusEveryTicksMetadataKey, out var s) && int.TryParse(s, CultureInfo.InvariantCulture, out var ticks) && ticks > 0)
        {
            append += string.Create(CultureInfo.InvariantCulture, $" status_every_ticks={ticks}");
        }
        return append;
    }

    /// <summary>A parsed <c>ferry-guest counter=N checksum=X</c> line.</summary>
    public sealed record Sample(long Counter, uint Checksum);

    /// <summary>The status lines of a console log, in order (partial last lines are skipped).</summary>
    public static IReadOnlyList<Sample> ParseSamples(string consoleLog)
    {
        ArgumentNullException.ThrowIfNull(consoleLog);
        var samples = new List<Sample>();
        foreach (Match m in SampleLine().Matches(consoleLog))
        {
            samples.Add(new Sample(
                long.Parse(m.Groups[1].ValueSpan, CultureInfo.InvariantCulture),
                uint.Parse(m.Groups[2].ValueSpan, NumberStyles.HexNumber, CultureInfo.InvariantCulture)));
        }
        return samples;
    }

    /// <summary>
    /// QEMU 7.2 under TCG can hand over, in a live migration, a stale copy of a page the guest keeps writing: a race in
    /// TCG's dirty tracking (notdirty_write re-enables the fast write path for a page the migration thread has just
    /// marked clean; fixed upstream, not in Debian's 7.2; KVM is not affected). The guest keeps no state in memory but
    /// its region, and its counter in a register (tools/test-guest/README.md), so it heals: a stale region page is
    /// rewritten within one pass. This margin is from when the counter could come back stale (1–4 ticks seen).
    /// </summary>
    public const int TcgStaleCounterTicks = 16;

    /// <summary>How a console log's status lines stand against the closed form (<see cref="CheckIntegrity"/>).</summary>
    public enum Integrity
    {
        /// <summary>Every line that must match does.</summary>
        Intact,
        /// <summary>Under TCG, the lines since the move do not match yet but may still heal: read more lines.</summary>
        Healing,
        /// <summary>A line proves memory was lost.</summary>
        Lost,
    }

    /// <summary>The most ticks a guest that got a stale page takes to return to the closed form: one pass over the region, plus a stale counter's replay.</summary>
    public static long HealingTicks(int regionMib, int dirtyKibPerTick)
    {
        long pages = regionMib * 256L;
        long pagesPerTick = Math.Min((dirtyKibPerTick + 3) / 4, pages);
        return pagesPerTick == 0 ? TcgStaleCounterTicks : (pages + pagesPerTick - 1) / pagesPerTick + TcgStaleCounterTicks;
    }

    /// <summary>
    /// Checks the status lines of <paramref name="consoleLog"/> against the closed form; the detail says which line
    /// proves memory lost, or which one is still healing. Every line must match at its counter, except under TCG
    /// (<paramref name="tolerateStalePage"/>) from the first line at or after <paramref name="movedAtCounter"/>: there
    /// one run of wrong lines and guest alarms is allowed, for up to <see cref="HealingTicks"/> after its first wrong
    /// line, provided a line then matches exactly; from that line on everything must match again. The run need not
    /// start at <paramref name="movedAtCounter"/>: on shared storage both hosts print to one log, and a source that
    /// copies for seconds prints matching lines after that counter before the destination prints its first.
    /// Between two boots the counter only grows: a line not above the one before it means two copies of the guest
    /// print at once (split brain).
    /// </summary>
    public static (Integrity Verdict, string? Detail) CheckIntegrity(string consoleLog, int regionMib, int dirtyKibPerTick, bool tolerateStalePage, long movedAtCounter = 0)
    {
        ArgumentNullException.ThrowIfNull(consoleLog);
        long? firstBad = null;   // counter of the first wrong line since the move, while the guest has not healed
        var healed = false;      // a line after a wrong one since the move matched: from here on, strict
        string? badLine = null;
        long lastCounter = -1;
        foreach (Match line in ConsoleLines().Matches(consoleLog))
        {
            if (line.Groups["boot"].Success)
            {
                lastCounter = -1;
                continue;
            }
            var tolerant = tolerateStalePage && !healed && lastCounter >= movedAtCounter;
            if (line.Groups["corrupt"].Success)
            {
                if (!tolerant)
                {
                    return (Integrity.Lost, $"the guest reported its own memory corrupt: {line.Value.Trim()}");
                }
                continue;
            }
            var counter = long.Parse(line.Groups["counter"].ValueSpan, CultureInfo.InvariantCulture);
            var checksum = uint.Parse(line.Groups["checksum"].ValueSpan, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            if (counter <= lastCounter)
            {
                return (Integrity.Lost, $"two copies of the guest print: counter {counter} follows {lastCounter} with no boot between");
            }
            lastCounter = counter;
            tolerant = tolerateStalePage && !healed && counter >= movedAtCounter;
            if (ExpectedChecksum(counter, regionMib, dirtyKibPerTick) == checksum)
            {
                healed |= firstBad is not null;
                continue;
            }
            var failure = $"memory lost: at counter {counter} the checksum {checksum:x8} is no state the guest wrote";
            if (!tolerant)
            {
                return (Integrity.Lost, failure);
            }
            firstBad ??= counter;
            badLine = line.Value.Trim();
            if (counter - firstBad.Value > HealingTicks(regionMib, dirtyKibPerTick))
            {
                return (Integrity.Lost, $"{failure}, and the guest has not healed {counter - firstBad.Value} ticks after the first wrong line since the move (a stale page heals within {HealingTicks(regionMib, dirtyKibPerTick)})");
            }
        }
        return firstBad is not null && !healed
            ? (Integrity.Healing, $"since the move no line matches the closed form yet (last: {badLine})")
            : (Integrity.Intact, null);
    }

    [GeneratedRegex(@"^ferry-guest (?:(?<boot>boot) .*|(?<corrupt>corrupt) .*|counter=(?<counter>\d+) checksum=(?<checksum>[0-9a-f]{8}))\r?$", RegexOptions.Multiline)]
    private static partial Regex ConsoleLines();

    /// <summary>
    /// The checksum the region must have after <paramref name="counter"/> ticks: FNV-1a over every word, each
    /// page at the generation sequential cyclic writes of ceil(kib/4) pages per tick give it.
    /// </summary>
    public static uint ExpectedChecksum(long counter, int regionMib, int dirtyKibPerTick)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(counter);
        ArgumentOutOfRangeException.ThrowIfLessThan(regionMib, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(dirtyKibPerTick);
        long pages = regionMib * 256L;
        long pagesPerTick = Math.Min((dirtyKibPerTick + 3) / 4, pages);
        long writes = counter * pagesPerTick;
        var wraps = (uint)(writes / pages);
        var cursor = writes % pages;
        uint c = 0x811c9dc5u;
        for (uint p = 0; p < pages; p++)
        {
            var gen = wraps + (p < cursor ? 1u : 0u);
            for (uint w = 0; w < 1024; w++)
            {
                c = unchecked((c ^ WordValue(p, w, gen)) * 0x01000193u);
            }
        }
        return c;
    }

    private static uint WordValue(uint page, uint word, uint gen)
    {
        unchecked
        {
            var x = ((page << 10) | word) ^ (gen * 0x9E3779B1u);
            x ^= x >> 16;
            x *= 0x7feb352du;
            x ^= x >> 15;
            x *= 0x846ca68bu;
            x ^= x >> 16;
            return x;
        }
    }

    [GeneratedRegex(@"^ferry-guest counter=(\d+) checksum=([0-9a-f]{8})\r?$", RegexOptions.Multiline)]
    private static partial Regex SampleLine();
}
