using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.Core.Errors;
using Ferry.Core.Placement;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.ControlPlane.Placement;

/// <summary>
/// Placement's <c>/resource_classes</c> (from 1.2; PUT creates from 1.7, renames before) and <c>/traits</c> (from
/// 1.6), and the trait check of <c>PUT /resource_providers/{uuid}/traits</c> (placement/handlers/resource_class.py,
/// trait.py). A route below its microversion is 404, as Placement's version_handler answers.
/// </summary>
public static class ResourceClassesAndTraitsEndpoints
{
    private const string CustomPattern = "^CUSTOM\\_[A-Z0-9_]+$";

    public static RouteGroupBuilder MapResourceClassesAndTraits(this RouteGroupBuilder api)
    {
        api.MapGet("/resource_classes", ListResourceClasses);
        api.MapPost("/resource_classes", CreateResourceClassAsync);
        api.MapGet("/resource_classes/{name}", GetResourceClass);
        api.MapPut("/resource_classes/{name}", PutResourceClassAsync);
        api.MapDelete("/resource_classes/{name}", DeleteResourceClassAsync);

        api.MapGet("/traits", ListTraitsAsync);
        api.MapGet("/traits/{name}", GetTrait);
        api.MapPut("/traits/{name}", PutTrait);
        api.MapDelete("/traits/{name}", DeleteTraitAsync);
        return api;
    }

    /// <summary>The microversion asked for: none is 1.0, <c>latest</c> the maximum (the filter already refused bad ones).</summary>
    internal static (int Major, int Minor) RequestedVersion(HttpRequest request)
    {
        foreach (var part in request.Headers[PlacementMicroversion.HeaderName].ToString().Split(','))
        {
            var words = part.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (words.Length != 2 || !words[0].Equals("placement", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }
            var version = words[1] == "latest" ? PlacementMicroversion.Max : words[1];
            var numbers = version.Split('.');
            if (numbers.Length == 2 && int.TryParse(numbers[0], NumberStyles.None, CultureInfo.InvariantCulture, out var major)
                && int.TryParse(numbers[1], NumberStyles.None, CultureInfo.InvariantCulture, out var minor))
            {
                return (major, minor);
            }
        }
        return (1, 0);
    }

    private static bool AtLeast(HttpRequest request, int minor) => RequestedVersion(request).Minor >= minor;

    private static void RequireVersion(HttpRequest request, int minor)
    {
        if (!AtLeast(request, minor))
        {
            throw new NotFoundException("The resource could not be found.");
        }
    }

    private static IResult Json(JsonNode body, int status = StatusCodes.Status200OK) =>
        Results.Text(body.ToJsonString(), "application/json", statusCode: status);

    private static JsonObject ResourceClassView(string name) => new()
    {
        ["name"] = name,
        ["links"] = new JsonArray(new JsonObject { ["rel"] = "self", ["href"] = $"/resource_classes/{name}" }),
    };

    private static IResult Created(HttpContext http, string location)
    {
        http.Response.Headers.Location = location;
        return Results.StatusCode(StatusCodes.Status201Created);
    }

    // ---- resource classes ----

    internal static IResult ListResourceClasses(HttpRequest request, PlacementCatalog catalog)
    {
        RequireVersion(request, 2);
        var list = new JsonArray();
        foreach (var name in catalog.ResourceClasses())
        {
            list.Add((JsonNode)ResourceClassView(name));
        }
        return Json(new JsonObject { ["resource_classes"] = list });
    }

    internal static IResult GetResourceClass(HttpRequest request, string name, PlacementCatalog catalog)
    {
        RequireVersion(request, 2);
        return catalog.ResourceClassExists(name) ? Json(ResourceClassView(name)) : throw new NotFoundException($"No such resource class {name}.");
    }

    internal static async Task<IResult> CreateResourceClassAsync(HttpContext http, PlacementCatalog catalog)
    {
        RequireVersion(http.Request, 2);
        var name = await ReadNameAsync(http);
        if (!catalog.CreateResourceClass(name))
        {
            throw new ConflictException($"Conflicting resource class already exists: {name}");
        }
        return Created(http, $"/resource_classes/{name}");
    }

    /// <summary>From 1.7 creates a custom class (201) or confirms it (204); 1.2–1.6 renames a custom class.</summary>
    internal static async Task<IResult> PutResourceClassAsync(HttpContext http, string name, PlacementCatalog catalog)
    {
        RequireVersion(http.Request, 2);
        if (!AtLeast(http.Request, 7))
        {
            var newName = await ReadNameAsync(http);
            if (!catalog.ResourceClassExists(name))
            {
                throw new NotFoundException($"No such resource class {name}.");
            }
            if (StandardNames.ResourceClasses.Contains(name))
            {
                throw new BadRequestException($"Cannot update standard resource class {name}");
            }
            await catalog.RenameResourceClassAsync(name, newName, http.RequestAborted);
            return Json(ResourceClassView(newName));
        }
        CheckCustomName(name);
        var created = catalog.CreateResourceClass(name);
        http.Response.Headers.Location = $"/resource_classes/{name}";
        return Results.StatusCode(created ? StatusCodes.Status201Created : StatusCodes.Status204NoContent);
    }

    internal static async Task<IResult> DeleteResourceClassAsync(HttpRequest request, string name, PlacementCatalog catalog, CancellationToken cancellationToken)
    {
        RequireVersion(request, 2);
        await catalog.DeleteResourceClassAsync(name, cancellationToken);
        return Results.NoContent();
    }

    /// <summary>POST_RC_SCHEMA_V1_2: <c>{"name": "CUSTOM_…"}</c> and nothing else.</summary>
    private static async Task<string> ReadNameAsync(HttpContext http)
    {
        JsonNode? body;
        try
        {
            body = await JsonNode.ParseAsync(http.Request.Body, cancellationToken: http.RequestAborted);
        }
        catch (JsonException ex)
        {
            throw new BadRequestException($"Malformed JSON: {ex.Message}");
        }
        if (body is not JsonObject o)
        {
            throw new BadRequestException($"JSON does not validate: {body?.ToJsonString() ?? "None"} is not of type 'object'");
        }
        if (o.Select(p => p.Key).FirstOrDefault(k => k != "name") is { } extra)
        {
            throw new BadRequestException($"JSON does not validate: Additional properties are not allowed ('{extra}' was unexpected)");
        }
        if (!o.TryGetPropertyValue("name", out var node))
        {
            throw new BadRequestException("JSON does not validate: 'name' is a required property");
        }
        if (node is not JsonValue v || v.GetValueKind() != JsonValueKind.String)
        {
            throw new BadRequestException($"JSON does not validate: {node?.ToJsonString() ?? "None"} is not of type 'string'");
        }
        var name = v.GetValue<string>();
        CheckCustomName(name);
        return name;
    }

    private static void CheckCustomName(string name)
    {
        if (name.Length > 255)
        {
            throw new BadRequestException($"JSON does not validate: '{name}' is too long");
        }
        if (!PlacementCatalog.IsCustomName(name))
        {
            throw new BadRequestException($"JSON does not validate: '{name}' does not match '{CustomPattern}'");
        }
    }

    // ---- traits ----

    /// <summary>GET /traits with <c>name=in:A,B</c> or <c>name=startswith:P</c> and <c>associated=true|false</c>.</summary>
    internal static async Task<IResult> ListTraitsAsync(HttpRequest request, PlacementCatalog catalog, CancellationToken cancellationToken)
    {
        RequireVersion(request, 6);
        if (request.Query.Keys.FirstOrDefault(k => k is not ("name" or "associated")) is { } unknown)
        {
            throw new BadRequestException($"Invalid query string parameters: Additional properties are not allowed ('{unknown}' was unexpected)");
        }
        IEnumerable<string> traits = catalog.Traits();
        if (request.Query.TryGetValue("name", out var nameValues))
        {
            var qs = nameValues.ToString();
            var colon = qs.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0)
            {
                throw new BadRequestException(
                    $"Badly formatted name parameter. Expected name query string parameter in form: ?name=[in|startswith]:[name1,name2|prefix]. Got: \"{qs}\"");
            }
            var (op, value) = (qs[..colon], qs[(colon + 1)..]);
            if (op == "in")
            {
                var names = value.Split(',').ToHashSet(StringComparer.Ordinal);
                traits = traits.Where(names.Contains);
            }
            else if (op == "startswith")
            {
                traits = traits.Where(t => t.StartsWith(value, StringComparison.Ordinal));
            }
        }
        if (request.Query.TryGetValue("associated", out var associatedValues))
        {
            var text = associatedValues.ToString().ToLowerInvariant();
            if (text is not ("true" or "false"))
            {
                throw new BadRequestException("The query parameter \"associated\" only accepts \"true\" or \"false\"");
            }
            var associated = await catalog.AssociatedTraitsAsync(cancellationToken);
            traits = traits.Where(t => associated.Contains(t) == (text == "true"));
        }
        var list = new JsonArray();
        foreach (var trait in traits)
        {
            list.Add((JsonNode?)trait);
        }
        return Json(new JsonObject { ["traits"] = list });
    }

    internal static IResult GetTrait(HttpRequest request, string name, PlacementCatalog catalog)
    {
        RequireVersion(request, 6);
        return catalog.TraitExists(name) ? Results.NoContent() : throw new NotFoundException($"No such trait(s): {name}.");
    }

    internal static IResult PutTrait(HttpContext http, string name, PlacementCatalog catalog)
    {
        RequireVersion(http.Request, 6);
        if (!PlacementCatalog.IsCustomName(name))
        {
            throw new BadRequestException(
                "The trait is invalid. A valid trait must be no longer than 255 characters, start with the prefix \"CUSTOM_\" and use following characters: \"A\"-\"Z\", \"0\"-\"9\" and \"_\"");
        }
        var created = catalog.CreateTrait(name);
        http.Response.Headers.Location = $"/traits/{name}";
        return Results.StatusCode(created ? StatusCodes.Status201Created : StatusCodes.Status204NoContent);
    }

    internal static async Task<IResult> DeleteTraitAsync(HttpRequest request, string name, PlacementCatalog catalog, CancellationToken cancellationToken)
    {
        RequireVersion(request, 6);
        await catalog.DeleteTraitAsync(name, cancellationToken);
        return Results.NoContent();
    }

    /// <summary>update_traits_for_resource_provider: every trait set on a provider must exist.</summary>
    internal static void RequireTraits(PlacementCatalog catalog, IEnumerable<string> traits)
    {
        var missing = traits.Where(t => !catalog.TraitExists(t)).Distinct(StringComparer.Ordinal).ToList();
        if (missing.Count > 0)
        {
            throw new BadRequestException($"No such trait {string.Join(", ", missing)}");
        }
    }
}
