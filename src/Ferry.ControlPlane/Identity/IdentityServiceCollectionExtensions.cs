using Ferry.ControlPlane.Api;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Ferry.ControlPlane.Identity;

public static class IdentityServiceCollectionExtensions
{
    /// <summary>
    /// Registers the identity service and makes the compute API authenticate with its tokens; call
    /// before <see cref="ApiServiceCollectionExtensions.AddFerryComputeApi"/>.
    /// </summary>
    public static IServiceCollection AddFerryIdentity(this IServiceCollection services, IdentityOptions options)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton(options);
        services.AddSingleton<IdentityStore>();
        services.AddSingleton<TokenStore>();
        services.AddSingleton<LoginLockout>();
        services.AddSingleton<IRequestAuthenticator, KeystoneRequestAuthenticator>();
        return services;
    }
}
