using Ferry.ControlPlane.Api;
using Microsoft.AspNetCore.Http;

namespace Ferry.ControlPlane.Identity;

/// <summary>
/// What keystonemiddleware's auth_token does for Nova: the X-Auth-Token must be a live project-scoped
/// token; the caller is its user in its project, admin when it holds the <c>admin</c> role.
/// </summary>
public sealed class KeystoneRequestAuthenticator(TokenStore tokens) : IRequestAuthenticator
{
    /// <remarks>Runs on every request; a token held in memory completes it synchronously, without allocating.</remarks>
    public async ValueTask<RequestIdentity?> AuthenticateAsync(HttpContext http, CancellationToken cancellationToken) =>
        IdentityOf(await tokens.ValidateAsync(http.Request.Headers["X-Auth-Token"].ToString().Trim(), cancellationToken));

    private static RequestIdentity? IdentityOf(IdentityToken? token) =>
        token is { Project: { } project } ? new RequestIdentity(token.User.Id, project.Id, token.IsAdmin, token.IsReadOnly) : null;
}
