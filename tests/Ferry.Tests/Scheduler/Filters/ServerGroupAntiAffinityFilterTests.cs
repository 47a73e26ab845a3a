using Ferry.ControlPlane.Scheduler.Filters;
using Ferry.Core.Domain;
using static Ferry.Tests.Scheduler.SchedulerTestData;

namespace Ferry.Tests.Scheduler;

public sealed class ServerGroupAntiAffinityFilterTests
{
    private readonly ServerGroupAntiAffinityFilter _filter = new();

    private static ServerGroupPolicy Group(string policy, int maxPerHost, params string[] hosts) =>
        new() { Uuid = "group-1", Policy = policy, MaxServerPerHost = maxPerHost, MemberHosts = [.. hosts] };

    [Fact]
    public void HostPasses_NoGroup_Passes()
    {
        Assert.True(_filter.HostPasses(State("h1"), Spec()));
    }

    [Fact]
    public void HostPasses_NoMemberOnHost_Passes()
    {
        Assert.True(_filter.HostPasses(State("h1"), Spec(group: Group("anti-affinity", 1, "h2", "h3"))));
    }

    [Fact]
    public void HostPasses_MemberOnHost_Fails()
    {
        Assert.False(_filter.HostPasses(State("h1"), Spec(group: Group("anti-affinity", 1, "h1"))));
    }

    [Fact]
    public void HostPasses_BelowMaxServerPerHost_Passes()
    {
        Assert.True(_filter.HostPasses(State("h1"), Spec(group: Group("anti-affinity", 2, "h1", "h2"))));
    }

    [Fact]
    public void HostPasses_AtMaxServerPerHost_Fails()
    {
        Assert.False(_filter.HostPasses(State("h1"), Spec(group: Group("anti-affinity", 2, "h1", "h1"))));
    }

    [Fact]
    public void HostPasses_AffinityGroup_Ignored()
    {
        Assert.True(_filter.HostPasses(State("h1"), Spec(group: Group("affinity", 1, "h1"))));
    }
}
