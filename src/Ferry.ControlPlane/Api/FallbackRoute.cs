using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;

namespace Ferry.ControlPlane.Api;

/// <summary>
/// <c>Map("{**path}", handler).AsFallback()</c> in place of <c>MapFallback("{**path}", handler)</c>: the request delegate
/// generator's <c>MapFallback</c> replaces the given pattern with <c>{*path:nonfile}</c>, so a path whose last segment has
/// a dot (<c>/v2.1/1.5</c>) matched nothing and got routing's empty 404 instead of the service's own error body.
/// </summary>
public static class FallbackRoute
{
    /// <summary>What <c>MapFallback</c> adds to its route: the lowest priority, so every other route matches first.</summary>
    public static RouteHandlerBuilder AsFallback(this RouteHandlerBuilder builder)
    {
        builder.Add(endpoint => ((RouteEndpointBuilder)endpoint).Order = int.MaxValue);
        return builder;
    }
}
