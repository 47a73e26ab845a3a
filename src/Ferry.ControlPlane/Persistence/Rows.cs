using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using System.Data.Common;

namespace Ferry.ControlPlane.Persistence;

/// <summary>Small helpers shared by the stores: JSON columns and ISO timestamps.</summary>
internal static class Rows
{
    public static string Json<T>(T value, JsonTypeInfo<T> type) => JsonSerializer.Serialize(value, type);

    public static T FromJson<T>(string json, JsonTypeInfo<T> type) => JsonSerializer.Deserialize(json, type)!;

    public static string Time(DateTimeOffset value) => value.UtcDateTime.ToString("o", CultureInfo.InvariantCulture);

    public static DateTimeOffset ParseTime(string value) =>
        DateTimeOffset.Parse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);

    public static List<T> ReadAll<T>(DbCommand command, Func<DbDataReader, T> map)
    {
        using var reader = command.ExecuteReader();
        var rows = new List<T>();
        while (reader.Read())
        {
            rows.Add(map(reader));
        }
        return rows;
    }

    /// <summary>Every row of <paramref name="command"/>, mapped (the asynchronous form of <see cref="ReadAll{T}"/>).</summary>
    public static async Task<List<T>> ReadAllAsync<T>(DbCommand command, Func<DbDataReader, T> map, CancellationToken cancellationToken)
    {
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var rows = new List<T>();
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(map(reader));
        }
        return rows;
    }

    /// <summary>The first row of <paramref name="command"/>, mapped, or the default when there is none.</summary>
    public static async Task<T?> ReadFirstAsync<T>(DbCommand command, Func<DbDataReader, T> map, CancellationToken cancellationToken)
    {
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? map(reader) : default;
    }

    public static string? NullableString(DbDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);

    /// <summary>An integer column as Int32 on either engine (PostgreSQL's are BIGINT, read back as Int64).</summary>
    public static int Int(DbDataReader reader, int ordinal) => Convert.ToInt32(reader.GetValue(ordinal), CultureInfo.InvariantCulture);

    /// <summary>
    /// Inserts a placeholder row (<paramref name="insertSql"/> ends with <c>RETURNING</c> its id column) and returns the id the database gave it, for a record that must carry its own
    /// id (in its JSON) before it is written: the caller fills the row with an UPDATE in the same transaction.
    /// </summary>
    public static int ReserveId(DbConnection connection, DbTransaction transaction, string insertSql, params (string Name, object? Value)[] parameters)
    {
        using var insert = FerryDatabase.Command(connection, transaction, insertSql, parameters);
        return Convert.ToInt32(insert.ExecuteScalar(), CultureInfo.InvariantCulture);
    }

    /// <inheritdoc cref="ReserveId"/>
    public static async Task<int> ReserveIdAsync(DbConnection connection, DbTransaction transaction, string insertSql, CancellationToken cancellationToken,
        params (string Name, object? Value)[] parameters)
    {
        await using var insert = FerryDatabase.Command(connection, transaction, insertSql, parameters);
        return Convert.ToInt32(await insert.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture);
    }

    /// <summary>A unique value for a placeholder row's UNIQUE columns until the real values are written.</summary>
    public static string Placeholder() => "pending-" + Guid.NewGuid().ToString("N");
}
