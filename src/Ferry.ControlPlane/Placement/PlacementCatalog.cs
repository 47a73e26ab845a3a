using Ferry.ControlPlane.Persistence;
using Ferry.Core.Errors;

namespace Ferry.ControlPlane.Placement;

/// <summary>
/// Placement's resource classes and traits: the standard names (<see cref="StandardNames"/>) and the custom
/// ones operators create (<c>CUSTOM_*</c>), kept in the placement database. Which provider has which trait and
/// inventory stays in <see cref="IPlacementService"/>; this class only asks it when a name is about to be deleted.
/// </summary>
internal sealed class PlacementCatalog
{
    private static readonly HashSet<string> s_standardClasses = [.. StandardNames.ResourceClasses];
    private static readonly HashSet<string> s_standardTraits = [.. StandardNames.Traits];

    private readonly FerryDatabase _db;
    private readonly IPlacementService _placement;
    private readonly TimeProvider _time;

    public PlacementCatalog(FerryDatabase db, IPlacementService placement, TimeProvider time)
    {
        _db = db;
        _placement = placement;
        _time = time;
        _db.Migrate(PlacementSchema.CatalogComponent, PlacementSchema.CatalogScripts);
    }

    /// <summary>Placement's CUSTOM_RC_PATTERN / CUSTOM_TRAIT_PATTERN: <c>^CUSTOM_[A-Z0-9_]+$</c>, at most 255 characters.</summary>
    public static bool IsCustomName(string name) =>
        name.Length is > 7 and <= 255 && name.StartsWith("CUSTOM_", StringComparison.Ordinal) && name.All(c => c is (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '_');

    // ---- resource classes ----

    /// <summary>Standard classes in os-resource-classes order, then custom ones in name order.</summary>
    public List<string> ResourceClasses() => [.. StandardNames.ResourceClasses, .. Custom("custom_resource_classes")];

    public bool ResourceClassExists(string name) => s_standardClasses.Contains(name) || CustomExists("custom_resource_classes", name);

    /// <summary>Adds a custom class; false when it already existed.</summary>
    public bool CreateResourceClass(string name) => !s_standardClasses.Contains(name) && Insert("custom_resource_classes", name);

    /// <summary>
    /// Renames a custom class (the 1.2–1.6 PUT). Placement keys inventories and allocations by the class's id, so
    /// they follow the new name; Ferry keys them by name, so a class in use keeps its name (409).
    /// </summary>
    public async Task RenameResourceClassAsync(string name, string newName, CancellationToken cancellationToken)
    {
        if (ResourceClassExists(newName))
        {
            throw new ConflictException($"Resource class already exists: {newName}");
        }
        if (await _placement.IsResourceClassInventoriedAsync(name, cancellationToken))
        {
            throw new ConflictException($"Cannot rename resource class {name}: it is in use in inventory.");
        }
        _db.Write((c, t) =>
        {
            using var command = FerryDatabase.Command(c, t, "UPDATE custom_resource_classes SET name = @new WHERE name = @old", ("@new", newName), ("@old", name));
            command.ExecuteNonQuery();
        });
    }

    public async Task DeleteResourceClassAsync(string name, CancellationToken cancellationToken)
    {
        if (!ResourceClassExists(name))
        {
            throw new NotFoundException($"No such resource class {name}.");
        }
        if (s_standardClasses.Contains(name))
        {
            throw new BadRequestException($"Error in delete resource class: Cannot delete standard resource class {name}.");
        }
        if (await _placement.IsResourceClassInventoriedAsync(name, cancellationToken))
        {
            throw new ConflictException($"Error in delete resource class: Cannot delete resource class {name}. Class is in use in inventory.");
        }
        Remove("custom_resource_classes", name);
    }

    // ---- traits ----

    public List<string> Traits() => [.. StandardNames.Traits.Concat(Custom("custom_traits")).Order(StringComparer.Ordinal)];

    public bool TraitExists(string name) => s_standardTraits.Contains(name) || CustomExists("custom_traits", name);

    /// <summary>Adds a custom trait; false when it already existed.</summary>
    public bool CreateTrait(string name) => !s_standardTraits.Contains(name) && Insert("custom_traits", name);

    public async Task DeleteTraitAsync(string name, CancellationToken cancellationToken)
    {
        if (!TraitExists(name))
        {
            throw new NotFoundException($"No such trait(s): {name}.");
        }
        if (s_standardTraits.Contains(name))
        {
            throw new BadRequestException($"Cannot delete standard trait {name}.");
        }
        if ((await AssociatedTraitsAsync(cancellationToken)).Contains(name))
        {
            throw new ConflictException($"The trait {name} is in use by a resource provider.");
        }
        Remove("custom_traits", name);
    }

    /// <summary>Traits some provider has.</summary>
    public Task<IReadOnlySet<string>> AssociatedTraitsAsync(CancellationToken cancellationToken) => _placement.GetAssociatedTraitsAsync(cancellationToken);

    private List<string> Custom(string table) =>
        _db.Read(c =>
        {
            using var command = FerryDatabase.Command(c, null, $"SELECT name FROM {table} ORDER BY name");
            return Rows.ReadAll(command, r => r.GetString(0));
        });

    private bool CustomExists(string table, string name) =>
        _db.Read(c =>
        {
            using var command = FerryDatabase.Command(c, null, $"SELECT 1 FROM {table} WHERE name = @n", ("@n", name));
            return command.ExecuteScalar() is not null;
        });

    private bool Insert(string table, string name) =>
        _db.Write((c, t) =>
        {
            using var command = FerryDatabase.Command(c, t, $"INSERT INTO {table}(name, created_at) VALUES (@n, @c) ON CONFLICT(name) DO NOTHING",
                ("@n", name), ("@c", Rows.Time(_time.GetUtcNow())));
            return command.ExecuteNonQuery() == 1;
        });

    private void Remove(string table, string name) =>
        _db.Write((c, t) =>
        {
            using var command = FerryDatabase.Command(c, t, $"DELETE FROM {table} WHERE name = @n", ("@n", name));
            command.ExecuteNonQuery();
        });
}
