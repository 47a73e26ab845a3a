using Ferry.ControlPlane.Api;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Fuzz;

/// <summary>One mapped route: its service (by port), method and template (a fallback has no method).</summary>
internal sealed record FuzzRoute(FuzzService Service, string? Method, string Template, IReadOnlyList<string> Parameters)
{
    public bool IsFallback => Method is null;

    /// <summary>The template without the compute API's version prefix, the key of the seed bodies.</summary>
    public string Key
    {
        get
        {
            var t = Template;
            foreach (var prefix in new[] { "/v2.1", "/v2" })
            {
                if (Service == FuzzService.Compute && (t == prefix || t.StartsWith(prefix + "/", StringComparison.Ordinal)))
                {
                    t = t[prefix.Length..];
                    break;
                }
            }
            return $"{Method} {(t.Length == 0 ? "/" : t)}";
        }
    }

    public override string ToString() => $"{Service} {Method ?? "*"} {Template}";

    /// <summary>Every route the host mapped (its EndpointDataSource), each attributed to a service by its port.</summary>
    public static List<FuzzRoute> Enumerate(IServiceProvider services, IReadOnlyDictionary<int, FuzzService> ports)
    {
        var routes = new List<FuzzRoute>();
        foreach (var endpoint in services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>())
        {
            if (endpoint.RoutePattern.RawText is "/healthcheck" or "/metrics")
            {
                continue; // served on every port, without a service's error shape (oslo.middleware's text answers, Prometheus text)
            }
            var port = endpoint.Metadata.GetMetadata<LocalPortMetadata>()?.Port ?? 0;
            if (!ports.TryGetValue(port, out var service))
            {
                throw new InvalidOperationException($"Route {endpoint.RoutePattern.RawText} is not bound to a service port (port {port})");
            }
            var template = "/" + (endpoint.RoutePattern.RawText ?? "").TrimStart('/');
            var parameters = endpoint.RoutePattern.Parameters.Select(x => x.Name).ToList();
            var methods = endpoint.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods;
            if (methods is null || methods.Count == 0)
            {
                routes.Add(new FuzzRoute(service, null, template, parameters));
                continue;
            }
            routes.AddRange(methods.Select(m => new FuzzRoute(service, m, template, parameters)));
        }
        return routes;
    }

    public static bool IsSafe(string method) => HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method);
}
