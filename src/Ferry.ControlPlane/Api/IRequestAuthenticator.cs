using Microsoft.AspNetCore.Http;

namespace Ferry.ControlPlane.Api;

/// <summary>
/// Turns a request's credentials into an identity. The default is Nova's <c>noauth2</c>; a Keystone
/// token validator can replace it by registering its own implementation before <c>AddFerryComputeApi</c>.
/// </summary>
public interface IRequestAuthenticator
{
    /// <summary>The caller, or null when the request carries no acceptable credentials (the API answers 401).</summary>
    ValueTask<RequestIdentity?> AuthenticateAsync(HttpContext http, CancellationToken cancellationToken);
}

/// <summary>An authenticated caller.</summary>
/// <param name="ReadOnly">Holds only the <c>reader</c> role in the project: may look, not change (Keystone's default roles).</param>
public sealed record RequestIdentity(string UserId, string ProjectId, bool IsAdmin, bool ReadOnly = false);
