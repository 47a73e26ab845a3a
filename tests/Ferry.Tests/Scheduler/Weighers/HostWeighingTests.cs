using Ferry.ControlPlane.Scheduler;
using Ferry.ControlPlane.Scheduler.Weighers;
using static Ferry.Tests.Scheduler.SchedulerTestData;

namespace Ferry.Tests.Scheduler;

public sealed class HostWeighingTests
{
    private static WeighedHost[] Weighed(params HostState[] hosts) => [.. hosts.Select(h => new WeighedHost(h))];

    [Fact]
    public void Weigh_RamWeigher_NormalisesToUnitRange()
    {
        var hosts = Weighed(State("h1", freeMemoryMb: 1000), State("h2", freeMemoryMb: 3000), State("h3", freeMemoryMb: 2000));

        HostWeighing.Weigh(hosts, [new RamWeigher(Options())], Spec());

        Assert.Equal([0.0, 1.0, 0.5], hosts.Select(h => h.Weight));
    }

    [Fact]
    public void Weigh_AllValuesEqual_WeightsAreZero()
    {
        var hosts = Weighed(State("h1", freeVcpus: 4), State("h2", freeVcpus: 4));

        HostWeighing.Weigh(hosts, [new CpuWeigher(Options())], Spec());

        Assert.All(hosts, h => Assert.Equal(0.0, h.Weight));
    }

    [Fact]
    public void Weigh_SeveralWeighers_SumsMultipliedNormalisedValues()
    {
        var hosts = Weighed(
            State("h1", freeMemoryMb: 1000, freeVcpus: 8, freeDiskGb: 10),
            State("h2", freeMemoryMb: 2000, freeVcpus: 4, freeDiskGb: 30),
            State("h3", freeMemoryMb: 1500, freeVcpus: 6, freeDiskGb: 20));
        var options = Options(o =>
        {
            o.RamWeightMultiplier = 2.0;
            o.CpuWeightMultiplier = 1.0;
            o.DiskWeightMultiplier = -0.5;
        });

        HostWeighing.Weigh(hosts, [new RamWeigher(options), new CpuWeigher(options), new DiskWeigher(options)], Spec());

        Assert.Equal(1.0, hosts[0].Weight, 9);   // 2*0   + 1   - 0.5*0
        Assert.Equal(1.5, hosts[1].Weight, 9);   // 2*1   + 0   - 0.5*1
        Assert.Equal(1.25, hosts[2].Weight, 9);  // 2*0.5 + 0.5 - 0.5*0.5
    }

    [Fact]
    public void Weigh_ZeroMultiplier_WeigherIgnored()
    {
        var hosts = Weighed(State("h1", freeMemoryMb: 1000), State("h2", freeMemoryMb: 3000));

        HostWeighing.Weigh(hosts, [new RamWeigher(Options(o => o.RamWeightMultiplier = 0))], Spec());

        Assert.All(hosts, h => Assert.Equal(0.0, h.Weight));
    }

    [Fact]
    public void SortBestFirst_EqualWeights_OrdersByHostName()
    {
        var hosts = Weighed(State("h3"), State("h1", freeMemoryMb: 1), State("h2"));
        HostWeighing.Weigh(hosts, [new RamWeigher(Options())], Spec());

        HostWeighing.SortBestFirst(hosts);

        Assert.Equal(["h2", "h3", "h1"], hosts.Select(h => h.Host.Host));
    }
}
