using Ferry.ControlPlane.Identity;
using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Ferry.Host.Roles;

/// <summary>The api role's work before it answers: the seed flavors, image and network, and placement's state loaded.</summary>
internal sealed class ApiStartup(IServiceProvider services, FerryHostOptions options) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (options.Seed)
        {
            var time = services.GetRequiredService<TimeProvider>();
            await Seed.ApplyAsync(services.GetRequiredService<CatalogStore>(), time, cancellationToken);
            // The network belongs to the cloud's admin project (Keystone's id for it; noauth2's name otherwise).
            var adminProject = services.GetService<IdentityStore>()?.FindProject("admin", IdentityStore.DefaultDomainId)?.Id ?? "admin";
            await Seed.ApplyNetworkAsync(services.GetRequiredService<NetworkStore>(), adminProject, time, cancellationToken);
        }
        services.StartFerryPlacement();
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
