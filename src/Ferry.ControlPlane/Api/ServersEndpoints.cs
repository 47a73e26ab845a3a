using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Ferry.ControlPlane.Images;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.ControlPlane.Api;

/// <summary><c>/servers</c>: list, detail, show, create, delete (nova/api/openstack/compute/servers.py).</summary>
public static class ServersEndpoints
{
    public static RouteGroupBuilder MapServers(this RouteGroupBuilder api)
    {
        api.MapGet("/servers", (HttpContext http, InstanceStore instances, ServerViewBuilder views) => ListAsync(http, instances, views, detail: false));
        api.MapGet("/servers/detail", (HttpContext http, InstanceStore instances, ServerViewBuilder views) => ListAsync(http, instances, views, detail: true));
        api.MapGet("/servers/{id}", ShowAsync);
        api.MapPost("/servers", CreateAsync);
        api.MapDelete("/servers/{id}", DeleteAsync);
        return api;
    }

    internal static async Task<IResult> ShowAsync(HttpContext http, string id, ComputeApi compute, ServerViewBuilder views)
    {
        var ctx = RequestContext.Of(http);
        var instance = await compute.GetInstanceAsync(ctx, id, http.RequestAborted);
        return NovaJson.Ok(new JsonObject { ["server"] = await views.DetailAsync(http, ctx, instance) });
    }

    internal static async Task<IResult> ListAsync(HttpContext http, InstanceStore instances, ServerViewBuilder views, bool detail)
    {
        var ctx = RequestContext.Of(http);
        var q = http.Request.Query;
        var allTenants = q.TryGetValue("all_tenants", out var at) && (at.ToString().Length == 0 || !BodySchema.TryBoolean(at.ToString(), out var b) || b);
        if (allTenants && !ctx.IsAdmin)
        {
            throw RequestContext.PolicyDenied($"os_compute_api:servers:{(detail ? "detail" : "index")}:get_all_tenants");
        }
        string? project = ctx.ProjectId;
        if (ctx.IsAdmin && allTenants)
        {
            project = q["project_id"].FirstOrDefault() ?? q["tenant_id"].FirstOrDefault();
        }
        var host = ctx.IsAdmin ? q["host"].FirstOrDefault() : null;
        // Project, host and (through the vm_states it can come from) status select rows in SQL; the rest is checked
        // here on each row read. Rows come in keyset pages in Nova's default order until the page is full.
        var filter = new InstanceListFilter { ProjectId = project, Host = host };
        var checks = new List<Func<Instance, bool>>();
        if (q["name"].FirstOrDefault() is { Length: > 0 } name)
        {
            var matches = NameFilter(name);
            checks.Add(i => matches(i.DisplayName));
        }
        if (q["status"].FirstOrDefault() is { Length: > 0 } status)
        {
            var wanted = status.ToUpperInvariant();
            if (ctx.Version.AtLeast(38) && !s_statuses.Contains(wanted))
            {
                throw new BadRequestException($"Invalid status value");
            }
            filter = filter with { VmStates = VmStatesShowing(wanted) };
            checks.Add(i => StateNames.ServerStatus(i.VmState, i.TaskState) == wanted);
        }
        if (q["flavor"].FirstOrDefault() is { Length: > 0 } flavor)
        {
            checks.Add(i => i.Flavor.Id == flavor);
        }
        if (q["image"].FirstOrDefault() is { Length: > 0 } image)
        {
            var imageId = BodySchema.RefId(image);
            checks.Add(i => i.ImageRef == imageId);
        }
        InstancePosition? after = null;
        if (q["marker"].FirstOrDefault() is { Length: > 0 } marker)
        {
            after = await instances.FindPositionAsync(marker, http.RequestAborted) ?? throw new BadRequestException($"marker [{marker}] not found");
        }
        var limit = Paging.Limit(http);
        var list = new List<Instance>(Math.Min(limit, 1024));
        while (list.Count < limit)
        {
            // Without row checks one read fills the page; with them, read ahead in batches until it is full.
            var batch = checks.Count == 0 ? limit - list.Count : Math.Max(limit - list.Count, 200);
            var rows = await instances.ListPageAsync(filter, after, batch, http.RequestAborted);
            foreach (var row in rows)
            {
                if (list.Count < limit && checks.TrueForAll(check => check(row)))
                {
                    list.Add(row);
                }
            }
            if (rows.Count < batch)
            {
                break;
            }
            after = InstancePosition.Of(rows[^1]);
        }
        var servers = detail
            ? NovaJson.Array(await views.DetailListAsync(http, ctx, list))
            : NovaJson.Array(list.Select(i => (JsonNode?)ServerViewBuilder.Basic(http, i)));
        var body = new JsonObject { ["servers"] = servers };
        if (Paging.Links(http, detail ? "servers/detail" : "servers", list.Count, limit, list.Count > 0 ? list[^1].Uuid : null) is { Count: > 0 } links)
        {
            body["servers_links"] = links;
        }
        return NovaJson.Ok(body);
    }

    /// <summary>The vm_states whose servers can show <paramref name="status"/> (with some task_state), for the SQL side of the status filter.</summary>
    private static List<string> VmStatesShowing(string status) =>
        Enum.GetValues<VmState>()
            .Where(vm => StateNames.ServerStatus(vm, null) == status
                || Enum.GetValues<TaskState>().Any(task => StateNames.ServerStatus(vm, task) == status))
            .Select(vm => vm.ToNova())
            .ToList();

    /// <summary>Nova's user_data: base64 (whitespace allowed, as Python's decoder allows it), at most 65535 characters.</summary>
    private static string? UserData(JsonObject server)
    {
        var userData = BodySchema.String(server, "user_data", maxLength: 65535);
        if (userData is null)
        {
            return null;
        }
        var compact = string.Concat(userData.Where(c => !char.IsWhiteSpace(c)));
        if (!Convert.TryFromBase64String(compact, new byte[compact.Length], out _))
        {
            throw BodySchema.Invalid("user_data", server["user_data"], $"'{userData}' is not a 'base64'");
        }
        return userData;
    }

    private static readonly HashSet<string> s_statuses =
        ["ACTIVE", "BUILD", "DELETED", "ERROR", "HARD_REBOOT", "MIGRATING", "PASSWORD", "PAUSED", "REBOOT", "REBUILD", "RESCUE",
         "RESIZE", "REVERT_RESIZE", "SHELVED", "SHELVED_OFFLOADED", "SHUTOFF", "SOFT_DELETED", "SUSPENDED", "UNKNOWN", "VERIFY_RESIZE"];

    /// <summary>
    /// Nova's <c>name</c> filter, a regular expression, compiled once per request. Matching is linear in the name
    /// (the non-backtracking engine), so a pathological pattern costs no more than a plain one; a pattern that engine
    /// cannot run (backreferences, lookarounds) runs on the backtracking engine with one time budget for the whole
    /// list, after which nothing more matches. A pattern that is not a regex matches as a substring.
    /// </summary>
    internal static Func<string, bool> NameFilter(string pattern)
    {
        try
        {
            var linear = new Regex(pattern, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant);
            return linear.IsMatch;
        }
        catch (NotSupportedException)
        {
        }
        catch (ArgumentException)
        {
            return name => name.Contains(pattern, StringComparison.Ordinal);
        }
        var budget = System.Diagnostics.Stopwatch.StartNew();
        return name =>
        {
            var left = s_nameFilterBudget - budget.Elapsed;
            if (left <= TimeSpan.Zero)
            {
                return false;
            }
            try
            {
                return Regex.IsMatch(name, pattern, RegexOptions.CultureInvariant, left);
            }
            catch (RegexMatchTimeoutException)
            {
                return false;
            }
        };
    }

    private static readonly TimeSpan s_nameFilterBudget = TimeSpan.FromMilliseconds(100);

    internal static async Task<IResult> CreateAsync(HttpContext http, ComputeApi compute, CatalogStore catalog, ComputeNodeStore nodes, ServiceStore services,
        NetworkStore networkStore)
    {
        var ctx = RequestContext.Of(http);
        var body = await NovaJson.ReadBodyAsync(http);
        var server = BodySchema.RequiredObject(body, "server");
        BodySchema.Required(server, "server", "name", "flavorRef");
        var name = BodySchema.String(server, "name", nullable: false, minLength: 1)!;
        var flavorRef = RefString(server, "flavorRef")!;
        var imageRef = RefString(server, "imageRef");
        var az = BodySchema.String(server, "availability_zone");
        if (server.ContainsKey("host") && !ctx.Version.AtLeast(74))
        {
            throw BodySchema.Invalid("server", server, "Additional properties are not allowed ('host' was unexpected)");
        }
        var host = BodySchema.String(server, "host", minLength: 1);
        var keyName = BodySchema.String(server, "key_name");
        var configDrive = BodySchema.Boolean(server, "config_drive", allowNull: true) ?? false;
        var userData = UserData(server);
        var metadata = server.TryGetPropertyValue("metadata", out var metadataNode) && metadataNode is not null
            ? ServerMetadataEndpoints.Metadata(metadataNode as JsonObject ?? throw BodySchema.Invalid("metadata", metadataNode, $"{NovaJson.Describe(metadataNode)} is not of type 'object'"), "metadata")
            : [];
        var hints = SchedulerHints(body, out var groupUuid);
        var minCount = PositiveInteger(server, "min_count") ?? 1;
        var maxCount = PositiveInteger(server, "max_count") ?? minCount;
        if (minCount > maxCount)
        {
            throw new BadRequestException("min_count must be <= max_count");
        }
        var blockDevices = ServerBlockDevices.Parse(server, !string.IsNullOrEmpty(imageRef), maxCount, compute.Now);
        var volumeBacked = blockDevices.Any(b => b.BootIndex == 0);
        var networks = await ServerNetworks.ResolveAsync(ctx, server, maxCount, networkStore, http.RequestAborted);

        var flavor = FlavorsEndpoints.Accessible(ctx, await catalog.FindFlavorAsync(BodySchema.RefId(flavorRef), http.RequestAborted));
        if (flavor is null || flavor.Disabled)
        {
            throw new BadRequestException("Invalid flavorRef provided.");
        }
        Image? image = null;
        if (!string.IsNullOrEmpty(imageRef))
        {
            image = await catalog.FindImageAsync(BodySchema.RefId(imageRef), http.RequestAborted) is { } found && ImageAccess.CanSee(ctx.ProjectId, ctx.IsAdmin, found)
                ? found
                : throw new BadRequestException("Can not find requested image");
        }
        else if (blockDevices.Count == 0)
        {
            throw new BadRequestException("Missing imageRef attribute");
        }
        if (image is not null)
        {
            if (image.MinRamMb > flavor.MemoryMb)
            {
                throw new BadRequestException("Flavor's memory is too small for requested image.");
            }
            if (!volumeBacked && flavor.RootGb > 0 && image.MinDiskGb > flavor.RootGb)
            {
                throw new BadRequestException("Flavor's disk is too small for requested image.");
            }
        }
        blockDevices = await BlockDeviceImagesAsync(ctx, blockDevices, flavor, catalog, http.RequestAborted);

        string? requestedHost = null;
        if (!string.IsNullOrEmpty(az) && az.Contains(':', StringComparison.Ordinal))
        {
            var parts = az.Split(':');
            ctx.RequireAdmin("os_compute_api:servers:create:forced_host");
            az = parts[0].Length == 0 ? null : parts[0];
            requestedHost = parts[1].Length == 0 ? null : parts[1];
        }
        if (string.IsNullOrEmpty(az))
        {
            az = null;
        }
        else if (az != "nova" && !(await services.ListAsync(http.RequestAborted, binary: "nova-compute")).Any(s => s.Zone == az))
        {
            throw new BadRequestException("The requested availability zone is not available");
        }
        if (host is not null)
        {
            ctx.RequireAdmin("compute:servers:create:requested_destination");
            requestedHost = host;
        }
        if (requestedHost is not null && await nodes.FindByHostAsync(requestedHost, http.RequestAborted) is null)
        {
            throw new ComputeHostNotFoundException(requestedHost);
        }

        var spec = new ServerCreateSpec
        {
            Name = name,
            Flavor = flavor,
            Image = image,
            AvailabilityZone = az,
            RequestedHost = requestedHost,
            Metadata = metadata,
            ConfigDrive = configDrive,
            VolumeBacked = volumeBacked,
            BlockDevices = blockDevices,
            KeyName = keyName,
            UserData = userData,
            GroupUuid = groupUuid,
            SchedulerHints = hints,
            MinCount = minCount,
            MaxCount = maxCount,
            RequestedNetworks = networks,
        };
        var (instance, adminPass) = await compute.CreateAsync(ctx, spec, http.RequestAborted);
        var links = NovaJson.Links(http, $"servers/{instance.Uuid}");
        http.Response.Headers.Location = $"{NovaJson.BaseUrl(http)}/v2.1/servers/{instance.Uuid}";
        return NovaJson.Ok(new JsonObject
        {
            ["server"] = new JsonObject
            {
                ["id"] = instance.Uuid,
                ["links"] = links,
                ["OS-DCF:diskConfig"] = "MANUAL",
                ["security_groups"] = new JsonArray(new JsonObject { ["name"] = "default" }),
                ["adminPass"] = adminPass,
            },
        }, StatusCodes.Status202Accepted);
    }

    internal static async Task<IResult> DeleteAsync(HttpContext http, string id, ComputeApi compute)
    {
        var ctx = RequestContext.Of(http);
        var instance = await compute.GetInstanceAsync(ctx, id, http.RequestAborted);
        ctx.RequireOwnerOrAdmin("os_compute_api:servers:delete", instance.ProjectId);
        await compute.DeleteAsync(ctx, instance, http.RequestAborted);
        return TypedResults.NoContent();
    }

    /// <summary>Nova's parameter_types.positive_integer (min_count, max_count): 1 or more, as a number or digits.</summary>
    private static int? PositiveInteger(JsonObject o, string key)
    {
        if (!o.TryGetPropertyValue(key, out var node))
        {
            return null;
        }
        long value;
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<long>(out var n))
        {
            value = n;
        }
        else if (node is JsonValue s && s.GetValueKind() == JsonValueKind.String)
        {
            var text = s.GetValue<string>();
            if (text.Length == 0 || !text.All(char.IsAsciiDigit))
            {
                throw BodySchema.Invalid(key, node, $"'{text}' does not match '^[0-9]*$'");
            }
            value = long.TryParse(text, out var parsed) ? parsed : long.MaxValue;
        }
        else
        {
            throw BodySchema.Invalid(key, node, $"{NovaJson.Describe(node)} is not of type 'integer', 'string'");
        }
        if (value < 1)
        {
            throw BodySchema.Invalid(key, node, $"{value} is less than the minimum of 1");
        }
        // More than an int holds can never fit a quota; cap it so the quota check answers.
        return (int)Math.Min(value, int.MaxValue);
    }

    /// <summary>flavorRef / imageRef: a non-empty string or an integer.</summary>
    private static string? RefString(JsonObject o, string key)
    {
        if (!o.TryGetPropertyValue(key, out var node) || node is null)
        {
            return null;
        }
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<long>(out var n))
        {
            return n.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        return BodySchema.String(o, key);
    }

    /// <summary>
    /// The images of the volumes to be made from one (Nova's _validate_bdm and, for the root, _validate_flavor_image): each
    /// must exist and be visible; the root's minimums hold against the flavor's memory and the volume's size.
    /// </summary>
    private static async Task<List<BlockDeviceMapping>> BlockDeviceImagesAsync(RequestContext ctx, List<BlockDeviceMapping> mappings, Flavor flavor,
        CatalogStore catalog, CancellationToken cancellationToken)
    {
        const long GiB = 1L << 30;
        var checkedMappings = new List<BlockDeviceMapping>(mappings.Count);
        foreach (var mapping in mappings)
        {
            if (mapping.SourceType != "image")
            {
                checkedMappings.Add(mapping);
                continue;
            }
            var image = await catalog.FindImageAsync(mapping.ImageId!, cancellationToken) is { } found && ImageAccess.CanSee(ctx.ProjectId, ctx.IsAdmin, found)
                ? found
                : throw new BadRequestException($"Block Device Mapping is Invalid: failed to get image {mapping.ImageId}.");
            if (mapping.BootIndex == 0 && image.MinRamMb > flavor.MemoryMb)
            {
                throw new BadRequestException("Flavor's memory is too small for requested image.");
            }
            if (mapping.BootIndex == 0 && image.MinDiskGb > mapping.VolumeSize)
            {
                throw new BadRequestException("Volume is smaller than the minimum size specified in image metadata. " +
                    $"Volume size is {mapping.VolumeSize * GiB} bytes, minimum size is {image.MinDiskGb * GiB} bytes.");
            }
            checkedMappings.Add(mapping with { ImageId = image.Id });
        }
        return checkedMappings;
    }

    private static Dictionary<string, List<string>> SchedulerHints(JsonObject body, out string? groupUuid)
    {
        groupUuid = null;
        var hints = new Dictionary<string, List<string>>();
        if (!body.TryGetPropertyValue("os:scheduler_hints", out var node) || node is null)
        {
            return hints;
        }
        if (node is not JsonObject o)
        {
            throw BodySchema.Invalid("os:scheduler_hints", node, $"{NovaJson.Describe(node)} is not of type 'object'");
        }
        if (o.ContainsKey("group"))
        {
            groupUuid = BodySchema.String(o, "group");
            if (groupUuid is null || !BodySchema.IsUuid(groupUuid))
            {
                throw BodySchema.Invalid("os:scheduler_hints/group", o["group"], $"{NovaJson.Describe(o["group"])} is not a 'uuid'");
            }
            hints["group"] = [groupUuid];
        }
        foreach (var key in new[] { "same_host", "different_host" })
        {
            if (!o.TryGetPropertyValue(key, out var value) || value is null)
            {
                continue;
            }
            var list = value switch
            {
                JsonValue v when v.GetValueKind() == JsonValueKind.String => [v.GetValue<string>()],
                JsonArray a when a.All(e => e is JsonValue ev && ev.GetValueKind() == JsonValueKind.String) => a.Select(e => e!.GetValue<string>()).ToList(),
                _ => throw BodySchema.Invalid($"os:scheduler_hints/{key}", value, $"{NovaJson.Describe(value)} is not valid under any of the given schemas"),
            };
            if (list.FirstOrDefault(u => !BodySchema.IsUuid(u)) is { } bad)
            {
                throw BodySchema.Invalid($"os:scheduler_hints/{key}", value, $"'{bad}' is not a 'uuid'");
            }
            hints[key] = list;
        }
        return hints;
    }
}
