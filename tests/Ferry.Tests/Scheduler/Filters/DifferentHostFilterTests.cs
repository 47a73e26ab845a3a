using Ferry.ControlPlane.Scheduler.Filters;
using static Ferry.Tests.Scheduler.SchedulerTestData;

namespace Ferry.Tests.Scheduler;

public sealed class DifferentHostFilterTests
{
    [Fact]
    public void HostPasses_NoHint_Passes()
    {
        Assert.True(new DifferentHostFilter().HostPasses(State("h1"), Spec()));
    }

    [Fact]
    public void HostPasses_HostRunsHintedInstance_Fails()
    {
        var spec = Spec(hints: new() { ["different_host"] = ["a", "b"] }, hintedHosts: new() { ["different_host"] = ["h1", "h2"] });

        Assert.False(new DifferentHostFilter().HostPasses(State("h1"), spec));
    }

    [Fact]
    public void HostPasses_HostRunsNoHintedInstance_Passes()
    {
        var spec = Spec(hints: new() { ["different_host"] = ["a", "unknown"] }, hintedHosts: new() { ["different_host"] = ["h1"] });

        Assert.True(new DifferentHostFilter().HostPasses(State("h2"), spec));
    }
}
