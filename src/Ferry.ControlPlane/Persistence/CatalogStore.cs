using Ferry.Core.Domain;
using Ferry.Core.Errors;

namespace Ferry.ControlPlane.Persistence;

/// <summary>Flavors and the built-in image catalog.</summary>
public sealed class CatalogStore(FerryDatabase db)
{
    public Flavor CreateFlavor(Func<int, Flavor> build) =>
        db.Write((c, t) =>
        {
            using var next = FerryDatabase.Command(c, t, "SELECT COALESCE(MAX(internal_id), 0) + 1 FROM flavors");
            var flavor = build(Convert.ToInt32(next.ExecuteScalar()));
            using var dup = FerryDatabase.Command(c, t, "SELECT COUNT(*) FROM flavors WHERE flavorid = $f OR name = $n", ("$f", flavor.Id), ("$n", flavor.Name));
            if (Convert.ToInt32(dup.ExecuteScalar()) > 0)
            {
                throw new ConflictException($"Flavor with name {flavor.Name} or ID {flavor.Id} already exists.");
            }
            using var insert = FerryDatabase.Command(c, t, "INSERT INTO flavors(internal_id, flavorid, name, data) VALUES ($i, $f, $n, $d)",
                ("$i", flavor.InternalId), ("$f", flavor.Id), ("$n", flavor.Name), ("$d", Rows.Json(flavor, PersistenceJsonContext.Default.Flavor)));
            insert.ExecuteNonQuery();
            return flavor;
        });

    /// <summary>A flavor by API id, or by name as the clients also allow.</summary>
    public Flavor? FindFlavor(string idOrName) =>
        db.Read(c =>
        {
            using var command = FerryDatabase.Command(c, null, "SELECT data FROM flavors WHERE flavorid = $k UNION ALL SELECT data FROM flavors WHERE name = $k LIMIT 1", ("$k", idOrName));
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
            using var command = FerryDatabase.Command(c, t, "DELETE FROM flavors WHERE flavorid = $f", ("$f", id));
            if (command.ExecuteNonQuery() == 0)
            {
                throw new FlavorNotFoundException(id);
            }
        });

    public Image SaveImage(Image image) =>
        db.Write((c, t) =>
        {
            using var command = FerryDatabase.Command(c, t,
                "INSERT INTO images(id, name, created_at, data) VALUES ($i, $n, $c, $d) ON CONFLICT(id) DO UPDATE SET name = $n, data = $d",
                ("$i", image.Id), ("$n", image.Name), ("$c", Rows.Time(image.CreatedAt)), ("$d", Rows.Json(image, PersistenceJsonContext.Default.Image)));
            command.ExecuteNonQuery();
            return image;
        });

    public Image? FindImage(string idOrName) =>
        db.Read(c =>
        {
            using var command = FerryDatabase.Command(c, null, "SELECT data FROM images WHERE id = $k COLLATE NOCASE UNION ALL SELECT data FROM images WHERE name = $k LIMIT 1", ("$k", idOrName));
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
            using var command = FerryDatabase.Command(c, null, "SELECT data FROM images WHERE id = $k COLLATE NOCASE", ("$k", id));
            return command.ExecuteScalar() is string json ? Rows.FromJson(json, PersistenceJsonContext.Default.Image) : null;
        });

    /// <summary>Deletes an image record; false when there was none.</summary>
    public bool DeleteImage(string id) =>
        db.Write((c, t) =>
        {
            using var command = FerryDatabase.Command(c, t, "DELETE FROM images WHERE id = $i", ("$i", id));
            return command.ExecuteNonQuery() > 0;
        });
}
