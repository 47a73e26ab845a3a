using System.Globalization;
using Ferry.Core.Domain;

namespace Ferry.ControlPlane.Scheduler.Filters;

/// <summary>
/// Passes hosts that can run the image: its hypervisor type, architecture and minimum hypervisor
/// version (nova/scheduler/filters/image_props_filter.py).
/// </summary>
public sealed class ImagePropertiesFilter : IHostFilter
{
    public string Name => "ImagePropertiesFilter";

    public bool HostPasses(HostState host, RequestSpec spec)
    {
        var props = spec.ImageProperties;
        if (props.Count == 0)
        {
            return true;
        }
        if (Get(props, "img_hv_type", "hypervisor_type") is { } hvType
            && !string.Equals(hvType, host.HypervisorType, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }
        if (Get(props, "hw_architecture", "architecture") is { } arch && !Supports(host.SupportedArchitectures, arch))
        {
            return false;
        }
        return Get(props, "img_hv_requested_version", null) is not { } version || VersionMatches(host.HypervisorVersion, version);
    }

    /// <summary>
    /// Compares a hypervisor version with a requirement such as "&gt;=8000000" or "&gt;= 8.0.0"; dotted
    /// versions become integers as oslo's convert_version_to_int does (major*1e6 + minor*1e3 + micro).
    /// An unparsable requirement matches nothing.
    /// </summary>
    internal static bool VersionMatches(long hostVersion, string requirement)
    {
        var text = requirement.AsSpan().Trim();
        var op = "==";
        foreach (var candidate in (ReadOnlySpan<string>)[">=", "<=", "==", ">", "<", "="])
        {
            if (text.StartsWith(candidate, StringComparison.Ordinal))
            {
                op = candidate;
                text = text[candidate.Length..].TrimStart();
                break;
            }
        }
        if (!TryParseVersion(text, out var wanted))
        {
            return false;
        }
        return op switch
        {
            ">=" => hostVersion >= wanted,
            "<=" => hostVersion <= wanted,
            ">" => hostVersion > wanted,
            "<" => hostVersion < wanted,
            _ => hostVersion == wanted,
        };
    }

    private static bool TryParseVersion(ReadOnlySpan<char> text, out long version)
    {
        version = 0;
        if (text.IndexOf('.') < 0)
        {
            return long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out version);
        }
        var parts = 0;
        foreach (var range in text.Split('.'))
        {
            if (++parts > 3 || !int.TryParse(text[range], NumberStyles.None, CultureInfo.InvariantCulture, out var part) || part >= 1000)
            {
                return false;
            }
            version = version * 1000 + part;
        }
        for (; parts < 3; parts++)
        {
            version *= 1000;
        }
        return true;
    }

    private static string? Get(Dictionary<string, string> props, string key, string? legacyKey) =>
        props.TryGetValue(key, out var value) || (legacyKey is not null && props.TryGetValue(legacyKey, out value))
            ? value
            : null;

    private static bool Supports(IReadOnlyList<string> architectures, string arch)
    {
        for (var i = 0; i < architectures.Count; i++)
        {
            if (string.Equals(architectures[i], arch, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }
        return false;
    }
}
