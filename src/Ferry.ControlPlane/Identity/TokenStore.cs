using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Ferry.ControlPlane.Persistence;

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
/// Opaque random tokens kept in the database's <c>tokens</c> table with their expiry, so a token one API replica
/// issued is valid on every other, and revoking it on one revokes it everywhere. Only a SHA-256 of the token
/// id is stored (a leaked table holds no usable token), and the user without its password hash. Expired rows
/// are deleted when met and when new tokens are issued. On an unshared database (SQLite, one process) validated
/// tokens are also kept in memory, since no other process can revoke them.
/// </summary>
public sealed class TokenStore
{
    private readonly IdentityOptions _options;
    private readonly TimeProvider _time;
    private readonly FerryDatabase _db;
    private readonly ConcurrentDictionary<string, IdentityToken>? _local;

    public TokenStore(IdentityOptions options, TimeProvider time, FerryDatabase db)
    {
        _options = options;
        _time = time;
        _db = db;
        _local = db.IsShared ? null : new ConcurrentDictionary<string, IdentityToken>(StringComparer.Ordinal);
        db.Migrate(IdentitySchema.Component, IdentitySchema.Scripts);
    }

    public TimeSpan Lifetime => _options.TokenLifetime;

    /// <remarks>A write: <paramref name="cancellationToken"/> only stops the wait to begin it.</remarks>
    public async Task<IdentityToken> IssueAsync(UserEntry user, ProjectEntry? project, IReadOnlyList<RoleEntry> roles, IReadOnlyList<string> methods,
        DateTimeOffset? expiresAt, string? auditId, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var expires = expiresAt ?? now + _options.TokenLifetime;
        var token = new IdentityToken(NewSecret(32), user, project, roles, methods, now, expires, auditId ?? NewSecret(16));
        await _db.WriteAsync(async (c, t, ct) =>
        {
            await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "DELETE FROM tokens WHERE expires_at <= @now", ("@now", Rows.Time(now))), ct);
            await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t,
                "INSERT INTO tokens(id_hash, user_id, project_id, user_data, project_data, roles, methods, issued_at, expires_at, audit_id) " +
                "VALUES (@h, @u, @p, @ud, @pd, @r, @m, @i, @e, @a)",
                ("@h", Hash(token.Id)), ("@u", user.Id), ("@p", project?.Id),
                ("@ud", Rows.Json(user with { PasswordHash = "" }, TokenJsonContext.Default.UserEntry)),
                ("@pd", project is null ? null : Rows.Json(project, TokenJsonContext.Default.ProjectEntry)),
                ("@r", Rows.Json(roles.ToList(), TokenJsonContext.Default.ListRoleEntry)), ("@m", Rows.Json(methods.ToList(), TokenJsonContext.Default.ListString)),
                ("@i", Rows.Time(now)), ("@e", Rows.Time(expires)), ("@a", token.AuditId)), ct);
        }, cancellationToken);
        _local?.TryAdd(token.Id, token);
        if (_local is not null)
        {
            foreach (var (id, cached) in _local)
            {
                if (cached.ExpiresAt <= now)
                {
                    _local.TryRemove(id, out _);
                }
            }
        }
        return token;
    }

    /// <summary>The live token with this id, or null when unknown, revoked or expired.</summary>
    /// <remarks>Runs on every API request: a token held in memory (unshared database) is answered without a task.</remarks>
    public ValueTask<IdentityToken?> ValidateAsync(string? id, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(id))
        {
            return ValueTask.FromResult<IdentityToken?>(null);
        }
        if (_local is not null && _local.TryGetValue(id, out var cached) && cached.ExpiresAt > _time.GetUtcNow())
        {
            return ValueTask.FromResult<IdentityToken?>(cached);
        }
        return new ValueTask<IdentityToken?>(LoadAsync(id, cancellationToken));
    }

    private async Task<IdentityToken?> LoadAsync(string id, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        if (_local is not null && _local.ContainsKey(id))
        {
            // Expired in memory: gone from the table too.
            await RevokeAsync(id, cancellationToken);
            return null;
        }
        var token = await _db.ReadAsync(async (c, ct) =>
        {
            await using var read = FerryDatabase.Command(c, null,
                "SELECT user_data, project_data, roles, methods, issued_at, expires_at, audit_id FROM tokens WHERE id_hash = @h", ("@h", Hash(id)));
            return await Rows.ReadFirstAsync(read, r => new IdentityToken(id,
                Rows.FromJson(r.GetString(0), TokenJsonContext.Default.UserEntry),
                r.IsDBNull(1) ? null : Rows.FromJson(r.GetString(1), TokenJsonContext.Default.ProjectEntry),
                Rows.FromJson(r.GetString(2), TokenJsonContext.Default.ListRoleEntry),
                Rows.FromJson(r.GetString(3), TokenJsonContext.Default.ListString),
                Rows.ParseTime(r.GetString(4)), Rows.ParseTime(r.GetString(5)), r.GetString(6)), ct);
        }, cancellationToken);
        if (token is null)
        {
            return null;
        }
        if (token.ExpiresAt <= now)
        {
            await RevokeAsync(id, cancellationToken);
            return null;
        }
        _local?.TryAdd(id, token);
        return token;
    }

    /// <summary>Deletes the token; false when there was none.</summary>
    /// <remarks>A write: <paramref name="cancellationToken"/> only stops the wait to begin it.</remarks>
    public Task<bool> RevokeAsync(string id, CancellationToken cancellationToken)
    {
        _local?.TryRemove(id, out _);
        return _db.WriteAsync(async (c, t, ct) =>
            await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "DELETE FROM tokens WHERE id_hash = @h", ("@h", Hash(id))), ct) > 0,
            cancellationToken);
    }

    private static string Hash(string id) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(id)));

    private static string NewSecret(int bytes) =>
        Convert.ToBase64String(RandomNumberGenerator.GetBytes(bytes)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
