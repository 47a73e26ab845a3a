using System.Data.Common;
using Ferry.Core.Domain;
using Ferry.Core.Errors;

namespace Ferry.ControlPlane.Persistence;

/// <summary>Flavors and the built-in image catalog.</summary>
public sealed class CatalogStore(FerryDatabase db)
{
    /// <summary>Inserts a flavor; its <c>InternalId</c> comes from the database. 409 when its id or name is taken.</summary>
    public Flavor CreateFlavor(Func<int, Flavor> build) =>
        db.Write((c, t) =>
        {
            var id = Rows.ReserveId(c, t, "INSERT INTO flavors(flavorid, name, data) VALUES (@f, @f, '{}') RETURNING internal_id", ("@f", Rows.Placeholder()));
            var flavor = build(id);
            var conflict = new ConflictException($"Flavor with name {flavor.Name} or ID {flavor.Id} already exists.");
            using var dup = FerryDatabase.Command(c, t, "SELECT COUNT(*) FROM flavors WHERE flavorid = @f OR name = @n", ("@f", flavor.Id), ("@n", flavor.Name));
            if (Convert.ToInt32(dup.ExecuteScalar()) > 0)
            {
                throw conflict;
            }
            using var fill = FerryDatabase.Command(c, t, "UPDATE flavors SET flavorid = @f, name = @n, data = @d WHERE internal_id = @i",
                ("@i", flavor.InternalId), ("@f", flavor.Id), ("@n", flavor.Name), ("@d", Rows.Json(flavor, PersistenceJsonContext.Default.Flavor)));
            try
            {
                fill.ExecuteNonQuery();
            }
            catch (DbException e) when (SqlDialect.IsUniqueViolation(e))
            {
                // Another process created the same flavor after the check above.
                throw conflict;
            }
            return flavor;
        });

    /// <summary>A flavor by API id, or by name as the clients also allow.</summary>
    public Flavor? FindFlavor(string idOrName) =>
        db.Read(c =>
        {
            using var command = FerryDatabase.Command(c, null, "SELECT data FROM flavors WHERE flavorid = @k UNION ALL SELECT data FROM flavors WHERE name = @k LIMIT 1", ("@k", idOrName));
            return command.ExecuteScalar() is string json ? Rows.FromJson(json, PersistenceJsonContext.Default.Flavor) : null;
        });

    public List<Flavor> ListFlavors() =>
        db.Read(c =>
        {
            using var command = FerryDatabase.Command(c, null, "SELECT data FROM flavors ORDER BY internal_id");
            return Rows.ReadAll(command, r => Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.Flavor));
        });

    public void DeleteFlavor(string id) =>
        db.Write((c, t) =>
        {
            using var command = FerryDatabase.Command(c, t, "DELETE FROM flavors WHERE flavorid = @f", ("@f", id));
            if (command.ExecuteNonQuery() == 0)
            {
                throw new FlavorNotFoundException(id);
            }
        });

    public Image SaveImage(Image image) =>
        db.Write((c, t) =>
        {
            using var command = FerryDatabase.Command(c, t,
                "INSERT INTO images(id, name, created_at, data) VALUES (@i, @n, @c, @d) ON CONFLICT(id) DO UPDATE SET name = @n, data = @d",
                ("@i", image.Id), ("@n", image.Name), ("@c", Rows.Time(image.CreatedAt)), ("@d", Rows.Json(image, PersistenceJsonContext.Default.Image)));
            command.ExecuteNonQuery();
            return image;
        });

    public Image? FindImage(string idOrName) =>
        db.Read(c =>
        {
            using var command = FerryDatabase.Command(c, null, "SELECT data FROM images WHERE lower(id) = lower(@k) UNION ALL SELECT data FROM images WHERE name = @k LIMIT 1", ("@k", idOrName));
            return command.ExecuteScalar() is string json ? Rows.FromJson(json, PersistenceJsonContext.Default.Image) : null;
        });

    public List<Image> ListImages() =>
        db.Read(c =>
        {
            using var command = FerryDatabase.Command(c, null, "SELECT data FROM images ORDER BY created_at, id");
            return Rows.ReadAll(command, r => Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.Image));
        });

    /// <summary>An image by id only (Glance never resolves names in paths), in any spelling of the id: one UUID is one image.</summary>
    public Image? GetImage(string id) =>
        db.Read(c =>
        {
            using var command = FerryDatabase.Command(c, null, "SELECT data FROM images WHERE lower(id) = lower(@k)", ("@k", id));
            return command.ExecuteScalar() is string json ? Rows.FromJson(json, PersistenceJsonContext.Default.Image) : null;
        });

    /// <summary>Deletes an image record; false when there was none.</summary>
    public bool DeleteImage(string id) =>
        db.Write((c, t) =>
        {
            using var command = FerryDatabase.Command(c, t, "DELETE FROM images WHERE id = @i", ("@i", id));
            return command.ExecuteNonQuery() > 0;
        });
}
