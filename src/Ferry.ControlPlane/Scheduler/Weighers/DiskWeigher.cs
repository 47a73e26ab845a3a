using Ferry.Core.Domain;
using Microsoft.Extensions.Options;

namespace Ferry.ControlPlane.Scheduler.Weighers;

/// <summary>Prefers hosts with more free disk (nova/scheduler/weights/disk.py).</summary>
public sealed class DiskWeigher(IOptions<SchedulerOptions> options) : IHostWeigher
{
    public double Multiplier => options.Value.DiskWeightMultiplier;

    public double RawWeight(HostState host, RequestSpec spec) => host.FreeDiskGb;
}
