using Ferry.ControlPlane.Scheduler.Filters;
using static Ferry.Tests.Scheduler.SchedulerTestData;

namespace Ferry.Tests.Scheduler;

public sealed class ImagePropertiesFilterTests
{
    private readonly ImagePropertiesFilter _filter = new();

    private bool Passes(Dictionary<string, string> props, long hypervisorVersion = 8_002_000) =>
        _filter.HostPasses(State("h1", hypervisorType: "QEMU", hypervisorVersion: hypervisorVersion, architectures: ["x86_64", "i686"]), Spec(imageProperties: props));

    [Fact]
    public void HostPasses_NoImageProperties_Passes()
    {
        Assert.True(Passes([]));
    }

    [Theory]
    [InlineData("img_hv_type", "qemu", true)]
    [InlineData("hypervisor_type", "QEMU", true)]
    [InlineData("img_hv_type", "xen", false)]
    [InlineData("hypervisor_type", "kvm", false)]
    public void HostPasses_HypervisorType_MatchesHostType(string key, string value, bool expected)
    {
        Assert.Equal(expected, Passes(new() { [key] = value }));
    }

    [Theory]
    [InlineData("hw_architecture", "x86_64", true)]
    [InlineData("architecture", "i686", true)]
    [InlineData("hw_architecture", "aarch64", false)]
    [InlineData("architecture", "ppc64le", false)]
    public void HostPasses_Architecture_MustBeSupported(string key, string value, bool expected)
    {
        Assert.Equal(expected, Passes(new() { [key] = value }));
    }

    [Theory]
    [InlineData(">=8000000", true)]
    [InlineData(">=8002000", true)]
    [InlineData(">=9000000", false)]
    [InlineData("<=8002000", true)]
    [InlineData("<=8001999", false)]
    [InlineData("==8002000", true)]
    [InlineData("==8002001", false)]
    [InlineData(">8001999", true)]
    [InlineData(">8002000", false)]
    [InlineData("<8002001", true)]
    [InlineData("<8002000", false)]
    [InlineData(">= 8.2.0", true)]
    [InlineData(">= 8.2.1", false)]
    [InlineData("8002000", true)]
    [InlineData(">=banana", false)]
    public void HostPasses_RequestedHypervisorVersion_ComparedWithHostVersion(string requirement, bool expected)
    {
        Assert.Equal(expected, Passes(new() { ["img_hv_requested_version"] = requirement }));
    }

    [Fact]
    public void HostPasses_AllPropertiesMatch_Passes()
    {
        Assert.True(Passes(new()
        {
            ["img_hv_type"] = "qemu",
            ["hw_architecture"] = "x86_64",
            ["img_hv_requested_version"] = ">=8000000",
            ["hw_disk_bus"] = "virtio",
        }));
    }
}
