namespace Ferry.Virt;

/// <summary>
/// The guest NIC models the image property <c>hw_vif_model</c> may name and the QEMU device of each: Nova's libvirt
/// driver's list for virt_type qemu/kvm (nova/virt/libvirt/vif.py SUPPORTED_VIF_MODELS, names from
/// nova/network/model.py), minus the ones QEMU's x86 <c>pc</c> machine has no device for (<c>lan9118</c> is an ARM
/// board's, <c>spapr-vlan</c> POWER's). Both drivers validate through here, so a fake host refuses what a QEMU host
/// refuses.
/// </summary>
public static class VifModels
{
    /// <summary>The model a guest gets when its image names none (Nova's use_virtio_for_bridges default).</summary>
    public const string Virtio = "virtio";

    /// <summary>The virt type named in <see cref="UnsupportedHardwareException"/> (Nova's libvirt virt_type).</summary>
    public const string VirtType = "qemu";

    private static readonly Dictionary<string, string> s_qemuDevices = new(StringComparer.Ordinal)
    {
        [Virtio] = "virtio-net-pci",
        ["e1000"] = "e1000",
        ["e1000e"] = "e1000e",
        ["rtl8139"] = "rtl8139",
        ["ne2k_pci"] = "ne2k_pci",
        ["pcnet"] = "pcnet",
        ["vmxnet3"] = "vmxnet3",
    };

    /// <summary>The VMware spellings Nova's VIFModel field still accepts for an old image (objects/fields.py LEGACY_VALUES).</summary>
    private static readonly Dictionary<string, string> s_legacy = new(StringComparer.Ordinal)
    {
        ["virtuale1000"] = "e1000",
        ["virtuale1000e"] = "e1000e",
        ["virtualpcnet32"] = "pcnet",
        ["virtualvmxnet3"] = "vmxnet3",
    };

    /// <summary>The models a guest may have, in Nova's names.</summary>
    public static IReadOnlyCollection<string> Supported => s_qemuDevices.Keys;

    /// <summary>
    /// The model <paramref name="requested"/> names (null or empty: <see cref="Virtio"/>), lower-cased as Nova's field
    /// coerces it; <see cref="UnsupportedHardwareException"/> when no guest of this driver can have it.
    /// </summary>
    public static string Resolve(string? requested)
    {
        if (string.IsNullOrEmpty(requested))
        {
            return Virtio;
        }
        var model = requested.ToLowerInvariant();
        model = s_legacy.GetValueOrDefault(model, model);
        return s_qemuDevices.ContainsKey(model) ? model : throw new UnsupportedHardwareException(requested, VirtType);
    }

    /// <summary>The QEMU <c>-device</c> driver of the model <paramref name="requested"/> names (see <see cref="Resolve"/>).</summary>
    public static string QemuDevice(string? requested) => s_qemuDevices[Resolve(requested)];
}
