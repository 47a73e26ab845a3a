using Ferry.ControlPlane.Placement;
using Ferry.ControlPlane.Scheduler;
using Ferry.Core.Domain;
using Ferry.Core.Errors;
using static Ferry.Tests.Scheduler.SchedulerTestData;

namespace Ferry.Tests.Scheduler;

public sealed class HostManagerTests
{
    private readonly TestHostStateSource _source = new();
    private readonly Dictionary<string, ProviderSummary> _summaries = new(StringComparer.Ordinal);

    public HostManagerTests()
    {
        foreach (var host in (string[])["h1", "h2", "h3"])
        {
            _source.Nodes.Add(new ComputeNode
            {
                Uuid = "rp-" + host,
                Host = host,
                HypervisorHostname = host + ".node",
                HypervisorType = "QEMU",
                HypervisorVersion = 8_002_000,
                Vcpus = 16,
                MemoryMb = 8192,
                LocalGb = 100,
            });
            _source.Services[host] = Service(host);
            _summaries["rp-" + host] = Summary("rp-" + host, usedMemoryMb: 1024);
        }
    }

    private static ProviderSummary Summary(string uuid, long usedMemoryMb) => new(uuid, uuid, new Dictionary<string, (long, long)>
    {
        [ResourceClasses.Vcpu] = (64, 4),
        [ResourceClasses.MemoryMb] = (8192, usedMemoryMb),
        [ResourceClasses.DiskGb] = (100, 10),
    }, new HashSet<string>());

    private AllocationCandidates Candidates() => new([.. _summaries.Keys], _summaries);

    private static HostState[] States(HostManager manager, AllocationCandidates candidates, RequestSpec spec)
    {
        var buffer = new HostState[candidates.ProviderUuids.Count];
        return buffer[..manager.GetHostStates(candidates, spec, buffer)];
    }

    [Fact]
    public void GetHostStates_Candidates_CapacityFromSummary()
    {
        var state = States(new HostManager(_source), Candidates(), Spec())[0];

        Assert.Equal(("h1", "h1.node", "rp-h1"), (state.Host, state.Nodename, state.NodeUuid));
        Assert.Equal((64, 60), (state.TotalVcpus, state.FreeVcpus));
        Assert.Equal((8192, 7168), (state.TotalMemoryMb, state.FreeMemoryMb));
        Assert.Equal((100, 90), (state.TotalDiskGb, state.FreeDiskGb));
        Assert.Same(_source.Services["h1"], state.Service);
        Assert.Equal("QEMU", state.HypervisorType);
    }

    [Fact]
    public void GetHostStates_NodeNotACandidate_Skipped()
    {
        _summaries.Remove("rp-h2");

        Assert.Equal(["h1", "h3"], States(new HostManager(_source), Candidates(), Spec()).Select(s => s.Host));
    }

    [Fact]
    public void GetHostStates_IgnoreHosts_Dropped()
    {
        Assert.Equal(["h2"], States(new HostManager(_source), Candidates(), Spec(ignoreHosts: ["h1", "h3"])).Select(s => s.Host));
    }

    [Fact]
    public void GetHostStates_RequestedHostNotCandidate_ThrowsNoValidHost()
    {
        _summaries.Remove("rp-h2");

        Assert.Throws<NoValidHostException>(() => States(new HostManager(_source), Candidates(), Spec(requestedHost: "h2")));
    }

    [Fact]
    public void GetHostStates_UnchangedInputs_ReusesStates()
    {
        var manager = new HostManager(_source);
        var first = States(manager, Candidates(), Spec());

        var second = States(manager, Candidates(), Spec());

        Assert.Equal(first, second); // same instances
    }

    [Fact]
    public void GetHostStates_SummaryOrServiceChanged_Rebuilt()
    {
        var manager = new HostManager(_source);
        var first = States(manager, Candidates(), Spec());
        _summaries["rp-h1"] = Summary("rp-h1", usedMemoryMb: 4096);
        _source.Services["h2"] = Service("h2", disabled: true);

        var second = States(manager, Candidates(), Spec());

        Assert.Equal(4096, second[0].FreeMemoryMb);
        Assert.True(second[1].Service!.Disabled);
        Assert.Same(first[2], second[2]);
    }

    [Fact]
    public void AvailabilityZone_ZoneChangesWithoutNodeChange_ReadsCurrentZone()
    {
        var manager = new HostManager(_source);
        var state = States(manager, Candidates(), Spec())[0];
        Assert.Equal("nova", state.AvailabilityZone);

        _source.Zones["h1"] = "az1";

        Assert.Equal("az1", States(manager, Candidates(), Spec())[0].AvailabilityZone);
    }
}
