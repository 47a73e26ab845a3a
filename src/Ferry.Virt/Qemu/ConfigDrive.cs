using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Ferry.Virt.Qemu;

/// <summary>
/// The files of Nova's config drive (nova/virt/configdrive.py, nova/api/metadata/base.py): an ISO 9660 volume
/// labelled <c>config-2</c> with <c>openstack/{2012-08-10,latest}/meta_data.json</c> and friends, which cloud-init's
/// ConfigDrive datasource reads. Its content is a pure function of the guest spec (no random seed, fixed dates),
/// so a destination can write the same bytes again instead of copying them.
/// </summary>
internal static class ConfigDrive
{
    public const string VolumeLabel = "config-2";

    /// <summary>Every file and directory gets this date, and so does the volume (SOURCE_DATE_EPOCH).</summary>
    public static readonly DateTimeOffset FixedDate = new(2012, 8, 10, 0, 0, 0, TimeSpan.Zero);

    private static readonly string[] s_versions = ["2012-08-10", "latest"];

    /// <summary>UTF-8 without a byte-order mark: cloud-init's JSON loader (and the test guest's) refuse one.</summary>
    private static readonly UTF8Encoding s_utf8 = new(encoderShouldEmitUTF8Identifier: false);

    /// <summary>Writes the drive's tree under <paramref name="root"/> (an empty directory).</summary>
    public static async Task WriteTreeAsync(GuestSpec guest, string root, CancellationToken cancellationToken)
    {
        foreach (var version in s_versions)
        {
            var dir = Path.Combine(root, "openstack", version);
            Directory.CreateDirectory(dir);
            await File.WriteAllTextAsync(Path.Combine(dir, "meta_data.json"), MetaData(guest).ToJsonString(), s_utf8, cancellationToken);
            await File.WriteAllTextAsync(Path.Combine(dir, "network_data.json"), NetworkData(guest).ToJsonString(), s_utf8, cancellationToken);
            await File.WriteAllTextAsync(Path.Combine(dir, "vendor_data.json"), "{}", s_utf8, cancellationToken);
            await File.WriteAllTextAsync(Path.Combine(dir, "vendor_data2.json"), "{}", s_utf8, cancellationToken);
            if (guest.UserData is { } userData)
            {
                var compact = string.Concat(userData.Where(c => !char.IsWhiteSpace(c)));
                await File.WriteAllBytesAsync(Path.Combine(dir, "user_data"), Convert.FromBase64String(compact), cancellationToken);
            }
        }
        foreach (var entry in Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories).Append(root))
        {
            File.SetLastWriteTimeUtc(entry, FixedDate.UtcDateTime);
        }
    }

    public static string SourceDateEpoch => FixedDate.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// Nova's meta_data.json, less what Ferry does not have (devices, random_seed). As in Nova's
    /// InstanceMetadata, public_keys and keys are there only when the server was created with a key pair.
    /// </summary>
    public static JsonObject MetaData(GuestSpec guest)
    {
        var meta = new JsonObject();
        foreach (var (key, value) in guest.Metadata.OrderBy(m => m.Key, StringComparer.Ordinal))
        {
            meta[key] = value;
        }
        var name = guest.DisplayName ?? guest.Name;
        var data = new JsonObject
        {
            ["uuid"] = guest.Uuid,
            ["meta"] = meta,
            ["hostname"] = Hostname(name, guest.Uuid),
            ["name"] = name,
            ["launch_index"] = 0,
            ["availability_zone"] = guest.AvailabilityZone,
            ["project_id"] = guest.ProjectId,
            ["devices"] = new JsonArray(),
        };
        if (guest.KeyName is { } keyName && guest.KeyData is { } keyData)
        {
            data["public_keys"] = new JsonObject { [keyName] = keyData };
            data["keys"] = new JsonArray(new JsonObject { ["name"] = keyName, ["type"] = guest.KeyType ?? "ssh", ["data"] = keyData });
        }
        return data;
    }

    /// <summary>Nova's sanitize_hostname, ASCII only: spaces, underscores and dots become dashes, anything else outside [a-z0-9-] goes, no dash at either end, at most 63 characters.</summary>
    /// <summary>
    /// Nova's network_data.json (nova/virt/netutils.py get_network_metadata), which cloud-init configures the guest's
    /// NICs from: a link per VIF (its tap name, port, MAC, MTU), a network per VIF's first IPv4 address — static
    /// (<c>ipv4</c>: address, netmask, default route via the gateway, DNS) when its subnet has no DHCP server, else
    /// <c>ipv4_dhcp</c> — and the DNS servers of them all. Empty lists for a guest without NICs.
    /// </summary>
    public static JsonObject NetworkData(GuestSpec guest)
    {
        var links = new JsonArray();
        var networks = new JsonArray();
        var services = new List<string>();
        foreach (var vif in guest.Vifs)
        {
            if (vif.Ips.FirstOrDefault() is not { } ip || !Core.Networking.Ipv4Cidr.TryParse(ip.Cidr, out var cidr))
            {
                continue;
            }
            links.Add((JsonNode)new JsonObject
            {
                ["id"] = vif.DeviceName,
                ["vif_id"] = vif.Id,
                ["type"] = vif.VifType,
                ["mtu"] = ip.Dhcp ? null : vif.Mtu,
                ["ethernet_mac_address"] = vif.MacAddress,
            });
            var network = new JsonObject
            {
                ["id"] = $"network{networks.Count}",
                ["type"] = ip.Dhcp ? "ipv4_dhcp" : "ipv4",
                ["link"] = vif.DeviceName,
                ["network_id"] = vif.NetworkId,
            };
            if (!ip.Dhcp)
            {
                network["ip_address"] = ip.Address;
                network["netmask"] = Core.Networking.Ipv4.Format(cidr.Value.Mask);
                network["routes"] = ip.Gateway is { } gateway
                    ? new JsonArray(new JsonObject { ["network"] = "0.0.0.0", ["netmask"] = "0.0.0.0", ["gateway"] = gateway })
                    : new JsonArray();
                network["services"] = new JsonArray([.. (ip.Dns ?? []).Select(d => (JsonNode)new JsonObject { ["type"] = "dns", ["address"] = d })]);
                services.AddRange(ip.Dns ?? []);
            }
            networks.Add((JsonNode)network);
        }
        return new JsonObject
        {
            ["links"] = links,
            ["networks"] = networks,
            ["services"] = new JsonArray([.. services.Distinct().Select(d => (JsonNode)new JsonObject { ["type"] = "dns", ["address"] = d })]),
        };
    }

    public static string Hostname(string displayName, string uuid)
    {
        var hostname = Regex.Replace(displayName.ToLowerInvariant(), "[ _.]", "-");
        hostname = Regex.Replace(hostname, "[^a-z0-9-]+", "").Trim('-');
        hostname = hostname.Length > 63 ? hostname[..63].TrimEnd('-') : hostname;
        return hostname.Length == 0 ? "server-" + uuid : hostname;
    }
}
