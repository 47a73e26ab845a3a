using System.Text.RegularExpressions;

namespace Ferry.FunctionalTests;

/// <summary>
/// The URLs a `ferry all-in-one` child prints in its "Ferry is ready" line. Children are started with every port 0, so the
/// ports they bound (and keep: no window between choosing and binding) are known only from this line.
/// </summary>
internal static partial class FerryReadyLine
{
    /// <summary>The compute API, placement and image URLs of the ready line in <paramref name="output"/>; null before it is printed.</summary>
    public static (string ComputeUrl, string PlacementUrl, string ImageUrl)? Find(string output)
    {
        var match = Ready().Match(output);
        return match.Success ? (match.Groups["compute"].Value, match.Groups["placement"].Value, match.Groups["image"].Value) : null;
    }

    [GeneratedRegex(@"Ferry is ready in \d+ ms: compute API (?<compute>http://[^\s,]+)/v2\.1, placement (?<placement>http://[^\s,]+), images (?<image>http://[^\s,]+),")]
    private static partial Regex Ready();
}
