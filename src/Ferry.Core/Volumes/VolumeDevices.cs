namespace Ferry.Core.Volumes;

/// <summary>
/// The devices a server's volumes appear as: /dev/vda for the root volume of a server booted from one, /dev/vdb to /dev/vdq
/// for data volumes, each in a PCI slot its name fixes (vda → 0x0f, vdb → 0x10, vdc → 0x11, …), so a disk hot-plugged into
/// a running guest and the same disk on a migration's destination sit in one slot.
/// </summary>
public static class VolumeDevices
{
    /// <summary>The most volumes a server can have: one PCI slot each from 0x10 to 0x1f.</summary>
    public const int Max = 16;

    /// <summary>The root volume of a server booted from a volume.</summary>
    public const string Root = "/dev/vda";

    /// <summary>The root volume's slot, just below the data volumes'.</summary>
    public const int RootSlot = 0x0f;

    public static int SlotOf(string deviceName)
    {
        ArgumentNullException.ThrowIfNull(deviceName);
        if (deviceName == Root)
        {
            return RootSlot;
        }
        var name = deviceName[(deviceName.LastIndexOf('/') + 1)..];
        if (name.Length != 3 || !name.StartsWith("vd", StringComparison.Ordinal) || name[2] < 'b' || name[2] > 'b' + Max - 1)
        {
            throw new ArgumentException($"A volume's device must be /dev/vdb to /dev/vd{(char)('b' + Max - 1)}, not '{deviceName}'.", nameof(deviceName));
        }
        return 0x10 + (name[2] - 'b');
    }

    /// <summary>The i-th device (0 → /dev/vdb).</summary>
    public static string Name(int index) => "/dev/vd" + (char)('b' + index);
}
