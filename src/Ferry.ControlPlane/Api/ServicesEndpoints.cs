using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.ControlPlane.Api;

/// <summary>
/// <c>/os-services</c> (nova/api/openstack/compute/services.py). Disabling a compute service only
/// updates the row: the scheduler's ComputeFilter reads <see cref="Service.Disabled"/>.
/// </summary>
public static class ServicesEndpoints
{
    public static RouteGroupBuilder MapServices(this RouteGroupBuilder api)
    {
        api.MapGet("/os-services", ListAsync);
        api.MapPut("/os-services/{id}", UpdateAsync);
        api.MapDelete("/os-services/{id}", DeleteAsync);
        return api;
    }

    internal static JsonObject View(RequestContext ctx, ComputeApi compute, Service s)
    {
        var o = new JsonObject
        {
            ["id"] = ctx.Version.AtLeast(53) ? s.Uuid : s.Id,
            ["binary"] = s.Binary,
            ["host"] = s.Host,
            ["zone"] = s.Zone,
            ["status"] = s.Disabled ? "disabled" : "enabled",
            ["state"] = compute.IsUp(s) ? "up" : "down",
            ["updated_at"] = NovaJson.Db(s.UpdatedAt),
            ["disabled_reason"] = s.DisabledReason,
        };
        if (ctx.Version.AtLeast(11))
        {
            o["forced_down"] = s.ForcedDown;
        }
        return o;
    }

    internal static async Task<IResult> ListAsync(HttpContext http, ServiceStore services, ComputeApi compute)
    {
        var ctx = RequestContext.Of(http);
        ctx.RequireAdmin("os_compute_api:os-services:list");
        var list = await services.ListAsync(http.RequestAborted, http.Request.Query["host"].FirstOrDefault(), http.Request.Query["binary"].FirstOrDefault());
        return NovaJson.Ok(new JsonObject { ["services"] = NovaJson.Array(list.Select(s => View(ctx, compute, s))) });
    }

    internal static async Task<IResult> UpdateAsync(HttpContext http, string id, ServiceStore services, MigrationStore migrations, ComputeApi compute)
    {
        var ctx = RequestContext.Of(http);
        ctx.RequireAdmin("os_compute_api:os-services:update");
        var body = await NovaJson.ReadBodyAsync(http);
        return ctx.Version.AtLeast(53)
            ? await UpdateByUuidAsync(ctx, id, body, services, migrations, compute, http.RequestAborted)
            : await UpdateLegacyAsync(ctx, id, body, services, migrations, http.RequestAborted);
    }

    /// <summary>PUT /os-services/{uuid} (≥2.53).</summary>
    private static async Task<IResult> UpdateByUuidAsync(RequestContext ctx, string id, JsonObject body, ServiceStore services, MigrationStore migrations, ComputeApi compute,
        CancellationToken cancellationToken)
    {
        if (!BodySchema.IsUuid(id))
        {
            throw new BadRequestException($"Invalid uuid {id}");
        }
        BodySchema.NoAdditional(body, "body", "status", "disabled_reason", "forced_down");
        var status = BodySchema.String(body, "status", nullable: false);
        if (status is not (null or "enabled" or "disabled"))
        {
            throw BodySchema.Invalid("status", body["status"], $"'{status}' is not one of ['enabled', 'disabled']");
        }
        var reason = BodySchema.String(body, "disabled_reason", nullable: false, minLength: 1);
        var forcedDown = BodySchema.Boolean(body, "forced_down");
        var service = await services.FindByUuidAsync(id, cancellationToken) ?? throw new NotFoundException($"Service {id} could not be found.");
        if (service.Binary != "nova-compute")
        {
            throw new BadRequestException($"Updating a {service.Binary} service is not supported. Only nova-compute services can be updated.");
        }
        if (status == "enabled" && body.ContainsKey("disabled_reason"))
        {
            throw new BadRequestException("Specifying 'disabled_reason' with status 'enabled' is invalid.");
        }
        if (status is null && forcedDown is null)
        {
            throw new BadRequestException("No updates were requested. Fields 'status' or 'forced_down' should be specified.");
        }
        if (forcedDown == false)
        {
            await CheckForEvacuationsAsync(migrations, service.Host, cancellationToken);
        }
        var updated = await services.UpdateAsync(service.Id, s =>
        {
            var next = s;
            if (status == "enabled")
            {
                next = next with { Disabled = false, DisabledReason = null };
            }
            else if (status == "disabled")
            {
                next = next with { Disabled = true, DisabledReason = reason };
            }
            return forcedDown is { } f ? next with { ForcedDown = f } : next;
        }, cancellationToken);
        return NovaJson.Ok(new JsonObject { ["service"] = View(ctx, compute, updated) });
    }

    /// <summary>PUT /os-services/{enable|disable|disable-log-reason|force-down} (before 2.53).</summary>
    private static async Task<IResult> UpdateLegacyAsync(RequestContext ctx, string action, JsonObject body, ServiceStore services, MigrationStore migrations,
        CancellationToken cancellationToken)
    {
        if (action is not ("enable" or "disable" or "disable-log-reason") && !(action == "force-down" && ctx.Version.AtLeast(11)))
        {
            throw new NotFoundException("Unknown action");
        }
        BodySchema.NoAdditional(body, "body", "host", "binary", "disabled_reason", "forced_down");
        BodySchema.Required(body, "body", "host", "binary");
        var host = BodySchema.String(body, "host", nullable: false, minLength: 1)!;
        var binary = BodySchema.String(body, "binary", nullable: false, minLength: 1)!;
        var reason = BodySchema.String(body, "disabled_reason", minLength: 1);
        var forcedDown = BodySchema.Boolean(body, "forced_down");
        if (action == "disable-log-reason" && reason is null)
        {
            throw new BadRequestException("Missing disabled reason field");
        }
        if (action == "force-down" && forcedDown is null)
        {
            throw new BadRequestException("Missing forced_down field");
        }
        var service = await services.FindAsync(host, binary, cancellationToken) ?? throw new NotFoundException($"Could not find binary {binary} on host {host}.");
        if (forcedDown == false && action == "force-down")
        {
            await CheckForEvacuationsAsync(migrations, host, cancellationToken);
        }
        var updated = await services.UpdateAsync(service.Id, s => action switch
        {
            "enable" => s with { Disabled = false, DisabledReason = null },
            "disable" => s with { Disabled = true },
            "disable-log-reason" => s with { Disabled = true, DisabledReason = reason },
            _ => s with { ForcedDown = forcedDown!.Value },
        }, cancellationToken);
        var view = new JsonObject { ["host"] = updated.Host, ["binary"] = updated.Binary };
        if (action == "force-down")
        {
            view["forced_down"] = updated.ForcedDown;
        }
        else
        {
            view["status"] = updated.Disabled ? "disabled" : "enabled";
            if (action == "disable-log-reason")
            {
                view["disabled_reason"] = updated.DisabledReason;
            }
        }
        return NovaJson.Ok(new JsonObject { ["service"] = view });
    }

    /// <summary>A host is not up again until its compute has cleaned up what was evacuated off it.</summary>
    private static async Task CheckForEvacuationsAsync(MigrationStore migrations, string host, CancellationToken cancellationToken)
    {
        if ((await migrations.ListAsync(new MigrationFilter(SourceCompute: host, Status: MigrationStatus.Done, MigrationType: MigrationType.Evacuation), cancellationToken)).Count > 0)
        {
            throw new BadRequestException(
                $"Unable to force up host {host} as `done` evacuation migration records remain associated with the host. " +
                "Ensure the compute service has been restarted, allowing these records to move to `completed` before retrying this request.");
        }
    }

    internal static async Task<IResult> DeleteAsync(HttpContext http, string id, ServiceStore services, InstanceStore instances, MigrationStore migrations, ComputeNodeStore nodes,
        IPlacementService placement)
    {
        var ctx = RequestContext.Of(http);
        ctx.RequireAdmin("os_compute_api:os-services:delete");
        Service? service;
        if (ctx.Version.AtLeast(53))
        {
            if (!BodySchema.IsUuid(id))
            {
                throw new BadRequestException($"Invalid uuid {id}");
            }
            service = await services.FindByUuidAsync(id, http.RequestAborted);
        }
        else
        {
            service = int.TryParse(id, out var intId) ? await services.FindByIdAsync(intId, http.RequestAborted) : throw new BadRequestException($"Invalid ID {id}");
        }
        if (service is null)
        {
            throw new NotFoundException($"Service {id} could not be found.");
        }
        if (service.Binary == "nova-compute")
        {
            if ((await instances.UsageByHostAsync([service.Host], http.RequestAborted)).ContainsKey(service.Host))
            {
                throw new ConflictException("Unable to delete compute service that is hosting instances. Migrate or delete the instances first.");
            }
            if ((await migrations.ListUnfinishedAsync(http.RequestAborted)).Any(m => m.SourceCompute == service.Host || m.DestCompute == service.Host))
            {
                throw new ConflictException("Unable to delete compute service that has in-progress migrations. Complete the migrations or delete the instances first.");
            }
            // As Nova: the node's resource provider goes too (with whatever is still allocated against it), or it
            // would stay in placement as a candidate for a host that no longer exists.
            if (await nodes.FindByHostAsync(service.Host, http.RequestAborted) is { } node)
            {
                await placement.DeleteProviderAsync(node.Uuid, http.RequestAborted);
            }
            // From the provider's delete on, the node and the service go too, whatever became of the request.
            await nodes.DeleteAsync(service.Host, CancellationToken.None);
            await services.DeleteAsync(service.Id, CancellationToken.None);
            return TypedResults.NoContent();
        }
        await services.DeleteAsync(service.Id, http.RequestAborted);
        return TypedResults.NoContent();
    }
}
