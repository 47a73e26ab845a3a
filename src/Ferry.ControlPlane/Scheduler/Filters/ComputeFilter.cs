using Ferry.Core.Domain;
using Microsoft.Extensions.Options;

namespace Ferry.ControlPlane.Scheduler.Filters;

/// <summary>Passes hosts whose nova-compute service is enabled and up (nova/scheduler/filters/compute_filter.py).</summary>
public sealed class ComputeFilter(TimeProvider time, IOptions<SchedulerOptions> options) : IHostFilter
{
    public string Name => "ComputeFilter";

    public bool HostPasses(HostState host, RequestSpec spec) =>
        host.Service is { Disabled: false } service
        && service.IsUp(time.GetUtcNow(), options.Value.ServiceDownTime);
}
