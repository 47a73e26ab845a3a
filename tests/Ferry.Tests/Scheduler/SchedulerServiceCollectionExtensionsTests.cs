using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Ferry.ControlPlane.Scheduler;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Ferry.Tests.Scheduler;

public sealed class SchedulerServiceCollectionExtensionsTests
{
    [Fact]
    public void AddFerryScheduler_WithPlacementAndHostSource_ResolvesSchedulerWithEveryFilter()
    {
        using var database = new FerryDatabase(":memory:");
        var services = new ServiceCollection()
            .AddLogging()
            .AddSingleton<IPlacementService>(new PlacementService(database))
            .AddSingleton<IHostStateSource>(new TestHostStateSource())
            .AddFerryScheduler(o => o.HostSubsetSize = 2);
        using var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true });

        Assert.NotNull(provider.GetRequiredService<SchedulerManager>());
        Assert.Equal(SchedulerOptions.AllFilters.Order(), provider.GetServices<IHostFilter>().Select(f => f.Name).Order());
        Assert.Equal(3, provider.GetServices<IHostWeigher>().Count());
        Assert.Equal(2, provider.GetRequiredService<IOptions<SchedulerOptions>>().Value.HostSubsetSize);
        Assert.Same(TimeProvider.System, provider.GetRequiredService<TimeProvider>());
    }

    [Fact]
    public void AddFerryScheduler_UnknownFilter_FailsValidation()
    {
        var services = new ServiceCollection().AddFerryScheduler(o => o.EnabledFilters.Add("NUMATopologyFilter"));
        using var provider = services.BuildServiceProvider();

        Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<SchedulerOptions>>().Value);
    }
}
