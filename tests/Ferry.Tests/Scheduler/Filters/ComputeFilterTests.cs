using Ferry.ControlPlane.Scheduler.Filters;
using static Ferry.Tests.Scheduler.SchedulerTestData;

namespace Ferry.Tests.Scheduler;

public sealed class ComputeFilterTests
{
    private readonly ManualTimeProvider _time = new(Now);

    private ComputeFilter Filter() => new(_time, Options(o => o.ServiceDownTime = TimeSpan.FromSeconds(60)));

    [Fact]
    public void HostPasses_EnabledServiceWithFreshHeartbeat_Passes()
    {
        Assert.True(Filter().HostPasses(State("h1", service: Service("h1", lastSeenUp: Now.AddSeconds(-30))), Spec()));
    }

    [Fact]
    public void HostPasses_DisabledService_Fails()
    {
        Assert.False(Filter().HostPasses(State("h1", service: Service("h1", disabled: true)), Spec()));
    }

    [Fact]
    public void HostPasses_ForcedDownService_Fails()
    {
        Assert.False(Filter().HostPasses(State("h1", service: Service("h1", forcedDown: true)), Spec()));
    }

    [Fact]
    public void HostPasses_ViewReadTheHeartbeatsEarlier_JudgedAsOfThatRead()
    {
        var host = State("h1", service: Service("h1", lastSeenUp: Now.AddSeconds(-30)));
        var source = new TestHostStateSource { HeartbeatsAsOf = Now };
        var filter = new ComputeFilter(_time, Options(o => o.ServiceDownTime = TimeSpan.FromSeconds(60)), source);
        _time.Now = Now.AddSeconds(31); // 61 s after the heartbeat, 30 s after the view read it

        Assert.True(filter.HostPasses(host, Spec()));
        source.HeartbeatsAsOf = _time.Now; // read again and still the same heartbeat: silent for 61 s
        Assert.False(filter.HostPasses(host, Spec()));
    }

    [Fact]
    public void HostPasses_HeartbeatOlderThanServiceDownTime_Fails()
    {
        var host = State("h1", service: Service("h1", lastSeenUp: Now.AddSeconds(-30)));
        var filter = Filter();
        _time.Now = Now.AddSeconds(31);

        Assert.False(filter.HostPasses(host, Spec()));
    }

    [Fact]
    public void HostPasses_NoService_Fails()
    {
        var host = new Ferry.ControlPlane.Scheduler.HostState { Host = "h1", Nodename = "h1", NodeUuid = "rp-h1" };

        Assert.False(Filter().HostPasses(host, Spec()));
    }
}
