using Microsoft.AspNetCore.Http;

namespace Ferry.ControlPlane.Api;

/// <summary>
/// Nova's noauth2 middleware: <c>X-Auth-Token: user:project</c> (or just <c>user</c>, which is also the
/// project); the user <c>admin</c> has the admin role.
/// </summary>
internal sealed class NoAuthRequestAuthenticator : IRequestAuthenticator
{
    public ValueTask<RequestIdentity?> AuthenticateAsync(HttpContext http, CancellationToken cancellationToken)
    {
        var token = http.Request.Headers["X-Auth-Token"].ToString().Trim();
        if (token.Length == 0)
        {
            return ValueTask.FromResult<RequestIdentity?>(null);
        }
        var separator = token.IndexOf(':', StringComparison.Ordinal);
        var user = separator < 0 ? token : token[..separator];
        var project = separator < 0 ? token : token[(separator + 1)..];
        if (user.Length == 0 || project.Length == 0)
        {
            return ValueTask.FromResult<RequestIdentity?>(null);
        }
        return ValueTask.FromResult<RequestIdentity?>(new RequestIdentity(user, project, user == "admin"));
    }
}
