using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Template;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.ControlPlane.Api;

/// <summary>
/// What a service's fallback needs to tell a wrong method (405, with <c>Allow</c>) from an unknown path
/// (404), as Placement, Keystone and Glance do: the methods the same service maps at the request's path.
/// </summary>
internal static class AllowedMethods
{
    /// <summary>The methods of the endpoints on the fallback's port whose template matches the path; empty for an unknown path.</summary>
    public static IReadOnlyList<string> At(HttpContext http)
    {
        var port = http.GetEndpoint()?.Metadata.GetMetadata<LocalPortMetadata>()?.Port;
        var methods = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var endpoint in http.RequestServices.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>())
        {
            if (endpoint.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods is not { Count: > 0 } served
                || endpoint.Metadata.GetMetadata<LocalPortMetadata>()?.Port != port)
            {
                continue;
            }
            var matcher = new TemplateMatcher(new RouteTemplate(endpoint.RoutePattern), []);
            if (matcher.TryMatch(http.Request.Path, []))
            {
                methods.UnionWith(served);
            }
        }
        return [.. methods];
    }

    /// <summary>Sets <c>Allow</c> and returns true when the path is served with other methods.</summary>
    public static bool IsWrongMethod(HttpContext http)
    {
        var allowed = At(http);
        if (allowed.Count == 0)
        {
            return false;
        }
        http.Response.Headers.Allow = string.Join(", ", allowed);
        return true;
    }
}
