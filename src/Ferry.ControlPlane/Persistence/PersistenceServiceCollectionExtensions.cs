using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Ferry.ControlPlane.Persistence;

public static class PersistenceServiceCollectionExtensions
{
    /// <summary>Registers every store; they need the <see cref="FerryDatabase"/> singleton (schema migrated) and a <see cref="TimeProvider"/>.</summary>
    public static IServiceCollection AddFerryStores(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<InstanceStore>();
        services.TryAddSingleton<MigrationStore>();
        services.TryAddSingleton<ActionStore>();
        services.TryAddSingleton<ServiceStore>();
        services.TryAddSingleton<ComputeNodeStore>();
        services.TryAddSingleton<CatalogStore>();
        services.TryAddSingleton<ServerGroupStore>();
        services.TryAddSingleton<KeyPairStore>();
        services.TryAddSingleton<QuotaStore>();
        services.TryAddSingleton<NetworkStore>();
        services.TryAddSingleton<VolumeStore>();
        return services;
    }
}
