using Ferry.Core.Domain;
using Microsoft.Extensions.Options;

namespace Ferry.ControlPlane.Scheduler.Weighers;

/// <summary>Prefers hosts with more free RAM, spreading load (nova/scheduler/weights/ram.py).</summary>
public sealed class RamWeigher(IOptions<SchedulerOptions> options) : IHostWeigher
{
    public double Multiplier => options.Value.RamWeightMultiplier;

    public double RawWeight(HostState host, RequestSpec spec) => host.FreeMemoryMb;
}
