namespace Ferry.ControlPlane.Persistence;

/// <summary>
/// Versioned schema of the bus's shared state: the message ids the replicas of a topic have claimed and the outcomes
/// of the runs that finished (<see cref="DatabaseRpcDeduplicator"/>). Scripts are only ever appended.
/// </summary>
public static class MessagingSchema
{
    public const string Component = "messaging";

    public static readonly IReadOnlyList<string> Scripts =
    [
        """
        CREATE TABLE rpc_messages (
            message_id TEXT PRIMARY KEY, renewed_ms INTEGER NOT NULL, completed_ms INTEGER, is_error INTEGER, outcome BLOB);
        CREATE INDEX ix_rpc_messages_completed ON rpc_messages(completed_ms);
        """,
    ];
}
