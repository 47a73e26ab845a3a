using Ferry.Core.Domain;

namespace Ferry.ControlPlane.Scheduler;

/// <summary>
/// A host filter (nova/scheduler/filters). Implementations are stateless singletons called
/// concurrently; <see cref="HostPasses"/> must be cheap because it runs once per candidate host.
/// </summary>
public interface IHostFilter
{
    /// <summary>The name used in <see cref="SchedulerOptions.EnabledFilters"/> (Nova's class name).</summary>
    string Name { get; }

    bool HostPasses(HostState host, RequestSpec spec);
}
