using Ferry.Core.Domain;
using Microsoft.Extensions.Options;

namespace Ferry.ControlPlane.Scheduler.Filters;

/// <summary>
/// Passes hosts whose nova-compute service is enabled and up (nova/scheduler/filters/compute_filter.py): up as of when
/// the scheduler's view read the heartbeats (<see cref="IHostStateSource.HeartbeatsAsOf"/>), not as of now.
/// </summary>
public sealed class ComputeFilter(TimeProvider time, IOptions<SchedulerOptions> options, IHostStateSource? source = null) : IHostFilter
{
    public string Name => "ComputeFilter";

    public bool HostPasses(HostState host, RequestSpec spec) =>
        host.Service is { Disabled: false } service
        && service.IsUp(source?.HeartbeatsAsOf ?? time.GetUtcNow(), options.Value.ServiceDownTime);
}
