using System.Data.Common;
using Ferry.Core.Domain;
using Ferry.Core.Errors;

namespace Ferry.ControlPlane.Persistence;

/// <summary>Flavors and the built-in image catalog.</summary>
public sealed class CatalogStore(FerryDatabase db)
{
    /// <summary>Inserts a flavor; its <c>InternalId</c> comes from the database. 409 when its id or name is taken.</summary>
    public Task<Flavor> CreateFlavorAsync(Func<int, Flavor> build, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            var id = await Rows.ReserveIdAsync(c, t, "INSERT INTO flavors(flavorid, name, data) VALUES (@f, @f, '{}') RETURNING internal_id", ct, ("@f", Rows.Placeholder()));
            var flavor = build(id);
            var conflict = new ConflictException($"Flavor with name {flavor.Name} or ID {flavor.Id} already exists.");
            await using var dup = FerryDatabase.Command(c, t, "SELECT COUNT(*) FROM flavors WHERE flavorid = @f OR name = @n", ("@f", flavor.Id), ("@n", flavor.Name));
            if (Convert.ToInt32(await dup.ExecuteScalarAsync(ct)) > 0)
            {
                throw conflict;
            }
            await using var fill = FerryDatabase.Command(c, t, "UPDATE flavors SET flavorid = @f, name = @n, data = @d WHERE internal_id = @i",
                ("@i", flavor.InternalId), ("@f", flavor.Id), ("@n", flavor.Name), ("@d", Rows.Json(flavor, PersistenceJsonContext.Default.Flavor)));
            try
            {
                await fill.ExecuteNonQueryAsync(ct);
            }
            catch (DbException e) when (SqlDialect.IsUniqueViolation(e))
            {
                // Another process created the same flavor after the check above.
                throw conflict;
            }
            return flavor;
        }, cancellationToken);

    /// <summary>A flavor by API id, or by name as the clients also allow.</summary>
    public Task<Flavor?> FindFlavorAsync(string idOrName, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null, "SELECT data FROM flavors WHERE flavorid = @k UNION ALL SELECT data FROM flavors WHERE name = @k LIMIT 1", ("@k", idOrName));
            return await command.ExecuteScalarAsync(ct) is string json ? Rows.FromJson(json, PersistenceJsonContext.Default.Flavor) : null;
        }, cancellationToken);

    public Task<List<Flavor>> ListFlavorsAsync(CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null, "SELECT data FROM flavors ORDER BY internal_id");
            return await Rows.ReadAllAsync(command, r => Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.Flavor), ct);
        }, cancellationToken);

    public Task DeleteFlavorAsync(string id, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            await using var command = FerryDatabase.Command(c, t, "DELETE FROM flavors WHERE flavorid = @f", ("@f", id));
            if (await command.ExecuteNonQueryAsync(ct) == 0)
            {
                throw new FlavorNotFoundException(id);
            }
        }, cancellationToken);

    public Task<Image> SaveImageAsync(Image image, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            await using var command = FerryDatabase.Command(c, t,
                "INSERT INTO images(id, name, created_at, data) VALUES (@i, @n, @c, @d) ON CONFLICT(id) DO UPDATE SET name = @n, data = @d",
                ("@i", image.Id), ("@n", image.Name), ("@c", Rows.Time(image.CreatedAt)), ("@d", Rows.Json(image, PersistenceJsonContext.Default.Image)));
            await command.ExecuteNonQueryAsync(ct);
            return image;
        }, cancellationToken);

    public Task<Image?> FindImageAsync(string idOrName, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null, "SELECT data FROM images WHERE lower(id) = lower(@k) UNION ALL SELECT data FROM images WHERE name = @k LIMIT 1", ("@k", idOrName));
            return await command.ExecuteScalarAsync(ct) is string json ? Rows.FromJson(json, PersistenceJsonContext.Default.Image) : null;
        }, cancellationToken);

    public Task<List<Image>> ListImagesAsync(CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null, "SELECT data FROM images ORDER BY created_at, id");
            return await Rows.ReadAllAsync(command, r => Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.Image), ct);
        }, cancellationToken);

    /// <summary>An image by id only (Glance never resolves names in paths), in any spelling of the id: one UUID is one image.</summary>
    public Task<Image?> GetImageAsync(string id, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null, "SELECT data FROM images WHERE lower(id) = lower(@k)", ("@k", id));
            return await command.ExecuteScalarAsync(ct) is string json ? Rows.FromJson(json, PersistenceJsonContext.Default.Image) : null;
        }, cancellationToken);

    /// <summary>Deletes an image record; false when there was none.</summary>
    public Task<bool> DeleteImageAsync(string id, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            await using var command = FerryDatabase.Command(c, t, "DELETE FROM images WHERE id = @i", ("@i", id));
            return await command.ExecuteNonQueryAsync(ct) > 0;
        }, cancellationToken);
}
