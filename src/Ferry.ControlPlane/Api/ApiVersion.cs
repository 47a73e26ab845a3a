using System.Globalization;
using System.Text.RegularExpressions;
using Ferry.Core.Errors;
using Microsoft.AspNetCore.Http;

namespace Ferry.ControlPlane.Api;

/// <summary>A compute API microversion (nova/api/openstack/api_version_request.py).</summary>
public readonly partial record struct ApiVersion(int Major, int Minor) : IComparable<ApiVersion>
{
    public const string HeaderName = "OpenStack-API-Version";
    public const string LegacyHeaderName = "X-OpenStack-Nova-API-Version";

    public static readonly ApiVersion Min = new(2, 1);
    public static readonly ApiVersion Max = new(2, 95);

    /// <summary>True when this version is 2.<paramref name="minor"/> or later.</summary>
    public bool AtLeast(int minor) => CompareTo(new ApiVersion(2, minor)) >= 0;

    public int CompareTo(ApiVersion other) => Major != other.Major ? Major.CompareTo(other.Major) : Minor.CompareTo(other.Minor);

    public static bool operator <(ApiVersion a, ApiVersion b) => a.CompareTo(b) < 0;
    public static bool operator >(ApiVersion a, ApiVersion b) => a.CompareTo(b) > 0;
    public static bool operator <=(ApiVersion a, ApiVersion b) => a.CompareTo(b) <= 0;
    public static bool operator >=(ApiVersion a, ApiVersion b) => a.CompareTo(b) >= 0;

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Major}.{Minor}");

    /// <summary>
    /// The version a request asks for: the compute entry of <c>OpenStack-API-Version</c>, else the legacy
    /// header, else 2.1; <c>latest</c> is the maximum. Anything unparsable or out of range is 406.
    /// </summary>
    public static ApiVersion Negotiate(IHeaderDictionary headers)
    {
        string? requested = null;
        foreach (var value in headers[HeaderName])
        {
            foreach (var item in (value ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var parts = item.Split(' ', 2, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                if (parts.Length == 2 && parts[0].Equals("compute", StringComparison.OrdinalIgnoreCase))
                {
                    requested = parts[1];
                }
            }
        }
        if (requested is null && headers.TryGetValue(LegacyHeaderName, out var legacy) && !string.IsNullOrWhiteSpace(legacy.ToString()))
        {
            requested = legacy.ToString().Trim();
        }
        if (requested is null)
        {
            return Min;
        }
        if (requested.Equals("latest", StringComparison.OrdinalIgnoreCase))
        {
            return Max;
        }
        var match = VersionPattern().Match(requested);
        if (!match.Success
            || !int.TryParse(match.Groups[1].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture, out var major)
            || !int.TryParse(match.Groups[2].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture, out var minor))
        {
            // Nova answers a malformed version with 400, an unsupported one with 406 (wsgi.Resource.__call__).
            throw new BadRequestException(
                $"API Version String {requested} is of invalid format. Must be of format MajorNum.MinorNum.");
        }
        var version = new ApiVersion(major, minor);
        if (version < Min || version > Max)
        {
            throw new VersionNotAcceptableException(
                $"Version {requested} is not supported by the API. Minimum is {Min} and maximum is {Max}.");
        }
        return version;
    }

    [GeneratedRegex(@"^([1-9][0-9]*)\.(0|[1-9][0-9]*)$")]
    private static partial Regex VersionPattern();
}
