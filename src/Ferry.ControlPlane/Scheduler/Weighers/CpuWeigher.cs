using Ferry.Core.Domain;
using Microsoft.Extensions.Options;

namespace Ferry.ControlPlane.Scheduler.Weighers;

/// <summary>Prefers hosts with more free vCPUs (nova/scheduler/weights/cpu.py).</summary>
public sealed class CpuWeigher(IOptions<SchedulerOptions> options) : IHostWeigher
{
    public double Multiplier => options.Value.CpuWeightMultiplier;

    public double RawWeight(HostState host, RequestSpec spec) => host.FreeVcpus;
}
