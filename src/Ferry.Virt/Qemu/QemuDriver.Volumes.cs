using System.Globalization;
using System.Text.Json.Nodes;
using Ferry.Core.Errors;
using Ferry.Virt.Qemu.Qmp;

namespace Ferry.Virt.Qemu;

/// <summary>
/// Volumes: each is an NBD export of the volume service that QEMU opens itself (<c>-blockdev driver=nbd</c>), as a
/// virtio disk in the PCI slot its device name fixes. A running guest gets it hot-plugged; its definition keeps it, so
/// every later start (power-on, a migration's destination, rebuild) opens it again.
/// </summary>
public sealed partial class QemuDriver
{
    /// <summary>How long a guest has to let go of a disk being unplugged (it must eject it, as an OS does on an ACPI request).</summary>
    public static readonly TimeSpan VolumeDetachTimeout = TimeSpan.FromSeconds(20);

    public async Task AttachVolumeAsync(string uuid, GuestVolume volume, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(volume);
        var record = Defined(uuid);
        await record.Lock.WaitAsync(cancellationToken);
        try
        {
            if (record.Spec.Volumes.Any(v => v.DeviceName == volume.DeviceName && v.VolumeId != volume.VolumeId))
            {
                throw new ConflictException($"Device {volume.DeviceName} of {uuid} is already another volume's.");
            }
            if (record.Process is { HasExited: false } process && !record.Spec.Volumes.Any(v => v.VolumeId == volume.VolumeId))
            {
                // blockdev-add connects while QEMU holds its main loop: the guest's devices and monitor wait with it.
                await CheckVolumeExportsAsync(uuid, [volume], cancellationToken);
                await process.Qmp.ExecuteAsync("blockdev-add", NbdBlockdevArguments(volume), cancellationToken);
                try
                {
                    await process.Qmp.ExecuteAsync("device_add", new JsonObject
                    {
                        ["driver"] = "virtio-blk-pci",
                        ["drive"] = volume.NodeName,
                        ["id"] = volume.NodeName + "-dev",
                        ["addr"] = string.Create(CultureInfo.InvariantCulture, $"0x{volume.PciSlot:x}"),
                    }, cancellationToken);
                }
                catch
                {
                    await process.Qmp.ExecuteAsync("blockdev-del", new JsonObject { ["node-name"] = volume.NodeName }, CancellationToken.None);
                    throw;
                }
            }
            record.Spec = record.Spec with { Volumes = [.. record.Spec.Volumes.Where(v => v.VolumeId != volume.VolumeId), volume] };
            SaveDefinition(record.Spec);
        }
        finally
        {
            record.Lock.Release();
        }
    }

    public async Task DetachVolumeAsync(string uuid, string volumeId, CancellationToken cancellationToken)
    {
        var record = Defined(uuid);
        await record.Lock.WaitAsync(cancellationToken);
        try
        {
            if (record.Spec.Volumes.FirstOrDefault(v => v.VolumeId == volumeId) is not { } volume)
            {
                return;
            }
            if (record.Process is { HasExited: false } process)
            {
                await UnplugAsync(process, volume, cancellationToken);
            }
            record.Spec = record.Spec with { Volumes = [.. record.Spec.Volumes.Where(v => v.VolumeId != volumeId)] };
            SaveDefinition(record.Spec);
        }
        finally
        {
            record.Lock.Release();
        }
    }

    /// <summary>The volumes the guest's QEMU has open now (its NBD block nodes), for checks and tests.</summary>
    public async Task<IReadOnlyList<string>> OpenVolumeNodesAsync(string uuid, CancellationToken cancellationToken)
    {
        var nodes = await ExecuteQmpAsync(uuid, "query-named-block-nodes", new JsonObject { ["flat"] = true }, cancellationToken);
        return [.. nodes.EnumerateArray()
            .Where(n => n.GetProperty("drv").GetString() == "nbd")
            .Select(n => n.GetProperty("node-name").GetString()!)
            .Where(n => n.StartsWith("vol-", StringComparison.Ordinal))];
    }

    /// <summary>
    /// Asks the guest to give the disk back (<c>device_del</c>: an ACPI eject request it must answer), waits until the device
    /// is gone, then closes the NBD connection. A guest that never answers keeps the disk, and the detach fails.
    /// </summary>
    private static async Task UnplugAsync(QemuProcess process, GuestVolume volume, CancellationToken cancellationToken)
    {
        var device = volume.NodeName + "-dev";
        if (await HasDeviceAsync(process, device, cancellationToken))
        {
            await process.Qmp.ExecuteAsync("device_del", new JsonObject { ["id"] = device }, cancellationToken);
            var waited = System.Diagnostics.Stopwatch.StartNew();
            while (await HasDeviceAsync(process, device, cancellationToken))
            {
                if (waited.Elapsed > VolumeDetachTimeout)
                {
                    throw new FerryException($"The guest did not release {volume.DeviceName} (volume {volume.VolumeId}) within {VolumeDetachTimeout.TotalSeconds:0} s.");
                }
                await Task.Delay(100, cancellationToken);
            }
        }
        // The device leaves the PCI bus a moment before it lets go of its block node: "in use" until then.
        var released = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            try
            {
                await process.Qmp.ExecuteAsync("blockdev-del", new JsonObject { ["node-name"] = volume.NodeName }, cancellationToken);
                return;
            }
            catch (QmpException ex) when (ex.Message.Contains("not found", StringComparison.OrdinalIgnoreCase))
            {
                return;
            }
            catch (QmpException ex) when (ex.Message.Contains("in use", StringComparison.OrdinalIgnoreCase) && released.Elapsed < TimeSpan.FromSeconds(5))
            {
                await Task.Delay(50, cancellationToken);
            }
        }
    }

    private static async Task<bool> HasDeviceAsync(QemuProcess process, string id, CancellationToken cancellationToken)
    {
        var buses = await process.Qmp.ExecuteAsync("query-pci", null, cancellationToken);
        return buses.EnumerateArray().SelectMany(b => b.GetProperty("devices").EnumerateArray())
            .Any(d => d.TryGetProperty("qdev_id", out var q) && q.GetString() == id);
    }

    /// <summary>
    /// Fails, naming the volumes and their export, when an NBD server of <paramref name="volumes"/> does not greet this host
    /// within <see cref="QemuDriverOptions.VolumeConnectTimeout"/>: QEMU's own connect would hold its start-up (seen only as
    /// a monitor that never opened) or its main loop until the kernel gave up. One probe per server. Skipped when QEMU runs
    /// in a named namespace this process is not in (<see cref="QemuDriverOptions.NetworkNamespace"/>): a probe from here
    /// would take another path than QEMU's.
    /// </summary>
    private async Task CheckVolumeExportsAsync(string uuid, IReadOnlyList<GuestVolume> volumes, CancellationToken cancellationToken)
    {
        if (_options.NetworkNamespace is not null)
        {
            return;
        }
        foreach (var server in volumes.GroupBy(v => (v.Connection.Host, v.Connection.Port)))
        {
            var (host, port) = server.Key;
            if (await NbdExportProbe.ProbeAsync(host, port, _options.VolumeConnectTimeout, cancellationToken) is { } reason)
            {
                var endpoint = string.Create(CultureInfo.InvariantCulture, $"{host}:{port}");
                string[] ids = [.. server.Select(v => v.VolumeId)];
                LogVolumeExportUnreachable(uuid, string.Join(", ", ids), _options.HostName, endpoint, reason);
                throw new VolumeExportUnreachableException(ids, endpoint, _options.HostName, reason);
            }
        }
    }

    /// <summary>The blockdev-add arguments of <see cref="QemuCommandLine.NbdBlockdev"/>.</summary>
    private static JsonObject NbdBlockdevArguments(GuestVolume volume) => new()
    {
        ["driver"] = "nbd",
        ["node-name"] = volume.NodeName,
        ["server"] = new JsonObject
        {
            ["type"] = "inet",
            ["host"] = volume.Connection.Host,
            ["port"] = volume.Connection.Port.ToString(CultureInfo.InvariantCulture),
        },
        ["export"] = volume.Connection.Export,
        ["reconnect-delay"] = QemuCommandLine.NbdReconnectDelaySeconds,
        ["read-only"] = volume.Connection.AccessMode == "ro",
    };

    private QemuGuest Defined(string uuid) =>
        _guests.TryGetValue(uuid, out var record) ? record : throw new NotFoundException($"Guest {uuid} is not defined on {_options.HostName}.");
}
