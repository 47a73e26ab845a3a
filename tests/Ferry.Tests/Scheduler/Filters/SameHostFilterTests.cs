using Ferry.ControlPlane.Scheduler.Filters;
using static Ferry.Tests.Scheduler.SchedulerTestData;

namespace Ferry.Tests.Scheduler;

public sealed class SameHostFilterTests
{
    private readonly TestHostStateSource _source = new();

    public SameHostFilterTests()
    {
        _source.InstanceHosts["a"] = "h1";
        _source.InstanceHosts["b"] = "h2";
    }

    [Fact]
    public void HostPasses_NoHint_PassesWithoutLookup()
    {
        Assert.True(new SameHostFilter(_source).HostPasses(State("h3"), Spec()));
        Assert.Equal(0, _source.InstanceHostLookups);
    }

    [Fact]
    public void HostPasses_HostRunsHintedInstance_Passes()
    {
        var spec = Spec(hints: new() { ["same_host"] = ["a", "b"] });

        Assert.True(new SameHostFilter(_source).HostPasses(State("h2"), spec));
    }

    [Fact]
    public void HostPasses_HostRunsNoHintedInstance_Fails()
    {
        var spec = Spec(hints: new() { ["same_host"] = ["a"] });

        Assert.False(new SameHostFilter(_source).HostPasses(State("h2"), spec));
    }

    [Fact]
    public void HostPasses_ManyHosts_ResolvesHintOncePerRequest()
    {
        var filter = new SameHostFilter(_source);
        var spec = Spec(hints: new() { ["same_host"] = ["a", "b", "unknown"] });

        var passed = Enumerable.Range(0, 50).Count(i => filter.HostPasses(State("h" + i), spec));

        Assert.Equal(2, passed);
        Assert.Equal(3, _source.InstanceHostLookups);
    }
}
