namespace Ferry.ControlPlane.Persistence;

/// <summary>
/// Every component's schema in one place: what <c>ferry db sync</c> (Nova's <c>nova-manage db sync</c>) brings
/// up to date before the services start. Each component keeps its own <c>schema_version</c> row; a service that
/// opens a component also migrates it on start, which is a no-op once the database is synced.
/// </summary>
public static class DatabaseSchema
{
    /// <summary>(component, scripts) in the order they are applied.</summary>
    public static readonly IReadOnlyList<(string Component, IReadOnlyList<string> Scripts)> Components =
    [
        (ComputeSchema.Component, ComputeSchema.Scripts),
        (PlacementSchema.Component, PlacementSchema.Scripts),
        (PlacementSchema.CatalogComponent, PlacementSchema.CatalogScripts),
        (IdentitySchema.Component, IdentitySchema.Scripts),
        (MessagingSchema.Component, MessagingSchema.Scripts),
        (NetworkSchema.Component, NetworkSchema.Scripts),
        (VolumeSchema.Component, VolumeSchema.Scripts),
    ];

    /// <summary>Applies every missing script of every component; running it again changes nothing.</summary>
    /// <returns>Each component with its version before and after.</returns>
    public static IReadOnlyList<SchemaSyncResult> Sync(FerryDatabase database)
    {
        var results = new List<SchemaSyncResult>(Components.Count);
        foreach (var (component, scripts) in Components)
        {
            var before = database.SchemaVersion(component);
            database.Migrate(component, scripts);
            results.Add(new SchemaSyncResult(component, before, database.SchemaVersion(component)));
        }
        return results;
    }

    /// <summary>True when every component is at its latest version (what a service may check before it starts).</summary>
    public static bool IsCurrent(FerryDatabase database) =>
        Components.All(c => database.SchemaVersion(c.Component) >= c.Scripts.Count);
}

/// <summary>One component's schema version before and after <see cref="DatabaseSchema.Sync"/>.</summary>
public sealed record SchemaSyncResult(string Component, int Before, int After);
