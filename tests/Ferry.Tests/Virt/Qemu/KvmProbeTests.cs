using Ferry.Virt.Qemu;

namespace Ferry.Tests.Virt.Qemu;

public sealed class KvmProbeTests
{
    [Theory]
    [InlineData("flags\t\t: fpu vme de pse tsc msr vmx sse2", true)]
    [InlineData("flags\t\t: fpu svm lm", true)]
    [InlineData("flags\t\t: fpu vme pni hypervisor lahf_lm avx512_vnni", false)]
    [InlineData("model name\t: vmx-like cpu", false)]
    public void CpuHasVirtualization_FlagsLine_TrueOnlyForVmxOrSvm(string line, bool expected) =>
        Assert.Equal(expected, QemuDriver.CpuHasVirtualization(["processor\t: 0", line]));
}
