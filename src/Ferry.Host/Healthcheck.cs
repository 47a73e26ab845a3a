using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Net.Http.Headers;

namespace Ferry.Host;

/// <summary>
/// <c>/healthcheck</c> on every API port, answered as oslo.middleware's healthcheck app is in Nova's,
/// Glance's, Keystone's and Placement's paste pipelines (backend <c>disable_by_file</c>): before any
/// authentication, GET → 200 <c>OK</c> (text/plain, or JSON when only that is acceptable), HEAD → 204;
/// while the disable file exists, 503 <c>DISABLED BY FILE</c>, so that an operator can drain a node
/// from a load balancer by touching a file.
/// </summary>
public static class Healthcheck
{
    public const string Path = "/healthcheck";

    /// <summary>The file that takes every API out of rotation (Nova's /etc/nova/healthcheck_disable).</summary>
    public static string DisableFilePath(string dataDirectory) => System.IO.Path.Combine(dataDirectory, "healthcheck_disable");

    public static IEndpointConventionBuilder MapHealthcheck(this IEndpointRouteBuilder endpoints, string disableFilePath) =>
        endpoints.MapMethods(Path, [HttpMethods.Get, HttpMethods.Head], (HttpContext http) => Answer(http, disableFilePath));

    private static IResult Answer(HttpContext http, string disableFilePath)
    {
        var healthy = !File.Exists(disableFilePath);
        var reason = healthy ? "OK" : "DISABLED BY FILE";
        if (HttpMethods.IsHead(http.Request.Method))
        {
            return Results.Text("", "text/plain", Encoding.UTF8, healthy ? StatusCodes.Status204NoContent : StatusCodes.Status503ServiceUnavailable);
        }
        var status = healthy ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
        return WantsJson(http.Request)
            ? Results.Text($"{{\n    \"detailed\": false,\n    \"reasons\": [\n        \"{reason}\"\n    ]\n}}", "application/json", Encoding.UTF8, status)
            : Results.Text(reason, "text/plain", Encoding.UTF8, status);
    }

    /// <summary>oslo offers text/plain, text/html, application/json in that order, text/plain when none is acceptable.</summary>
    private static bool WantsJson(HttpRequest request)
    {
        if (!MediaTypeHeaderValue.TryParseList(request.Headers.Accept, out var accepted) || accepted.Count == 0)
        {
            return false;
        }
        double Quality(string offer) => accepted
            .Where(a => new MediaTypeHeaderValue(offer).IsSubsetOf(a))
            .Select(a => a.Quality ?? 1.0).DefaultIfEmpty(0).Max();
        var json = Quality("application/json");
        return json > 0 && json > Quality("text/plain") && json > Quality("text/html");
    }
}
