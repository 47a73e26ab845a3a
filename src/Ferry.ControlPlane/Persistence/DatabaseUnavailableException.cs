namespace Ferry.ControlPlane.Persistence;

/// <summary>The database named by the connection setting cannot be reached (or refuses the login).</summary>
public sealed class DatabaseUnavailableException(string description, Exception inner)
    : Exception($"Cannot reach the database {description}: {inner.Message}", inner)
{
    /// <summary>The engine and where it is, without credentials.</summary>
    public string Database { get; } = description;
}
