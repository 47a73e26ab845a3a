using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Ferry.Core.Domain;
using Ferry.Virt.Qemu.Qmp;

namespace Ferry.Virt.Qemu;

/// <summary>
/// The data plane of a QEMU host: each VIF is a tap device QEMU makes when it starts (and the kernel removes when it
/// exits), put on the host's bridge at once. So VIFs are plugged wherever a QEMU starts — spawn, power-on, the
/// destination's pre_live_migration, finish_resize, rebuild — and unplugged wherever one ends, with nothing to leak
/// when a process dies.
/// </summary>
public sealed partial class QemuDriver
{
    /// <summary>The tap device of the VIF on this host.</summary>
    public string TapName(Vif vif)
    {
        ArgumentNullException.ThrowIfNull(vif);
        if (_options.OwnNetworkNamespace || _options.NetworkNamespace is not null)
        {
            return vif.DeviceName;
        }
        var id = vif.Id.Replace("-", "", StringComparison.Ordinal);
        return "t" + HostTapTag + id[..Math.Min(10, id.Length)];
    }

    /// <summary>Four hex digits of the host's name: what tells two hosts' taps of one port apart in a shared namespace.</summary>
    private string HostTapTag => _hostTapTag ??= Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(_options.HostName)))[..4];

    private string? _hostTapTag;

    /// <summary>
    /// This host's taps as they are and as they should be, for checks and tests: every tap of this host that exists
    /// (with the guest and port it serves, or none) and every NIC of a running guest (whether its tap exists).
    /// </summary>
    public async Task<IReadOnlyList<GuestTap>> GuestTapsAsync(CancellationToken cancellationToken)
    {
        var existing = (await LinuxNetwork.ListTapsAsync(cancellationToken, _options.NetworkNamespace)).Where(t => IsOurTapName(t.Name)).ToDictionary(t => t.Name, StringComparer.Ordinal);
        var result = new List<GuestTap>();
        foreach (var guest in _guests.Values.Where(g => g.Process is { HasExited: false }))
        {
            foreach (var vif in _options.Bridge is null ? [] : guest.Spec.Vifs)
            {
                var name = TapName(vif);
                existing.Remove(name, out var tap);
                result.Add(new GuestTap(name, vif.Id, vif.MacAddress, guest.Spec.Uuid, tap is not null, tap?.Bridge));
            }
        }
        result.AddRange(existing.Values.Select(t => new GuestTap(t.Name, null, null, null, true, t.Bridge)));
        return result;
    }

    private bool IsOurTapName(string name) => _options.OwnNetworkNamespace || _options.NetworkNamespace is not null
        ? name.StartsWith("tap", StringComparison.Ordinal)
        : name.Length == LinuxNetwork.MaxDeviceNameLength && name.StartsWith("t" + HostTapTag, StringComparison.Ordinal);

    /// <summary>The guest's NICs, each the device its image's <c>hw_vif_model</c> names (the same on every host).</summary>
    private IReadOnlyList<QemuNic> Nics(GuestSpec guest) =>
        _options.Bridge is null ? [] : [.. guest.Vifs.Select(v => new QemuNic(TapName(v), v.MacAddress, VifModels.QemuDevice(guest.VifModel)))];

    /// <summary>
    /// Every QEMU start goes through here: its volumes' exports checked from here, the process, then its taps on the
    /// bridge; neither stays when the other fails.
    /// </summary>
    private async Task<QemuProcess> StartQemuAsync(QemuLaunchSpec spec, CancellationToken cancellationToken)
    {
        await CheckVolumeExportsAsync(spec.Uuid, spec.Volumes, cancellationToken);
        var process = await QemuProcess.StartAsync(_options.QemuBinary, spec, _options.StartTimeout, cancellationToken);
        try
        {
            await PlugNicsAsync(spec.Nics, cancellationToken);
        }
        catch
        {
            await process.DisposeAsync();
            throw;
        }
        return process;
    }

    private async Task PlugNicsAsync(IReadOnlyList<QemuNic> nics, CancellationToken cancellationToken)
    {
        foreach (var nic in nics)
        {
            await LinuxNetwork.AttachAsync(nic.TapName, _options.Bridge!, cancellationToken, _options.NetworkNamespace);
        }
        if (nics.Count > 0)
        {
            LogNicsPlugged(string.Join(' ', nics.Select(n => n.TapName)), _options.Bridge!);
        }
    }

    /// <summary>The bridge, and the taps of guests this host adopted after a restart put back on it (the bridge may be new).</summary>
    private async Task InitHostNetworkAsync(CancellationToken cancellationToken)
    {
        if (_options.Bridge is not { } bridge)
        {
            return;
        }
        await LinuxNetwork.EnsureBridgeAsync(bridge, cancellationToken, _options.NetworkNamespace);
        if (_options.BridgeAddress is { } address)
        {
            await LinuxNetwork.AddAddressAsync(bridge, address, cancellationToken, _options.NetworkNamespace);
        }
        foreach (var guest in _guests.Values.Where(g => g.Process is { HasExited: false }))
        {
            await PlugNicsAsync(Nics(guest.Spec), cancellationToken);
        }
    }

    /// <summary>
    /// The destination tells the segment where the guest's MACs are now (QEMU's announce-self: RARP frames from each
    /// NIC), so switches stop sending its traffic to the source's port at once rather than when the guest next talks.
    /// </summary>
    private async Task AnnounceSelfAsync(QemuGuest record, CancellationToken cancellationToken)
    {
        if (record.Process is not { HasExited: false } process || Nics(record.Spec).Count == 0)
        {
            return;
        }
        try
        {
            await process.Qmp.ExecuteAsync("announce-self", new JsonObject
            {
                ["initial"] = 50,
                ["max"] = 550,
                ["rounds"] = 5,
                ["step"] = 100,
            }, cancellationToken);
        }
        catch (QmpException ex)
        {
            // QEMU announced once already when the guest started here; a second round is a help, not a must.
            LogAnnounceFailed(record.Spec.Uuid, ex.Message);
        }
    }
}

/// <summary>A tap of a host: the port and guest it serves (null: none, a leak), whether it exists and the bridge it is on.</summary>
public sealed record GuestTap(string Name, string? PortId, string? MacAddress, string? GuestUuid, bool Exists, string? Bridge);
