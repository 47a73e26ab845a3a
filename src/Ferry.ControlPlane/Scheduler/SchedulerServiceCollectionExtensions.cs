using Ferry.ControlPlane.Scheduler.Filters;
using Ferry.ControlPlane.Scheduler.Weighers;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Ferry.ControlPlane.Scheduler;

public static class SchedulerServiceCollectionExtensions
{
    /// <summary>
    /// Registers the scheduler: its filters, weighers, <see cref="HostManager"/> and <see cref="SchedulerManager"/>.
    /// <see cref="IHostStateSource"/> and <see cref="Placement.IPlacementService"/> must be registered elsewhere.
    /// </summary>
    public static IServiceCollection AddFerryScheduler(this IServiceCollection services, Action<SchedulerOptions>? configure = null)
    {
        var options = services.AddOptions<SchedulerOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }
        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SchedulerOptions>, SchedulerOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostFilter, ComputeFilter>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostFilter, AvailabilityZoneFilter>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostFilter, ImagePropertiesFilter>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostFilter, ServerGroupAntiAffinityFilter>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostFilter, ServerGroupAffinityFilter>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostFilter, SameHostFilter>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostFilter, DifferentHostFilter>());

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostWeigher, RamWeigher>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostWeigher, CpuWeigher>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostWeigher, DiskWeigher>());

        services.TryAddSingleton<HostManager>();
        services.TryAddSingleton<SchedulerManager>();
        return services;
    }
}
