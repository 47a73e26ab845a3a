using Ferry.ControlPlane.Scheduler.Filters;
using Ferry.Core.Domain;
using static Ferry.Tests.Scheduler.SchedulerTestData;

namespace Ferry.Tests.Scheduler;

public sealed class ServerGroupAffinityFilterTests
{
    private readonly ServerGroupAffinityFilter _filter = new();

    private static ServerGroupPolicy Group(string policy, params string[] hosts) =>
        new() { Uuid = "group-1", Policy = policy, MemberHosts = [.. hosts] };

    [Fact]
    public void HostPasses_NoGroup_Passes()
    {
        Assert.True(_filter.HostPasses(State("h1"), Spec()));
    }

    [Fact]
    public void HostPasses_AffinityGroupWithoutMembers_Passes()
    {
        Assert.True(_filter.HostPasses(State("h1"), Spec(group: Group("affinity"))));
    }

    [Fact]
    public void HostPasses_AffinityGroupMemberOnHost_Passes()
    {
        Assert.True(_filter.HostPasses(State("h1"), Spec(group: Group("affinity", "h1", "h1"))));
    }

    [Fact]
    public void HostPasses_AffinityGroupMembersElsewhere_Fails()
    {
        Assert.False(_filter.HostPasses(State("h1"), Spec(group: Group("affinity", "h2"))));
    }

    [Fact]
    public void HostPasses_AntiAffinityGroup_Ignored()
    {
        Assert.True(_filter.HostPasses(State("h1"), Spec(group: Group("anti-affinity", "h2"))));
    }
}
