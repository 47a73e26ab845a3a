using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Ferry.Core.Errors;
using Ferry.Core.Rpc.Compute;
using Ferry.Core.Rpc.Conductor;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Ferry.ControlPlane.Api;

public static class ApiServiceCollectionExtensions
{
    /// <summary>
    /// Registers the compute API's services. Needs, from the host: <see cref="FerryDatabase"/> (schema
    /// migrated), <see cref="Ferry.Core.Rpc.IRpcTransport"/>, <see cref="Ferry.Core.Rpc.RpcOptions"/> and
    /// <see cref="ControlPlaneOptions"/> singletons. Stores, placement, RPC clients, the noauth2 authenticator and
    /// <see cref="TimeProvider.System"/> are added only if nothing registered them first.
    /// </summary>
    public static IServiceCollection AddFerryComputeApi(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<IRequestAuthenticator, NoAuthRequestAuthenticator>();
        services.AddFerryStores();
        services.AddFerryPlacement(); // local delete frees allocations itself (Nova's API calls placement too)
        services.TryAddSingleton<ConductorClient>();
        services.TryAddSingleton<ComputeClient>();
        services.TryAddSingleton<ComputeApi>();
        services.TryAddSingleton<ServerViewBuilder>();
        services.TryAddSingleton<QuotaEngine>();
        return services;
    }

    /// <summary>
    /// Maps the compute API under <c>/v2.1</c> and <c>/v2</c> (as Nova serves both), and the versions
    /// document at <c>/</c>. Unknown paths under either prefix are 404 <c>itemNotFound</c>.
    /// </summary>
    public static IEndpointRouteBuilder MapFerryComputeApi(this IEndpointRouteBuilder endpoints)
    {
        var root = endpoints.MapGroup("");
        root.AddEndpointFilter(NovaRequestFilter.InvokeAsync);
        root.MapGet("/", VersionsEndpoints.GetVersions).WithMetadata(AnonymousEndpoint.Instance);
        root.Map("{**path}", NotFound).AsFallback();

        foreach (var prefix in new[] { "/v2.1", "/v2" })
        {
            var api = endpoints.MapGroup(prefix);
            api.AddEndpointFilter(NovaRequestFilter.InvokeAsync);
            api.MapVersions(prefix);
            api.MapServers();
            api.MapServerActions();
            api.MapServerMetadata();
            api.MapServerMigrations();
            api.MapMigrations();
            api.MapInstanceActions();
            api.MapVolumeAttachments();
            api.MapServices();
            api.MapHypervisors();
            api.MapFlavors();
            api.MapImages();
            api.MapServerGroups();
            api.MapKeypairs();
            api.MapAvailabilityZones();
            api.MapLimits();
            api.MapQuotaSets();
            api.MapQuotaClassSets();
            api.MapAggregates();
            api.Map("{**path}", NotFound).AsFallback();
        }
        return endpoints;
    }

    private static IResult NotFound() => throw new NotFoundException("The resource could not be found.");
}
