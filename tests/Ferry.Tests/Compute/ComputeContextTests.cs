using Ferry.Compute;
using Ferry.Core.Domain;

namespace Ferry.Tests.Compute;

public sealed class ComputeContextTests
{
    private static Instance InstanceWith(Dictionary<string, string> systemMetadata) => new()
    {
        Id = 7, Uuid = Guid.NewGuid().ToString(), DisplayName = "vm", ProjectId = "p", UserId = "u",
        Flavor = new Flavor { InternalId = 1, Id = "1", Name = "m1.tiny", MemoryMb = 512, Vcpus = 1, RootGb = 1 }, ImageRef = "img",
        SystemMetadata = systemMetadata,
    };

    [Fact]
    public void GuestFor_InstanceBootedFromAnE1000Image_SpecHasTheModel()
    {
        var instance = InstanceWith(new() { ["image_hw_vif_model"] = "e1000", ["image_hw_disk_bus"] = "virtio" });

        Assert.Equal("e1000", ComputeContext.GuestFor(instance).VifModel);
        Assert.Equal("e1000", ComputeContext.GuestFor(instance, new Flavor { InternalId = 2, Id = "2", Name = "m1.small", MemoryMb = 2048, Vcpus = 1, RootGb = 20 }).VifModel);
    }

    [Fact]
    public void GuestFor_ImageWithoutTheProperty_NoModel()
    {
        Assert.Null(ComputeContext.GuestFor(InstanceWith(new() { ["image_min_disk"] = "1" })).VifModel);
    }
}
