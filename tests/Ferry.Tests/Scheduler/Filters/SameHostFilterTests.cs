using Ferry.ControlPlane.Scheduler.Filters;
using static Ferry.Tests.Scheduler.SchedulerTestData;

namespace Ferry.Tests.Scheduler;

public sealed class SameHostFilterTests
{
    [Fact]
    public void HostPasses_NoHint_Passes()
    {
        Assert.True(new SameHostFilter().HostPasses(State("h3"), Spec()));
    }

    [Fact]
    public void HostPasses_HostRunsHintedInstance_Passes()
    {
        var spec = Spec(hints: new() { ["same_host"] = ["a", "b"] }, hintedHosts: new() { ["same_host"] = ["h1", "h2"] });

        Assert.True(new SameHostFilter().HostPasses(State("h2"), spec));
    }

    [Fact]
    public void HostPasses_HostRunsNoHintedInstance_Fails()
    {
        var spec = Spec(hints: new() { ["same_host"] = ["a"] }, hintedHosts: new() { ["same_host"] = ["h1"] });

        Assert.False(new SameHostFilter().HostPasses(State("h2"), spec));
    }

    [Fact]
    public void HostPasses_HintedInstancesNotPlaced_FailsEveryHost()
    {
        var spec = Spec(hints: new() { ["same_host"] = ["unknown"] }, hintedHosts: new() { ["same_host"] = [] });

        Assert.False(new SameHostFilter().HostPasses(State("h1"), spec));
        Assert.False(new SameHostFilter().HostPasses(State("h1"), Spec(hints: new() { ["same_host"] = ["unknown"] })));
    }
}
