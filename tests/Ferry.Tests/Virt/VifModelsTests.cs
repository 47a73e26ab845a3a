using Ferry.Virt;

namespace Ferry.Tests.Virt;

public sealed class VifModelsTests
{
    [Theory]
    [InlineData(null, "virtio-net-pci")]
    [InlineData("", "virtio-net-pci")]
    [InlineData("virtio", "virtio-net-pci")]
    [InlineData("e1000", "e1000")]
    [InlineData("E1000", "e1000")]                 // Nova's VIFModel field lower-cases the property
    [InlineData("e1000e", "e1000e")]
    [InlineData("rtl8139", "rtl8139")]
    [InlineData("ne2k_pci", "ne2k_pci")]
    [InlineData("pcnet", "pcnet")]
    [InlineData("vmxnet3", "vmxnet3")]
    [InlineData("VirtualE1000", "e1000")]          // a legacy VMware spelling Nova still accepts
    [InlineData("virtualpcnet32", "pcnet")]
    public void QemuDevice_ModelAQemuGuestCanHave_ItsDevice(string? model, string device) =>
        Assert.Equal(device, VifModels.QemuDevice(model));

    [Theory]
    [InlineData("bogus")]
    [InlineData("netfront")]      // a Nova model for another virt type
    [InlineData("sriov")]
    [InlineData("lan9118")]       // on Nova's qemu list, but an ARM board's: no device on the pc machine
    [InlineData("spapr-vlan")]
    [InlineData("virtio-net-pci")] // a QEMU device name, not a model name
    public void Resolve_ModelNoGuestCanHave_UnsupportedHardwareNamingIt(string model)
    {
        var refused = Assert.Throws<UnsupportedHardwareException>(() => VifModels.Resolve(model));

        Assert.Equal($"Requested hardware '{model}' is not supported by the 'qemu' virt driver", refused.Message);
        Assert.Equal(400, refused.HttpStatus);
    }
}
