using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Ferry.ControlPlane.Placement;

public static class PlacementServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="PlacementService"/> as the singleton <see cref="IPlacementService"/>. It needs the
    /// <see cref="Persistence.FerryDatabase"/> singleton and loads all placement state from it when first resolved.
    /// </summary>
    public static IServiceCollection AddFerryPlacement(this IServiceCollection services)
    {
        services.TryAddSingleton<PlacementService>();
        services.TryAddSingleton<IPlacementService>(sp => sp.GetRequiredService<PlacementService>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<PlacementCatalog>();
        return services;
    }

    /// <summary>
    /// Loads placement's state and creates its catalog's tables at start, not on the first request that binds them
    /// (a refused one included: endpoint filters run after parameter binding).
    /// </summary>
    public static void StartFerryPlacement(this IServiceProvider services)
    {
        _ = services.GetRequiredService<IPlacementService>();
        _ = services.GetRequiredService<PlacementCatalog>();
    }
}
