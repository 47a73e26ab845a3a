using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Ferry.Host.Roles;

/// <summary>The api role's work before it answers: the seed flavors and image, and placement's state loaded.</summary>
internal sealed class ApiStartup(IServiceProvider services, FerryHostOptions options) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (options.Seed)
        {
            await Seed.ApplyAsync(services.GetRequiredService<CatalogStore>(), services.GetRequiredService<TimeProvider>(), cancellationToken);
        }
        services.StartFerryPlacement();
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
