using Ferry.Core.Errors;
using System.Data.Common;

namespace Ferry.ControlPlane.Persistence;

/// <summary>
/// Key pairs, unique by (user, name) (Nova's KeyPair object in the API database). They belong to the
/// user, so no query here filters by project.
/// </summary>
public sealed class KeyPairStore(FerryDatabase db, TimeProvider time)
{
    private const string Columns = "id, user_id, name, type, fingerprint, public_key, created_at";

    /// <summary>Adds a key pair; 409 with Nova's KeyPairExists message when the user already has one of that name.</summary>
    /// <remarks>A write: <paramref name="cancellationToken"/> only stops the wait to begin it.</remarks>
    public Task<KeyPairRow> CreateAsync(string userId, string name, string type, string fingerprint, string publicKey, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            if (await FerryDatabase.ScalarAsync(FerryDatabase.Command(c, t, "SELECT 1 FROM key_pairs WHERE user_id = @u AND name = @n", ("@u", userId), ("@n", name)), ct)
                is not null)
            {
                throw new ConflictException($"Key pair '{name}' already exists.");
            }
            var now = time.GetUtcNow();
            int id;
            try
            {
                id = Convert.ToInt32(await FerryDatabase.ScalarAsync(FerryDatabase.Command(c, t,
                    "INSERT INTO key_pairs(user_id, name, type, fingerprint, public_key, created_at) VALUES (@u, @n, @t, @f, @p, @c) RETURNING id",
                    ("@u", userId), ("@n", name), ("@t", type), ("@f", fingerprint), ("@p", publicKey), ("@c", Rows.Time(now))), ct));
            }
            catch (DbException e) when (SqlDialect.IsUniqueViolation(e))
            {
                // Another process added the same name after the check above.
                throw new ConflictException($"Key pair '{name}' already exists.");
            }
            return new KeyPairRow(id, userId, name, type, fingerprint, publicKey, now);
        }, cancellationToken);

    public Task<KeyPairRow?> FindAsync(string userId, string name, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null, $"SELECT {Columns} FROM key_pairs WHERE user_id = @u AND name = @n", ("@u", userId), ("@n", name));
            return await Rows.ReadFirstAsync(command, Map, ct);
        }, cancellationToken);

    /// <summary>The user's key pairs by name; after <paramref name="marker"/> (a name, which must exist) and at most <paramref name="limit"/>.</summary>
    public Task<List<KeyPairRow>> ListAsync(string userId, int? limit, string? marker, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            string? after = null;
            if (marker is not null)
            {
                after = await FerryDatabase.ScalarAsync(FerryDatabase.Command(c, null, "SELECT name FROM key_pairs WHERE user_id = @u AND name = @n", ("@u", userId), ("@n", marker)), ct)
                    as string ?? throw new BadRequestException($"Marker {marker} could not be found.");
            }
            await using var command = FerryDatabase.Command(c, null,
                $"SELECT {Columns} FROM key_pairs WHERE user_id = @u AND (CAST(@a AS TEXT) IS NULL OR name > @a) ORDER BY name, id" + (limit is null ? "" : " LIMIT @l"),
                ("@u", userId), ("@a", after), ("@l", limit));
            return await Rows.ReadAllAsync(command, Map, ct);
        }, cancellationToken);

    public Task<int> CountAsync(string userId, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
            Convert.ToInt32(await FerryDatabase.ScalarAsync(FerryDatabase.Command(c, null, "SELECT COUNT(*) FROM key_pairs WHERE user_id = @u", ("@u", userId)), ct)),
            cancellationToken);

    /// <summary>Removes a key pair; 404 with Nova's KeypairNotFound message when there is none.</summary>
    /// <remarks>A write: <paramref name="cancellationToken"/> only stops the wait to begin it.</remarks>
    public Task DeleteAsync(string userId, string name, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            if (await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "DELETE FROM key_pairs WHERE user_id = @u AND name = @n", ("@u", userId), ("@n", name)), ct) == 0)
            {
                throw NotFound(userId, name);
            }
        }, cancellationToken);

    public static NotFoundException NotFound(string userId, string name) => new($"Keypair {name} not found for user {userId}");

    private static KeyPairRow Map(DbDataReader r) =>
        new(Rows.Int(r, 0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5), Rows.ParseTime(r.GetString(6)));
}

/// <summary>One key pair; <see cref="Type"/> is <c>ssh</c> or <c>x509</c>.</summary>
public sealed record KeyPairRow(int Id, string UserId, string Name, string Type, string Fingerprint, string PublicKey, DateTimeOffset CreatedAt);
