using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.ControlPlane.Api;

/// <summary>
/// <c>/servers/{id}/migrations</c>: list and show in-progress live migrations (≥2.23), abort (≥2.24),
/// force-complete (≥2.22) (nova/api/openstack/compute/server_migrations.py).
/// </summary>
public static class ServerMigrationsEndpoints
{
    public static RouteGroupBuilder MapServerMigrations(this RouteGroupBuilder api)
    {
        api.MapGet("/servers/{id}/migrations", ListAsync);
        api.MapGet("/servers/{id}/migrations/{migrationId}", ShowAsync);
        api.MapDelete("/servers/{id}/migrations/{migrationId}", AbortAsync);
        api.MapPost("/servers/{id}/migrations/{migrationId}/action", ForceCompleteAsync);
        return api;
    }

    private static void RequireVersion(RequestContext ctx, int minor)
    {
        if (!ctx.Version.AtLeast(minor))
        {
            throw new NotFoundException("The resource could not be found.");
        }
    }

    internal static async Task<IResult> ListAsync(HttpContext http, string id, ComputeApi compute, MigrationStore migrations)
    {
        var ctx = RequestContext.Of(http);
        RequireVersion(ctx, 23);
        var instance = await compute.GetInstanceAsync(ctx, id, http.RequestAborted);
        ctx.RequireAdmin("os_compute_api:servers:migrations:index");
        var inProgress = await InProgressAsync(migrations, instance.Uuid, http.RequestAborted);
        return NovaJson.Ok(new JsonObject
        {
            ["migrations"] = NovaJson.Array(inProgress.Select(m => MigrationViewBuilder.ServerMigration(ctx.Version, m))),
        });
    }

    internal static async Task<IResult> ShowAsync(HttpContext http, string id, string migrationId, ComputeApi compute, MigrationStore migrations)
    {
        var ctx = RequestContext.Of(http);
        RequireVersion(ctx, 23);
        var instance = await compute.GetInstanceAsync(ctx, id, http.RequestAborted);
        ctx.RequireAdmin("os_compute_api:servers:migrations:show");
        var migration = (await InProgressAsync(migrations, instance.Uuid, http.RequestAborted)).FirstOrDefault(m => m.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) == migrationId)
            ?? throw new NotFoundException($"In-progress live migration {migrationId} is not found for server {instance.Uuid}.");
        return NovaJson.Ok(new JsonObject { ["migration"] = MigrationViewBuilder.ServerMigration(ctx.Version, migration) });
    }

    internal static async Task<IResult> AbortAsync(HttpContext http, string id, string migrationId, ComputeApi compute)
    {
        var ctx = RequestContext.Of(http);
        RequireVersion(ctx, 24);
        var instance = await compute.GetInstanceAsync(ctx, id, http.RequestAborted);
        ctx.RequireAdmin("os_compute_api:servers:migrations:delete");
        await compute.AbortLiveMigrationAsync(ctx, instance, migrationId, http.RequestAborted);
        return TypedResults.StatusCode(StatusCodes.Status202Accepted);
    }

    internal static async Task<IResult> ForceCompleteAsync(HttpContext http, string id, string migrationId, ComputeApi compute)
    {
        var ctx = RequestContext.Of(http);
        RequireVersion(ctx, 22);
        var body = await NovaJson.ReadBodyAsync(http);
        BodySchema.NoAdditional(body, "force_complete", "force_complete");
        BodySchema.Required(body, "force_complete", "force_complete");
        if (body["force_complete"] is not null)
        {
            throw BodySchema.Invalid("force_complete", body["force_complete"], $"{NovaJson.Describe(body["force_complete"])} is not of type 'null'");
        }
        var instance = await compute.GetInstanceAsync(ctx, id, http.RequestAborted);
        ctx.RequireAdmin("os_compute_api:servers:migrations:force_complete");
        await compute.ForceCompleteAsync(ctx, instance, migrationId, http.RequestAborted);
        return TypedResults.StatusCode(StatusCodes.Status202Accepted);
    }

    private static async Task<List<Migration>> InProgressAsync(MigrationStore migrations, string instanceUuid, CancellationToken cancellationToken) =>
        (await migrations.ListAsync(new MigrationFilter(InstanceUuid: instanceUuid, MigrationType: MigrationType.LiveMigration), cancellationToken))
            .Where(m => MigrationStatus.LiveInProgress.Contains(m.Status))
            .ToList();
}
