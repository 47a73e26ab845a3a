using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace Ferry.ControlPlane.Identity;

/// <summary>An issued token: who, scoped to which project (null when unscoped), with which roles, until when.</summary>
public sealed record IdentityToken(
    string Id,
    UserEntry User,
    ProjectEntry? Project,
    IReadOnlyList<RoleEntry> Roles,
    IReadOnlyList<string> Methods,
    DateTimeOffset IssuedAt,
    DateTimeOffset ExpiresAt,
    string AuditId)
{
    public bool IsAdmin => Roles.Any(r => r.Name == "admin");

    /// <summary>Only <c>reader</c> (admin implies member implies reader): may read, not write.</summary>
    public bool IsReadOnly => !IsAdmin && Roles.Any(r => r.Name == "reader") && !Roles.Any(r => r.Name == "member");
}

/// <summary>
/// Opaque random tokens kept in memory with their expiry (a restart revokes them all, as clients
/// simply authenticate again). Expired tokens are dropped when met and when new ones are issued.
/// </summary>
public sealed class TokenStore(IdentityOptions options, TimeProvider time)
{
    private readonly ConcurrentDictionary<string, IdentityToken> _tokens = new(StringComparer.Ordinal);

    public TimeSpan Lifetime => options.TokenLifetime;

    public IdentityToken Issue(UserEntry user, ProjectEntry? project, IReadOnlyList<RoleEntry> roles, IReadOnlyList<string> methods,
        DateTimeOffset? expiresAt = null, string? auditId = null)
    {
        var now = time.GetUtcNow();
        PurgeExpired(now);
        var expires = expiresAt ?? now + options.TokenLifetime;
        var token = new IdentityToken(NewSecret(32), user, project, roles, methods, now, expires, auditId ?? NewSecret(16));
        _tokens[token.Id] = token;
        return token;
    }

    /// <summary>The live token with this id, or null when unknown, revoked or expired.</summary>
    public IdentityToken? Validate(string? id)
    {
        if (string.IsNullOrEmpty(id) || !_tokens.TryGetValue(id, out var token))
        {
            return null;
        }
        if (token.ExpiresAt <= time.GetUtcNow())
        {
            _tokens.TryRemove(id, out _);
            return null;
        }
        return token;
    }

    public bool Revoke(string id) => _tokens.TryRemove(id, out _);

    private void PurgeExpired(DateTimeOffset now)
    {
        foreach (var (id, token) in _tokens)
        {
            if (token.ExpiresAt <= now)
            {
                _tokens.TryRemove(id, out _);
            }
        }
    }

    private static string NewSecret(int bytes) =>
        Convert.ToBase64String(RandomNumberGenerator.GetBytes(bytes)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
