using Ferry.Core.Errors;

namespace Ferry.ControlPlane.Persistence;

/// <summary>
/// The database named by the connection setting cannot be reached (or refuses the login), at start or for longer than
/// <see cref="FerryDatabase.UnavailableWait"/> while running. Nothing was written, so retrying later is safe: an API
/// answers 503 in its own shape (Nova's serviceUnavailable).
/// </summary>
public sealed class DatabaseUnavailableException(string description, Exception inner)
    : FerryException($"Cannot reach the database {description}: {inner.Message}", 503)
{
    /// <summary>The engine and where it is, without credentials.</summary>
    public string Database { get; } = description;

    /// <summary>What the driver said (the exception is rebuilt on the far side of an RPC call without it).</summary>
    public Exception Cause { get; } = inner;

    public override bool IsTransient => true;
}
