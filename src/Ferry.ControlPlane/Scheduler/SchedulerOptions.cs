using Microsoft.Extensions.Options;

namespace Ferry.ControlPlane.Scheduler;

/// <summary>
/// Scheduler knobs, named after Nova's <c>[filter_scheduler]</c> and <c>[scheduler]</c> options
/// (https://docs.openstack.org/nova/latest/configuration/config.html#filter_scheduler).
/// </summary>
public sealed class SchedulerOptions
{
    /// <summary>All filters Ferry ships, in the order they run by default (cheapest first).</summary>
    public static IReadOnlyList<string> AllFilters { get; } =
    [
        "ComputeFilter",
        "AvailabilityZoneFilter",
        "ImagePropertiesFilter",
        "ServerGroupAntiAffinityFilter",
        "ServerGroupAffinityFilter",
        "SameHostFilter",
        "DifferentHostFilter",
    ];

    /// <summary>A service silent for longer than this is down (Nova's <c>service_down_time</c>).</summary>
    public TimeSpan ServiceDownTime { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>The chosen host is random among this many best-weighed hosts (<c>host_subset_size</c>).</summary>
    public int HostSubsetSize { get; set; } = 1;

    public double RamWeightMultiplier { get; set; } = 1.0;

    public double CpuWeightMultiplier { get; set; } = 1.0;

    public double DiskWeightMultiplier { get; set; } = 1.0;

    /// <summary>The <c>limit</c> of the allocation candidates query (<c>max_placement_results</c>).</summary>
    public int MaxPlacementResults { get; set; } = 1000;

    /// <summary>Filters to run, by name, in this order (<c>enabled_filters</c>).</summary>
    public List<string> EnabledFilters { get; set; } = [.. AllFilters];
}

/// <summary>Rejects settings the scheduler cannot work with, at startup.</summary>
internal sealed class SchedulerOptionsValidator : IValidateOptions<SchedulerOptions>
{
    public ValidateOptionsResult Validate(string? name, SchedulerOptions options)
    {
        List<string> failures = [];
        if (options.ServiceDownTime <= TimeSpan.Zero)
        {
            failures.Add("Scheduler:ServiceDownTime must be positive.");
        }
        if (options.HostSubsetSize < 1)
        {
            failures.Add("Scheduler:HostSubsetSize must be at least 1.");
        }
        if (options.MaxPlacementResults < 1)
        {
            failures.Add("Scheduler:MaxPlacementResults must be at least 1.");
        }
        foreach (var filter in options.EnabledFilters)
        {
            if (!SchedulerOptions.AllFilters.Contains(filter, StringComparer.Ordinal))
            {
                failures.Add($"Scheduler:EnabledFilters names an unknown filter '{filter}'.");
            }
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
