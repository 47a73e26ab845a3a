using Ferry.ControlPlane.Scheduler.Filters;
using static Ferry.Tests.Scheduler.SchedulerTestData;

namespace Ferry.Tests.Scheduler;

public sealed class DifferentHostFilterTests
{
    private readonly TestHostStateSource _source = new();

    public DifferentHostFilterTests()
    {
        _source.InstanceHosts["a"] = "h1";
        _source.InstanceHosts["b"] = "h2";
    }

    [Fact]
    public void HostPasses_NoHint_PassesWithoutLookup()
    {
        Assert.True(new DifferentHostFilter(_source).HostPasses(State("h1"), Spec()));
        Assert.Equal(0, _source.InstanceHostLookups);
    }

    [Fact]
    public void HostPasses_HostRunsHintedInstance_Fails()
    {
        var spec = Spec(hints: new() { ["different_host"] = ["a", "b"] });

        Assert.False(new DifferentHostFilter(_source).HostPasses(State("h1"), spec));
    }

    [Fact]
    public void HostPasses_HostRunsNoHintedInstance_Passes()
    {
        var spec = Spec(hints: new() { ["different_host"] = ["a", "unknown"] });

        Assert.True(new DifferentHostFilter(_source).HostPasses(State("h2"), spec));
    }

    [Fact]
    public void HostPasses_HintChangesOnSameSpec_ResolvesAgain()
    {
        var filter = new DifferentHostFilter(_source);
        var spec = Spec(hints: new() { ["different_host"] = ["a"] });
        Assert.True(filter.HostPasses(State("h2"), spec));

        spec.SchedulerHints["different_host"].Add("b");

        Assert.False(filter.HostPasses(State("h2"), spec));
    }
}
