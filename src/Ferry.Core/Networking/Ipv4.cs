using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Sockets;

namespace Ferry.Core.Networking;

/// <summary>IPv4 addresses as numbers, for subnet arithmetic (pools, gateways, overlaps).</summary>
public static class Ipv4
{
    /// <summary>A dotted quad as a number; false for anything else (IPv6 included).</summary>
    public static bool TryParse(string? text, out uint address)
    {
        address = 0;
        if (text is null || !IPAddress.TryParse(text, out var ip) || ip.AddressFamily != AddressFamily.InterNetwork || text.Count(c => c == '.') != 3)
        {
            return false;
        }
        address = BinaryPrimitives.ReadUInt32BigEndian(ip.GetAddressBytes());
        return true;
    }

    public static string Format(uint address)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, address);
        return new IPAddress(bytes).ToString();
    }
}

/// <summary>An IPv4 network in CIDR notation (<c>10.0.0.0/24</c>).</summary>
public readonly record struct Ipv4Cidr(uint Network, int PrefixLength)
{
    public uint Mask => PrefixLength == 0 ? 0 : uint.MaxValue << (32 - PrefixLength);

    public uint Broadcast => Network | ~Mask;

    /// <summary>The first address a host may have (the network's own address is not one, except in a /31 or /32).</summary>
    public uint FirstHost => PrefixLength >= 31 ? Network : Network + 1;

    /// <summary>The last address a host may have (the broadcast address is not one, except in a /31 or /32).</summary>
    public uint LastHost => PrefixLength >= 31 ? Broadcast : Broadcast - 1;

    public bool Contains(uint address) => (address & Mask) == Network;

    public bool Overlaps(Ipv4Cidr other) => Contains(other.Network) || other.Contains(Network);

    public override string ToString() => $"{Ipv4.Format(Network)}/{PrefixLength}";

    /// <summary>Parses <c>a.b.c.d/n</c>; host bits are cleared (Neutron stores the network address).</summary>
    public static bool TryParse(string? text, [NotNullWhen(true)] out Ipv4Cidr? cidr)
    {
        cidr = null;
        var slash = text?.IndexOf('/') ?? -1;
        if (slash < 0 || !Ipv4.TryParse(text![..slash], out var address)
            || !int.TryParse(text[(slash + 1)..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var prefix)
            || prefix is < 0 or > 32)
        {
            return false;
        }
        var mask = prefix == 0 ? 0 : uint.MaxValue << (32 - prefix);
        cidr = new Ipv4Cidr(address & mask, prefix);
        return true;
    }
}
