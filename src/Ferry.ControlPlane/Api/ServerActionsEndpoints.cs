using System.Text.Json;
using System.Text.RegularExpressions;
using System.Text.Json.Nodes;
using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.ControlPlane.Api;

/// <summary>
/// <c>POST /servers/{id}/action</c>: the move actions and power actions. Each one validates its body
/// for the request's microversion first (400, nothing changed), then finds the server (404), checks
/// policy (403), and hands over to <see cref="ComputeApi"/> (409 on lock/state, then the cast).
/// </summary>
public static partial class ServerActionsEndpoints
{
    public static RouteGroupBuilder MapServerActions(this RouteGroupBuilder api)
    {
        api.MapPost("/servers/{id}/action", ActionAsync);
        return api;
    }

    internal static async Task<IResult> ActionAsync(HttpContext http, string id, ComputeApi compute, Persistence.CatalogStore catalog)
    {
        var ctx = RequestContext.Of(http);
        var body = await NovaJson.ReadBodyAsync(http);
        if (body.Count != 1)
        {
            throw new BadRequestException("Malformed request body");
        }
        var (name, value) = body.First();
        var ct = http.RequestAborted;
        switch (name)
        {
            case "os-migrateLive":
            {
                var (host, block, force) = ParseLiveMigrate(ctx.Version, value);
                var instance = await compute.GetInstanceAsync(ctx, id, ct);
                ctx.RequireAdmin("os_compute_api:os-migrate-server:migrate_live");
                await compute.LiveMigrateAsync(ctx, instance, host, block, force, ct);
                return TypedResults.StatusCode(StatusCodes.Status202Accepted);
            }
            case "migrate":
            {
                var host = ParseMigrate(ctx.Version, value);
                var instance = await compute.GetInstanceAsync(ctx, id, ct);
                ctx.RequireAdmin("os_compute_api:os-migrate-server:migrate");
                await compute.MigrateAsync(ctx, instance, host, ct);
                return TypedResults.StatusCode(StatusCodes.Status202Accepted);
            }
            case "resize":
            {
                var flavorRef = ParseResize(value);
                var instance = await compute.GetInstanceAsync(ctx, id, ct);
                ctx.RequireOwnerOrAdmin("os_compute_api:servers:resize", instance.ProjectId);
                var flavor = FlavorsEndpoints.Accessible(ctx, await catalog.FindFlavorAsync(BodySchema.RefId(flavorRef), ct));
                if (flavor is null || flavor.Disabled)
                {
                    throw new BadRequestException("Unable to locate requested flavor.");
                }
                await compute.ResizeAsync(ctx, instance, flavor, ct);
                return TypedResults.StatusCode(StatusCodes.Status202Accepted);
            }
            case "confirmResize":
            {
                var instance = await compute.GetInstanceAsync(ctx, id, ct);
                ctx.RequireOwnerOrAdmin("os_compute_api:servers:confirm_resize", instance.ProjectId);
                await compute.ConfirmResizeAsync(ctx, instance, ct);
                return TypedResults.NoContent();
            }
            case "revertResize":
            {
                var instance = await compute.GetInstanceAsync(ctx, id, ct);
                ctx.RequireOwnerOrAdmin("os_compute_api:servers:revert_resize", instance.ProjectId);
                await compute.RevertResizeAsync(ctx, instance, ct);
                return TypedResults.StatusCode(StatusCodes.Status202Accepted);
            }
            case "evacuate":
            {
                var request = ParseEvacuate(ctx.Version, value);
                var instance = await compute.GetInstanceAsync(ctx, id, ct);
                ctx.RequireAdmin("os_compute_api:os-evacuate");
                var password = await compute.EvacuateAsync(ctx, instance, request.Host, request.Force, request.OnSharedStorage, request.AdminPass, ct);
                if (!ctx.Version.AtLeast(14) && compute.Options.EnableInstancePassword)
                {
                    return NovaJson.Ok(new JsonObject { ["adminPass"] = password });
                }
                return TypedResults.Ok();
            }
            case "os-start":
                return await OwnerActionAsync(compute, ctx, id, "os_compute_api:servers:start", instance => compute.StartAsync(ctx, instance, ct), ct);
            case "os-stop":
                return await OwnerActionAsync(compute, ctx, id, "os_compute_api:servers:stop", instance => compute.StopAsync(ctx, instance, ct), ct);
            case "reboot":
            {
                var hard = ParseReboot(value);
                return await OwnerActionAsync(compute, ctx, id, "os_compute_api:servers:reboot", instance => compute.RebootAsync(ctx, instance, hard, ct), ct);
            }
            // pause_server.py and suspend_server.py: no body schema; owner or admin (project member).
            case "pause":
                return await OwnerActionAsync(compute, ctx, id, "os_compute_api:os-pause-server:pause", instance => compute.PauseAsync(ctx, instance, ct), ct);
            case "unpause":
                return await OwnerActionAsync(compute, ctx, id, "os_compute_api:os-pause-server:unpause", instance => compute.UnpauseAsync(ctx, instance, ct), ct);
            case "suspend":
                return await OwnerActionAsync(compute, ctx, id, "os_compute_api:os-suspend-server:suspend", instance => compute.SuspendAsync(ctx, instance, ct), ct);
            case "resume":
                return await OwnerActionAsync(compute, ctx, id, "os_compute_api:os-suspend-server:resume", instance => compute.ResumeAsync(ctx, instance, ct), ct);
            case "os-resetState":
            {
                var state = ParseResetState(value);
                var instance = await compute.GetInstanceAsync(ctx, id, ct);
                ctx.RequireAdmin("os_compute_api:os-admin-actions:reset_state");
                await compute.ResetStateAsync(ctx, instance, state, ct);
                return TypedResults.StatusCode(StatusCodes.Status202Accepted);
            }
            case "os-getConsoleOutput":
            {
                var lines = ParseConsoleOutput(value);
                var instance = await compute.GetInstanceAsync(ctx, id, ct);
                ctx.RequireOwnerOrAdmin("os_compute_api:os-console-output", instance.ProjectId);
                var output = await compute.GetConsoleOutputAsync(ctx, instance, lines, ct);
                return NovaJson.Ok(new JsonObject { ["output"] = ControlCharacters().Replace(output, "") });
            }
            default:
                throw new BadRequestException($"There is no such action: {name}");
        }
    }

    /// <summary>schemas/servers.py reboot: <c>type</c> is required, SOFT or HARD in one of three spellings; true = hard.</summary>
    internal static bool ParseReboot(JsonNode? value)
    {
        const string field = "reboot";
        if (value is not JsonObject o)
        {
            throw BodySchema.Invalid(field, value, $"{NovaJson.Describe(value)} is not of type 'object'");
        }
        BodySchema.NoAdditional(o, field, "type");
        BodySchema.Required(o, field, "type");
        var type = o["type"] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;
        return type switch
        {
            "HARD" or "Hard" or "hard" => true,
            "SOFT" or "Soft" or "soft" => false,
            _ => throw BodySchema.Invalid("type", o["type"],
                $"{NovaJson.Describe(o["type"])} is not one of ['HARD', 'Hard', 'hard', 'SOFT', 'Soft', 'soft']"),
        };
    }

    /// <summary>schemas/reset_server_state.py: <c>{"state": "active"|"error"}</c>, nothing else.</summary>
    internal static Core.Domain.VmState ParseResetState(JsonNode? value)
    {
        const string field = "os-resetState";
        if (value is not JsonObject o)
        {
            throw BodySchema.Invalid(field, value, $"{NovaJson.Describe(value)} is not of type 'object'");
        }
        BodySchema.NoAdditional(o, field, "state");
        BodySchema.Required(o, field, "state");
        var state = o["state"] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;
        return state switch
        {
            "active" => Core.Domain.VmState.Active,
            "error" => Core.Domain.VmState.Error,
            _ => throw BodySchema.Invalid("state", o["state"], $"{NovaJson.Describe(o["state"])} is not one of ['active', 'error']"),
        };
    }

    /// <summary>schemas/console_output.py: an optional <c>length</c> ≥ -1 (integer or its string); -1 and null mean every line.</summary>
    internal static int? ParseConsoleOutput(JsonNode? value)
    {
        const string field = "os-getConsoleOutput";
        if (value is not JsonObject o)
        {
            throw BodySchema.Invalid(field, value, $"{NovaJson.Describe(value)} is not of type 'object'");
        }
        BodySchema.NoAdditional(o, field, "length");
        var length = BodySchema.Integer(o, "length", min: -1, nullable: true);
        return length is -1 ? null : length;
    }

    /// <summary>schemas/migrate_server.py for os-migrateLive: returns (host, block_migration (null = auto), force).</summary>
    internal static (string? Host, bool? BlockMigration, bool Force) ParseLiveMigrate(ApiVersion v, JsonNode? value)
    {
        const string field = "os-migrateLive";
        if (value is not JsonObject o)
        {
            throw BodySchema.Invalid(field, value, $"{NovaJson.Describe(value)} is not of type 'object'");
        }
        string[] allowed = !v.AtLeast(25) ? ["host", "block_migration", "disk_over_commit"]
            : v.AtLeast(30) && !v.AtLeast(68) ? ["host", "block_migration", "force"]
            : ["host", "block_migration"];
        BodySchema.NoAdditional(o, field, allowed);
        BodySchema.Required(o, field, v.AtLeast(25) ? ["host", "block_migration"] : ["host", "block_migration", "disk_over_commit"]);
        var host = BodySchema.String(o, "host", minLength: 1);
        bool? block;
        var blockNode = o["block_migration"];
        if (v.AtLeast(25) && blockNode is JsonValue bv && bv.GetValueKind() == JsonValueKind.String && bv.GetValue<string>() == "auto")
        {
            block = null;
        }
        else if (blockNode is not null && BodySchema.TryBoolean(blockNode, out var b))
        {
            block = b;
        }
        else
        {
            throw BodySchema.Invalid("block_migration", blockNode, $"{NovaJson.Describe(blockNode)} is not one of ['auto'] or of type 'boolean'");
        }
        if (!v.AtLeast(25))
        {
            BodySchema.Boolean(o, "disk_over_commit");
        }
        var force = BodySchema.Boolean(o, "force") ?? false;
        if (force && host is null)
        {
            throw new BadRequestException("Can't force to a non-provided destination");
        }
        // Before 2.30 a given host was always used as is (the conductor's forced path).
        return (host, block, v.AtLeast(30) ? force : host is not null);
    }

    /// <summary>migrate: any body before 2.56; from 2.56 null or <c>{"host": str|null}</c>.</summary>
    internal static string? ParseMigrate(ApiVersion v, JsonNode? value)
    {
        if (!v.AtLeast(56) || value is null)
        {
            return null;
        }
        if (value is not JsonObject o)
        {
            throw BodySchema.Invalid("migrate", value, $"{NovaJson.Describe(value)} is not of type 'object', 'null'");
        }
        BodySchema.NoAdditional(o, "migrate", "host");
        return BodySchema.String(o, "host", minLength: 1);
    }

    internal static string ParseResize(JsonNode? value)
    {
        if (value is not JsonObject o)
        {
            throw BodySchema.Invalid("resize", value, $"{NovaJson.Describe(value)} is not of type 'object'");
        }
        BodySchema.NoAdditional(o, "resize", "flavorRef", "OS-DCF:diskConfig");
        BodySchema.Required(o, "resize", "flavorRef");
        var node = o["flavorRef"];
        var flavorRef = node is JsonValue n && n.GetValueKind() == JsonValueKind.Number && n.TryGetValue<long>(out var number)
            ? number.ToString(System.Globalization.CultureInfo.InvariantCulture)
            : BodySchema.String(o, "flavorRef", nullable: false, minLength: 1)!;
        if (BodySchema.String(o, "OS-DCF:diskConfig") is { } disk && disk is not ("AUTO" or "MANUAL"))
        {
            throw BodySchema.Invalid("OS-DCF:diskConfig", o["OS-DCF:diskConfig"], $"'{disk}' is not one of ['AUTO', 'MANUAL']");
        }
        return flavorRef;
    }

    internal sealed record EvacuateBody(string? Host, bool Force, bool? OnSharedStorage, string? AdminPass);

    /// <summary>schemas/evacuate.py per microversion (§1.6).</summary>
    internal static EvacuateBody ParseEvacuate(ApiVersion v, JsonNode? value)
    {
        const string field = "evacuate";
        if (value is not JsonObject o)
        {
            throw BodySchema.Invalid(field, value, $"{NovaJson.Describe(value)} is not of type 'object'");
        }
        string[] allowed = !v.AtLeast(14) ? ["host", "onSharedStorage", "adminPass"]
            : v.AtLeast(29) && !v.AtLeast(68) ? ["host", "adminPass", "force"]
            : ["host", "adminPass"];
        BodySchema.NoAdditional(o, field, allowed);
        bool? shared = null;
        if (!v.AtLeast(14))
        {
            BodySchema.Required(o, field, "onSharedStorage");
            shared = BodySchema.Boolean(o, "onSharedStorage");
        }
        var host = BodySchema.String(o, "host", minLength: 1);
        var adminPass = BodySchema.String(o, "adminPass");
        var force = BodySchema.Boolean(o, "force") ?? false;
        if (force && host is null)
        {
            throw new BadRequestException("Can't force to a non-provided destination");
        }
        if (shared == true && adminPass is not null)
        {
            throw new BadRequestException("admin password can't be changed on existing disk");
        }
        return new EvacuateBody(host, force, shared, adminPass);
    }

    /// <summary>An action the server's owner (or an admin) may take on it: looked up first, then the policy, then 202.</summary>
    private static async Task<IResult> OwnerActionAsync(ComputeApi compute, RequestContext ctx, string id, string policy, Func<Instance, Task> act,
        CancellationToken cancellationToken)
    {
        var instance = await compute.GetInstanceAsync(ctx, id, cancellationToken);
        ctx.RequireOwnerOrAdmin(policy, instance.ProjectId);
        await act(instance);
        return TypedResults.StatusCode(StatusCodes.Status202Accepted);
    }

    /// <summary>The control characters Nova strips from console output: all of C0 but tab and newline.</summary>
    [GeneratedRegex(@"[\x00-\x08\x0B-\x1F]")]
    private static partial Regex ControlCharacters();
}
