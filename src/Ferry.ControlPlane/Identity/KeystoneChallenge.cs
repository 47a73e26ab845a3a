using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.ControlPlane.Identity;

/// <summary>
/// The 401 keystonemiddleware answers in front of every OpenStack service for a request without a valid token:
/// Keystone's error body, and a <c>WWW-Authenticate: Keystone uri="…"</c> naming where to get one (when known).
/// </summary>
internal static class KeystoneChallenge
{
    public static IResult Unauthorized(HttpContext http)
    {
        if (http.RequestServices.GetService<IdentityOptions>()?.Catalog.FirstOrDefault(s => s.Type == "identity")?.Url is { } identityUrl)
        {
            http.Response.Headers.WWWAuthenticate = "Keystone uri=\"" + identityUrl.Replace("/v3", "", StringComparison.Ordinal) + "\"";
        }
        return IdentityEndpoints.Error(StatusCodes.Status401Unauthorized, "Unauthorized", "The request you have made requires authentication.");
    }
}
