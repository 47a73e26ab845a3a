using System.Globalization;
using System.Text.RegularExpressions;

namespace Ferry.Host.Configuration;

/// <summary>
/// The host names one <c>ferry compute</c> serves (<c>--host</c>): one name, or, with the fake driver, several:
/// comma-separated names and numbered ranges such as <c>compute[1-1000]</c> (Slurm's hostlist form; brackets are no
/// host-name character, so a range never reads as a name). 10,000 fake hosts cannot be 10,000 processes on one machine.
/// </summary>
public static partial class ComputeHostList
{
    /// <summary>The most hosts one process serves: each is a RabbitMQ consumer on a channel of its own, and a connection has 2,047.</summary>
    public const int MaxHosts = 2000;

    /// <summary>The names <paramref name="text"/> lists, in order, or the end of a one-line error.</summary>
    public static (IReadOnlyList<string> Hosts, string? Error) Parse(string text)
    {
        var hosts = new List<string>();
        foreach (var item in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (Range().Match(item) is { Success: true } range)
            {
                var prefix = range.Groups["prefix"].Value;
                if (!int.TryParse(range.Groups["first"].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var first)
                    || !int.TryParse(range.Groups["last"].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var last) || last < first)
                {
                    return ([], $"'{item}' is not a range of host names (name[first-last], first <= last)");
                }
                if (CheckName(prefix + "0") is { } prefixError)
                {
                    return ([], prefixError);
                }
                if (hosts.Count + (long)(last - first + 1) > MaxHosts)
                {
                    return ([], $"'{text}' names more than {MaxHosts} hosts");
                }
                hosts.AddRange(Enumerable.Range(first, last - first + 1).Select(n => prefix + n.ToString(CultureInfo.InvariantCulture)));
                continue;
            }
            if (CheckName(item) is { } error)
            {
                return ([], error);
            }
            hosts.Add(item);
            if (hosts.Count > MaxHosts)
            {
                return ([], $"'{text}' names more than {MaxHosts} hosts");
            }
        }
        if (hosts.Count == 0)
        {
            return ([], "names no host");
        }
        var duplicate = hosts.GroupBy(h => h, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        return duplicate is null ? (hosts, null) : ([], $"names the host '{duplicate.Key}' twice");
    }

    /// <summary><c>prefix[first-last]</c> for the hosts <paramref name="first"/>..<paramref name="last"/> of <paramref name="prefix"/>.</summary>
    public static string RangeOf(string prefix, int first, int last) => first == last
        ? prefix + first.ToString(CultureInfo.InvariantCulture)
        : string.Create(CultureInfo.InvariantCulture, $"{prefix}[{first}-{last}]");

    /// <summary>Null when <paramref name="value"/> is a host name, else the end of a one-line error.</summary>
    public static string? CheckName(string value) =>
        value.Length > 0 && value.Length <= 255 && value.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_')
            ? null
            : $"'{value}' is not a host name (letters, digits, '-', '.', '_')";

    [GeneratedRegex(@"^(?<prefix>[^\[\]]*)\[(?<first>\d{1,9})-(?<last>\d{1,9})\]$")]
    private static partial Regex Range();
}
