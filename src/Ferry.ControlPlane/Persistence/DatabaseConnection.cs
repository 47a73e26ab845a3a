using System.Globalization;
using Npgsql;

namespace Ferry.ControlPlane.Persistence;

/// <summary>
/// The database setting as given (a path, <c>sqlite:PATH</c>, <c>postgresql://user:password@host:port/db?key=value</c>
/// or an Npgsql keyword string) turned into an engine and the string its driver takes.
/// </summary>
public sealed record DatabaseConnection(DatabaseEngine Engine, string ConnectionString, string Description)
{
    public static DatabaseConnection Parse(string setting)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(setting);
        if (setting.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase) || setting.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase))
        {
            return Postgres(FromUri(setting));
        }
        if (setting.StartsWith("sqlite:", StringComparison.OrdinalIgnoreCase))
        {
            var path = setting["sqlite:".Length..];
            return new DatabaseConnection(DatabaseEngine.Sqlite, path, "sqlite:" + path);
        }
        if (setting.Contains('=') && setting.Contains("host", StringComparison.OrdinalIgnoreCase))
        {
            NpgsqlConnectionStringBuilder builder;
            try
            {
                builder = new NpgsqlConnectionStringBuilder(setting);
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"Invalid PostgreSQL connection string: {e.Message}", nameof(setting), e);
            }
            return Postgres(builder);
        }
        return new DatabaseConnection(DatabaseEngine.Sqlite, setting, "sqlite:" + setting);
    }

    private static DatabaseConnection Postgres(NpgsqlConnectionStringBuilder builder) =>
        new(DatabaseEngine.PostgreSql, builder.ConnectionString,
            string.Create(CultureInfo.InvariantCulture, $"postgresql://{builder.Username}@{builder.Host}:{builder.Port}/{builder.Database}"));

    /// <summary>libpq's URI form: <c>postgresql://[user[:password]@][host][:port][/db][?key=value&amp;…]</c>; <c>host</c> may also come as a query key (a socket directory).</summary>
    private static NpgsqlConnectionStringBuilder FromUri(string setting)
    {
        if (!Uri.TryCreate(setting, UriKind.Absolute, out var uri))
        {
            throw new ArgumentException($"Invalid PostgreSQL URI: {setting}", nameof(setting));
        }
        var builder = new NpgsqlConnectionStringBuilder();
        if (!string.IsNullOrEmpty(uri.Host))
        {
            builder.Host = uri.Host;
        }
        if (!uri.IsDefaultPort && uri.Port > 0)
        {
            builder.Port = uri.Port;
        }
        if (uri.UserInfo.Length > 0)
        {
            var parts = uri.UserInfo.Split(':', 2);
            builder.Username = Uri.UnescapeDataString(parts[0]);
            if (parts.Length == 2)
            {
                builder.Password = Uri.UnescapeDataString(parts[1]);
            }
        }
        var database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/'));
        if (database.Length > 0)
        {
            builder.Database = database;
        }
        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var kv = pair.Split('=', 2);
            try
            {
                builder[Uri.UnescapeDataString(kv[0])] = kv.Length == 2 ? Uri.UnescapeDataString(kv[1]) : "";
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"Invalid PostgreSQL URI option '{kv[0]}': {e.Message}", nameof(setting), e);
            }
        }
        return builder;
    }
}
