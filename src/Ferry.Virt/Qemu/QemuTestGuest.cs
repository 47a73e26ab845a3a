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

    /// <summary>The kernel command line for a guest: the dirty rate and region come from its metadata.</summary>
    public static string KernelAppend(GuestSpec guest)
    {
        ArgumentNullException.ThrowIfNull(guest);
        var region = DefaultRegionMib;
        if (guest.Metadata.TryGetValue(RegionMetadataKey, out var r) && int.TryParse(r, CultureInfo.InvariantCulture, out var parsedRegion) && parsedRegion > 0)
        {
            region = parsedRegion;
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
    /// QEMU 7.2 under TCG can lose, in a live migration, the guest's most-written page (its stack and tick
    /// bookkeeping at 0x104000): a race in TCG's dirty tracking (notdirty_write re-enables the fast write path for a
    /// page the migration thread has just marked clean; fixed upstream, not in Debian's 7.2; KVM is not affected).
    /// The region is then exactly a state the guest wrote a few ticks <em>after</em> the counter it prints. This is
    /// the most ticks such a stale page is tolerated by <see cref="CheckIntegrity"/> under TCG.
    /// </summary>
    public const int TcgStalePageToleranceTicks = 16;

    /// <summary>
    /// Null when the status lines of <paramref name="consoleLog"/> show intact memory, else a message saying which
    /// line proves memory was lost. Every line must match the closed form at its counter, except under TCG
    /// (<paramref name="toleratedTicks"/> &gt; 0) from the first line at or after <paramref name="movedAtCounter"/>
    /// (the first line the destination printed), where the stale page above shows one of two ways: that line
    /// matches a state up to that many ticks away from its counter (a stale stack page: the guest's bookkeeping may
    /// be stale for good after it, so later lines and "corrupt" alarms are not checked), or it matches no state but a
    /// later line matches its own counter exactly (a stale region page, since rewritten: the bookkeeping was intact).
    /// Anything else fails, a bad first destination line with no later line included.
    /// </summary>
    public static string? CheckIntegrity(string consoleLog, int regionMib, int dirtyKibPerTick, int toleratedTicks, long movedAtCounter = 0)
    {
        ArgumentNullException.ThrowIfNull(consoleLog);
        var lines = ConsoleLines().Matches(consoleLog);
        foreach (Match line in lines)
        {
            if (line.Groups["corrupt"].Success)
            {
                if (toleratedTicks == 0)
                {
                    return $"the guest reported its own memory corrupt: {line.Value.Trim()}";
                }
                continue;
            }
            var counter = long.Parse(line.Groups["counter"].ValueSpan, CultureInfo.InvariantCulture);
            var checksum = uint.Parse(line.Groups["checksum"].ValueSpan, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            if (ExpectedChecksum(counter, regionMib, dirtyKibPerTick) == checksum)
            {
                if (toleratedTicks > 0 && counter >= movedAtCounter)
                {
                    return null;
                }
                continue;
            }
            var failure = $"memory lost: at counter {counter} the checksum {checksum:x8} is no state the guest wrote (tolerance {toleratedTicks} ticks)";
            if (toleratedTicks > 0 && counter >= movedAtCounter)
            {
                for (var k = -toleratedTicks; k <= toleratedTicks; k++)
                {
                    if (counter + k >= 0 && ExpectedChecksum(counter + k, regionMib, dirtyKibPerTick) == checksum)
                    {
                        return null;
                    }
                }
                return LaterLineMatches(lines, line.Index, regionMib, dirtyKibPerTick) ? null : failure + ", and no later line returned to the closed form";
            }
            return failure;
        }
        return null;
    }

    private static bool LaterLineMatches(MatchCollection lines, int after, int regionMib, int dirtyKibPerTick) =>
        lines.Any(l => l.Index > after && !l.Groups["corrupt"].Success
            && ExpectedChecksum(long.Parse(l.Groups["counter"].ValueSpan, CultureInfo.InvariantCulture), regionMib, dirtyKibPerTick)
                == uint.Parse(l.Groups["checksum"].ValueSpan, NumberStyles.HexNumber, CultureInfo.InvariantCulture));

    [GeneratedRegex(@"^ferry-guest (?:(?<corrupt>corrupt) .*|counter=(?<counter>\d+) checksum=(?<checksum>[0-9a-f]{8}))\r?$", RegexOptions.Multiline)]
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
