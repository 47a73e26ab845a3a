using Ferry.ControlPlane.Scheduler.Filters;
using static Ferry.Tests.Scheduler.SchedulerTestData;

namespace Ferry.Tests.Scheduler;

public sealed class AvailabilityZoneFilterTests
{
    private readonly AvailabilityZoneFilter _filter = new();

    [Fact]
    public void HostPasses_NoZoneRequested_Passes()
    {
        Assert.True(_filter.HostPasses(State("h1", availabilityZone: "az1"), Spec()));
    }

    [Fact]
    public void HostPasses_SameZone_Passes()
    {
        Assert.True(_filter.HostPasses(State("h1", availabilityZone: "az1"), Spec(availabilityZone: "az1")));
    }

    [Fact]
    public void HostPasses_OtherZone_Fails()
    {
        Assert.False(_filter.HostPasses(State("h1", availabilityZone: "az2"), Spec(availabilityZone: "az1")));
    }
}
