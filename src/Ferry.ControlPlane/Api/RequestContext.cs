using Ferry.Core.Errors;
using Microsoft.AspNetCore.Http;

namespace Ferry.ControlPlane.Api;

/// <summary>Who is calling, in which project, at which microversion (Nova's RequestContext).</summary>
public sealed record RequestContext(string UserId, string ProjectId, bool IsAdmin, ApiVersion Version, string RequestId)
{
    private static readonly object s_key = new();

    /// <summary>The context the request filter attached; handlers of anonymous routes must not call this.</summary>
    public static RequestContext Of(HttpContext http) =>
        http.Items.TryGetValue(s_key, out var value) && value is RequestContext context
            ? context
            : throw new FerryException("The request you have made requires authentication.", 401);

    internal static RequestContext? Find(HttpContext http) =>
        http.Items.TryGetValue(s_key, out var value) ? value as RequestContext : null;

    internal void Attach(HttpContext http) => http.Items[s_key] = this;

    /// <summary>403 unless admin, with Nova's policy message naming <paramref name="rule"/>.</summary>
    public void RequireAdmin(string rule)
    {
        if (!IsAdmin)
        {
            throw PolicyDenied(rule);
        }
    }

    /// <summary>Nova's default rule for "owner or admin" policies.</summary>
    public void RequireOwnerOrAdmin(string rule, string projectId)
    {
        if (!IsAdmin && projectId != ProjectId)
        {
            throw PolicyDenied(rule);
        }
    }

    public static ForbiddenException PolicyDenied(string rule) => new($"Policy doesn't allow {rule} to be performed.");
}
