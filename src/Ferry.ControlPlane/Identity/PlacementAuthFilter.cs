using System.Text.Json.Nodes;
using Ferry.ControlPlane.Api;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.ControlPlane.Identity;

/// <summary>
/// Placement's authentication and default policy: the version document at <c>/</c> is open; everything else
/// needs a caller (401: a live Keystone token, or in noauth2 mode an <c>X-Auth-Token: user:project</c>, as
/// placement's own noauth2 middleware demands) with the admin role (403, Placement's error body), as
/// Placement's default policy is admin-only.
/// </summary>
public static class PlacementAuthFilter
{
    public static async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        if (http.Request.Path.Value is null or "" or "/")
        {
            return await next(context);
        }
        var caller = await http.RequestServices.GetRequiredService<IRequestAuthenticator>().AuthenticateAsync(http, http.RequestAborted);
        if (caller is null)
        {
            return KeystoneChallenge.Unauthorized(http);
        }
        if (!caller.IsAdmin)
        {
            var body = new JsonObject
            {
                ["errors"] = new JsonArray(new JsonObject
                {
                    ["status"] = 403,
                    ["title"] = "Forbidden",
                    ["detail"] = "Access was denied to this resource.\n\n Policy does not allow placement to be performed.  ",
                    ["request_id"] = $"req-{Guid.NewGuid()}",
                }),
            };
            return TypedResults.Json(body, ApiJsonContext.Default.JsonNode, statusCode: StatusCodes.Status403Forbidden);
        }
        return await next(context);
    }
}
