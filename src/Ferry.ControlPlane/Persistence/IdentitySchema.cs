namespace Ferry.ControlPlane.Persistence;

/// <summary>
/// Versioned schema of the identity tables: issued tokens, so a token one API replica issued is valid on
/// every other (Keystone keeps them in its database too, or signs them). Only a SHA-256 of the token id is
/// stored, never the id itself. Scripts are only ever appended.
/// </summary>
public static class IdentitySchema
{
    public const string Component = "identity";

    public static readonly IReadOnlyList<string> Scripts =
    [
        """
        CREATE TABLE tokens (
            id_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, project_id TEXT, user_data TEXT NOT NULL, project_data TEXT,
            roles TEXT NOT NULL, methods TEXT NOT NULL, issued_at TEXT NOT NULL, expires_at TEXT NOT NULL, audit_id TEXT NOT NULL);
        CREATE INDEX ix_tokens_expires ON tokens(expires_at);
        """,
    ];
}
