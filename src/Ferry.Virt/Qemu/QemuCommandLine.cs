using System.Globalization;

namespace Ferry.Virt.Qemu;

/// <summary>
/// The pure spec-to-arguments step (as KubeVirt's converter is for libvirt XML): no I/O, so it is tested without QEMU.
/// Every option value that QEMU parses as a <c>key=value,…</c> list has its commas doubled.
/// </summary>
public static class QemuCommandLine
{
    public static IReadOnlyList<string> Build(QemuLaunchSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentException.ThrowIfNullOrWhiteSpace(spec.Uuid);
        ArgumentException.ThrowIfNullOrWhiteSpace(spec.Name);
        ArgumentOutOfRangeException.ThrowIfLessThan(spec.MemoryMb, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(spec.Vcpus, 1);
        if (spec.Accel is not ("tcg" or "kvm"))
        {
            throw new ArgumentException($"Unknown accelerator '{spec.Accel}'.", nameof(spec));
        }
        if (spec.KernelPath is null && spec.DiskPath is null && !spec.Volumes.Any(v => v.BootIndex == 0))
        {
            throw new ArgumentException("A guest needs a kernel, a disk or a root volume to boot from.", nameof(spec));
        }

        var args = new List<string>
        {
            "-name", Escape(spec.Name),
            "-uuid", spec.Uuid,
            "-machine", Escape(spec.MachineType),
            "-accel", spec.Accel,
            "-cpu", Escape(spec.CpuModel),
            "-m", spec.MemoryMb.ToString(CultureInfo.InvariantCulture),
            "-smp", spec.Vcpus.ToString(CultureInfo.InvariantCulture),
            "-nodefaults",
            "-no-user-config",
            "-display", "none",
            // append: a restarted or migrated-in guest continues the log instead of truncating it.
            "-chardev", $"file,id=serial0,path={Escape(spec.SerialLogPath)},append=on",
            "-serial", "chardev:serial0",
            "-chardev", $"socket,id=qmp0,path={Escape(spec.QmpSocketPath)},server=on,wait=off",
            "-mon", "chardev=qmp0,mode=control",
        };
        if (spec.PidFilePath is not null)
        {
            args.Add("-pidfile");
            args.Add(spec.PidFilePath);
        }
        if (spec.KernelPath is not null)
        {
            args.Add("-kernel");
            args.Add(spec.KernelPath);
            if (!string.IsNullOrEmpty(spec.KernelAppend))
            {
                args.Add("-append");
                args.Add(spec.KernelAppend);
            }
        }
        if (spec.DiskPath is not null)
        {
            AddDisk(args, "disk0", spec.DiskPath, spec.DiskFormat, readOnly: false, bootIndex: spec.KernelPath is null ? 1 : null);
        }
        if (spec.ConfigDrivePath is not null)
        {
            AddDisk(args, "config0", spec.ConfigDrivePath, "raw", readOnly: true, bootIndex: null);
        }
        foreach (var volume in spec.Volumes)
        {
            args.Add("-blockdev");
            args.Add(NbdBlockdev(volume));
            args.Add("-device");
            args.Add(VolumeDevice(volume));
        }
        for (var i = 0; i < spec.Nics.Count; i++)
        {
            var nic = spec.Nics[i];
            var id = "net" + i.ToString(CultureInfo.InvariantCulture);
            // script=no: the driver puts the tap on the host's bridge itself once QEMU made it.
            args.Add("-netdev");
            args.Add($"tap,id={id},ifname={Escape(nic.TapName)},script=no,downscript=no");
            args.Add("-device");
            args.Add($"{Escape(nic.Model)},netdev={id},mac={Escape(nic.MacAddress)},id={id}-dev");
        }
        if (spec.StartPaused)
        {
            args.Add("-S");
        }
        if (spec.IncomingUri is not null)
        {
            args.Add("-incoming");
            args.Add(spec.IncomingUri);
        }
        return args;
    }

    /// <summary>
    /// The volume's NBD client node. <c>reconnect-delay</c>: requests wait up to that long for an export whose server
    /// restarted (the volume service's daemon) instead of failing the guest's I/O at once.
    /// </summary>
    public static string NbdBlockdev(GuestVolume volume)
    {
        ArgumentNullException.ThrowIfNull(volume);
        var c = volume.Connection;
        if (c.DriverVolumeType != Ferry.Core.Volumes.VolumeConnectionInfo.NbdType)
        {
            throw new ArgumentException($"QEMU opens volumes over NBD only, not '{c.DriverVolumeType}'.", nameof(volume));
        }
        var ro = c.AccessMode == "ro" ? ",read-only=on" : "";
        return string.Create(CultureInfo.InvariantCulture,
            $"driver=nbd,node-name={volume.NodeName},server.type=inet,server.host={Escape(c.Host)},server.port={c.Port},export={Escape(c.Export)},reconnect-delay={NbdReconnectDelaySeconds}{ro}");
    }

    public static string VolumeDevice(GuestVolume volume)
    {
        ArgumentNullException.ThrowIfNull(volume);
        var boot = volume.BootIndex == 0 ? ",bootindex=1" : "";
        return string.Create(CultureInfo.InvariantCulture, $"virtio-blk-pci,drive={volume.NodeName},id={volume.NodeName}-dev,addr=0x{volume.PciSlot:x}{boot}");
    }

    public const int NbdReconnectDelaySeconds = 30;

    /// <summary>Doubles commas, QEMU's escape inside option lists.</summary>
    public static string Escape(string value) => value.Replace(",", ",,", StringComparison.Ordinal);

    private static void AddDisk(List<string> args, string node, string path, string format, bool readOnly, int? bootIndex)
    {
        var ro = readOnly ? ",read-only=on" : "";
        args.Add("-blockdev");
        args.Add($"driver=file,node-name={node}-file,filename={Escape(path)}{ro}");
        args.Add("-blockdev");
        args.Add($"driver={format},node-name={node},file={node}-file{ro}");
        args.Add("-device");
        args.Add(bootIndex is { } index ? $"virtio-blk-pci,drive={node},id={node}-dev,bootindex={index.ToString(CultureInfo.InvariantCulture)}" : $"virtio-blk-pci,drive={node},id={node}-dev");
    }
}
