using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Api;
using Ferry.ControlPlane.Identity;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.ControlPlane.Images;

/// <summary>
/// The Glance v2 subset the OpenStack clients need (https://docs.openstack.org/api-ref/image/v2/):
/// version discovery, list/show/create/update/delete of image records over Ferry's catalog, and
/// upload/download of image data as plain files under the data directory.
/// </summary>
public static class ImageEndpoints
{
    private const string IdentityKey = "ferry.image.identity";
    private const string PatchContentType = "application/openstack-images-v2.1-json-patch";

    /// <summary>Keys with a meaning of their own; everything else in a request body is a custom property.</summary>
    /// <summary>Glance's <c>api_limit_max</c>: the most images one page of the list returns.</summary>
    internal const int ApiLimitMax = 1000;

    private static readonly HashSet<string> s_reserved =
    [
        "id", "name", "status", "visibility", "size", "virtual_size", "checksum", "os_hash_algo", "os_hash_value",
        "disk_format", "container_format", "min_disk", "min_ram", "created_at", "updated_at", "owner", "protected",
        "tags", "self", "file", "schema", "direct_url", "locations", "os_hidden", "stores",
    ];

    private static readonly string[] s_diskFormats = ["ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"];
    private static readonly string[] s_containerFormats = ["ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"];
    private static readonly string[] s_visibilities = ["public", "private", "shared", "community"];

    public static RouteGroupBuilder MapImageApi(this IEndpointRouteBuilder endpoints)
    {
        var api = endpoints.MapGroup("");
        api.AddEndpointFilter(HandleRequestAsync);
        api.MapGet("/", (HttpContext http) => Json(Versions(http), 300));
        api.MapGet("/versions", (HttpContext http) => Json(Versions(http)));
        api.MapGet("/v2/images", ListImagesAsync);
        api.MapPost("/v2/images", CreateImageAsync);
        api.MapGet("/v2/images/{id}", ShowImageAsync);
        api.MapMethods("/v2/images/{id}", ["PATCH"], UpdateImageAsync);
        api.MapDelete("/v2/images/{id}", DeleteImageAsync);
        api.MapPut("/v2/images/{id}/file", UploadAsync);
        api.MapGet("/v2/images/{id}/file", DownloadAsync);
        api.MapGet("/v2/schemas/image", () => Json(ImageSchemas.Image()));
        api.MapGet("/v2/schemas/images", () => Json(ImageSchemas.Images()));
        // Glance's router rejects a served path with another method: 405 with Allow (glance/common/wsgi.py).
        api.Map("{**path}", (HttpContext http) => AllowedMethods.IsWrongMethod(http)
            ? Error(405, $"The method {http.Request.Method} is not allowed for this resource.")
            : Error(404, "The resource could not be found.")).AsFallback();
        return api;
    }

    /// <summary>Glance's (webob's) error body.</summary>
    public static IResult Error(int status, string message) =>
        Json(new JsonObject
        {
            ["code"] = $"{status} {ReasonPhrases(status)}",
            ["title"] = ReasonPhrases(status),
            ["message"] = message,
        }, status);

    private static string ReasonPhrases(int status) => Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status);

    private static IResult Json(JsonNode body, int status = 200) =>
        TypedResults.Json(body, ApiJsonContext.Default.JsonNode, statusCode: status);

    private static async ValueTask<object?> HandleRequestAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        http.Response.Headers["x-openstack-request-id"] = $"req-{Guid.NewGuid()}";
        var path = http.Request.Path.Value ?? "";
        if (path is not ("" or "/" or "/versions"))
        {
            // Keystone's token or, in noauth2 mode, noauth2's user:project: never nothing.
            var identity = await http.RequestServices.GetRequiredService<IRequestAuthenticator>().AuthenticateAsync(http, http.RequestAborted);
            if (identity is null)
            {
                return KeystoneChallenge.Unauthorized(http);
            }
            http.Items[IdentityKey] = identity;
        }
        try
        {
            return await next(context);
        }
        catch (ImageApiException ex)
        {
            return Error(ex.Status, ex.Message);
        }
        catch (JsonException)
        {
            return Error(400, "Malformed JSON in request body.");
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex)
        {
            ApiErrorLog.RequestFailed(http, "image", ex);
            return Error(500, "The server has either erred or is incapable of performing the requested operation.");
        }
    }

    /// <summary>The authenticated caller (the request filter answered 401 to anyone else).</summary>
    private static RequestIdentity Caller(HttpContext http) =>
        http.Items[IdentityKey] as RequestIdentity ?? throw new ImageApiException(401, "The request you have made requires authentication.");

    private static bool CanSee(RequestIdentity caller, Image image) => ImageAccess.CanSee(caller.ProjectId, caller.IsAdmin, image);

    /// <summary>
    /// Glance's default write rules (<c>role:admin or (role:member and project_id:%(owner)s)</c>): a reader or
    /// another project's member is refused with oslo.policy's message naming the rule.
    /// </summary>
    private static void Authorize(RequestIdentity caller, string action, Image? image)
    {
        if (caller.ReadOnly || (image is not null && !ImageAccess.CanModify(caller.ProjectId, caller.IsAdmin, image)))
        {
            throw new ImageApiException(403, $"You are not authorized to complete {action} action.");
        }
    }

    /// <summary>An image the caller can see, looked up by its canonical id; 404 (as Glance) otherwise, so nothing is revealed.</summary>
    private static async Task<Image> VisibleAsync(HttpContext http, CatalogStore catalog, string id) =>
        ImageAccess.Canonical(id) is { } canonical && await catalog.GetImageAsync(canonical, http.RequestAborted) is { } image && CanSee(Caller(http), image)
            ? image
            : throw ImageApiException.NotFound(id);

    /// <summary>An image the caller may change with <paramref name="action"/>: 404 when it cannot see it, 403 when it may not change it.</summary>
    private static async Task<Image> ModifiableAsync(HttpContext http, CatalogStore catalog, string id, string action)
    {
        var image = await VisibleAsync(http, catalog, id);
        Authorize(Caller(http), action, image);
        return image;
    }

    private static JsonObject Versions(HttpContext http)
    {
        var versions = new JsonArray();
        foreach (var (id, status) in new[] { ("v2.17", "CURRENT"), ("v2.16", "SUPPORTED"), ("v2.15", "SUPPORTED"), ("v2.9", "SUPPORTED"), ("v2.0", "SUPPORTED") })
        {
            versions.Add((JsonNode)new JsonObject
            {
                ["id"] = id,
                ["status"] = status,
                ["links"] = new JsonArray(new JsonObject { ["rel"] = "self", ["href"] = $"{NovaJson.BaseUrl(http)}/v2/" }),
            });
        }
        return new JsonObject { ["versions"] = versions };
    }

    private static async Task<IResult> ListImagesAsync(HttpContext http, CatalogStore catalog)
    {
        var query = http.Request.Query;
        var caller = Caller(http);
        IEnumerable<Image> images = (await catalog.ListImagesAsync(http.RequestAborted)).Where(i => CanSee(caller, i));
        if (query["name"].ToString() is { Length: > 0 } name)
        {
            images = images.Where(i => i.Name == name);
        }
        if (query["id"].ToString() is { Length: > 0 } id)
        {
            var canonical = ImageAccess.Canonical(id);
            images = images.Where(i => i.Id == canonical);
        }
        if (query["status"].ToString() is { Length: > 0 } status)
        {
            images = images.Where(i => string.Equals(i.Status, status, StringComparison.OrdinalIgnoreCase));
        }
        if (query["visibility"].ToString() is { Length: > 0 } visibility)
        {
            if (visibility != "all")
            {
                images = images.Where(i => i.Visibility == visibility);
            }
        }
        else
        {
            // Glance lists community images only when asked for them.
            images = images.Where(i => i.Visibility != "community" || i.Owner == caller.ProjectId);
        }
        if (query["owner"].ToString() is { Length: > 0 } owner)
        {
            images = images.Where(i => i.Owner == owner);
        }
        foreach (var (key, values) in query)
        {
            if (!s_reserved.Contains(key) && key is not ("limit" or "marker" or "sort" or "sort_key" or "sort_dir" or "member_status"))
            {
                var wanted = values.ToString();
                images = images.Where(i => i.Properties.TryGetValue(key, out var v) && v == wanted);
            }
        }
        var sorted = Sort(images, ParseSort(query));
        if (query["marker"].ToString() is { Length: > 0 } marker)
        {
            var index = sorted.FindIndex(i => i.Id == marker);
            if (index < 0)
            {
                throw new ImageApiException(400, $"marker {marker} could not be found.");
            }
            sorted = sorted[(index + 1)..];
        }
        var limit = 25;
        if (query["limit"].ToString() is { Length: > 0 } limitText && (!int.TryParse(limitText, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit < 0))
        {
            throw new ImageApiException(400, "limit param must be an integer");
        }
        // Glance's api_limit_max (1000): a larger limit is cut to it.
        limit = Math.Min(limit, ApiLimitMax);
        var page = sorted.Take(limit).ToList();
        var body = new JsonObject
        {
            ["images"] = new JsonArray([.. page.Select(i => (JsonNode)View(i))]),
            ["first"] = "/v2/images" + http.Request.QueryString.Value,
            ["schema"] = "/v2/schemas/images",
        };
        if (page.Count > 0 && sorted.Count > page.Count)
        {
            var next = query.Where(q => q.Key != "marker").Select(q => $"{Uri.EscapeDataString(q.Key)}={Uri.EscapeDataString(q.Value.ToString())}")
                .Append($"marker={page[^1].Id}");
            body["next"] = "/v2/images?" + string.Join('&', next);
        }
        return Json(body);
    }

    private static List<(string Key, bool Descending)> ParseSort(IQueryCollection query)
    {
        List<(string, bool)> keys = [];
        if (query["sort"].ToString() is { Length: > 0 } sort)
        {
            foreach (var part in sort.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var (key, dir) = part.IndexOf(':', StringComparison.Ordinal) is var colon and >= 0 ? (part[..colon], part[(colon + 1)..]) : (part, "desc");
                keys.Add((key, Direction(dir)));
            }
        }
        else if (query["sort_key"].Count > 0)
        {
            var dirs = query["sort_dir"];
            for (var i = 0; i < query["sort_key"].Count; i++)
            {
                keys.Add((query["sort_key"][i]!, Direction(i < dirs.Count ? dirs[i]! : "desc")));
            }
        }
        if (keys.Count == 0)
        {
            keys.Add(("created_at", true));
        }
        foreach (var (key, _) in keys)
        {
            if (key is not ("name" or "status" or "size" or "created_at" or "updated_at" or "id" or "disk_format" or "container_format" or "visibility" or "min_disk" or "min_ram" or "owner"))
            {
                throw new ImageApiException(400, $"Unsupported sort_key: {key}");
            }
        }
        return keys;

        static bool Direction(string dir) => dir switch
        {
            "asc" => false,
            "desc" => true,
            _ => throw new ImageApiException(400, $"Unsupported sort_dir. Acceptable values: asc, desc"),
        };
    }

    private static List<Image> Sort(IEnumerable<Image> images, List<(string Key, bool Descending)> keys)
    {
        IOrderedEnumerable<Image>? ordered = null;
        foreach (var (key, descending) in keys.Append(("id", true)))
        {
            Func<Image, IComparable?> selector = key switch
            {
                "name" => i => i.Name,
                "status" => i => i.Status,
                "size" => i => i.SizeBytes,
                "created_at" => i => i.CreatedAt,
                "updated_at" => i => i.UpdatedAt ?? i.CreatedAt,
                "disk_format" => i => i.DiskFormat,
                "container_format" => i => i.ContainerFormat,
                "visibility" => i => i.Visibility,
                "min_disk" => i => i.MinDiskGb,
                "min_ram" => i => i.MinRamMb,
                "owner" => i => i.Owner,
                _ => i => i.Id,
            };
            var comparer = Comparer<IComparable?>.Create((a, b) => a is null ? (b is null ? 0 : -1) : b is null ? 1 : a is string sa && b is string sb
                ? string.CompareOrdinal(sa, sb) : a.CompareTo(b));
            ordered = ordered is null
                ? descending ? images.OrderByDescending(selector, comparer) : images.OrderBy(selector, comparer)
                : descending ? ordered.ThenByDescending(selector, comparer) : ordered.ThenBy(selector, comparer);
        }
        return [.. ordered!];
    }

    private static async Task<IResult> ShowImageAsync(string id, HttpContext http, CatalogStore catalog) => Json(View(await VisibleAsync(http, catalog, id)));

    private static async Task<IResult> CreateImageAsync(HttpContext http, CatalogStore catalog, TimeProvider time, CancellationToken cancellationToken)
    {
        if (await RequestJson.ReadAsync(http.Request, cancellationToken) is not JsonObject body)
        {
            throw new ImageApiException(400, "Request body must be a JSON object.");
        }
        var caller = Caller(http);
        Authorize(caller, "add_image", null);
        var now = time.GetUtcNow();
        var requestedId = body["id"] is JsonNode idNode ? Str(idNode, "id") : Guid.NewGuid().ToString();
        var id = ImageAccess.Canonical(requestedId) ?? throw new ImageApiException(400, $"id {requestedId} is not a valid UUID");
        if (await catalog.GetImageAsync(id, cancellationToken) is not null)
        {
            throw new ImageApiException(409, $"Image with identifier {id} already exists!");
        }
        var image = new Image
        {
            Id = id,
            Name = "",
            Status = "queued",
            Visibility = "shared",
            Owner = caller.ProjectId,
            CreatedAt = now,
            UpdatedAt = now,
            DiskFormat = "",
            ContainerFormat = "",
        };
        foreach (var (key, value) in body)
        {
            if (key == "id")
            {
                continue;
            }
            image = Apply(image, key, value, caller);
        }
        await catalog.SaveImageAsync(image, cancellationToken);
        http.Response.Headers.Location = $"{NovaJson.BaseUrl(http)}/v2/images/{image.Id}";
        return Json(View(image), 201);
    }

    private static async Task<IResult> UpdateImageAsync(string id, HttpContext http, CatalogStore catalog, TimeProvider time, CancellationToken cancellationToken)
    {
        if (!(http.Request.ContentType ?? "").StartsWith(PatchContentType, StringComparison.OrdinalIgnoreCase))
        {
            throw new ImageApiException(415, $"Unsupported Content-Type; use {PatchContentType}");
        }
        var image = await ModifiableAsync(http, catalog, id, "modify_image");
        if (await RequestJson.ReadAsync(http.Request, cancellationToken) is not JsonArray operations)
        {
            throw new ImageApiException(400, "Request body must be a JSON array of operation objects.");
        }
        var caller = Caller(http);
        foreach (var operation in operations)
        {
            // Glance's JSON-patch reader: each change is an object whose "op" and "path" are strings.
            var change = operation as JsonObject ?? throw new ImageApiException(400, "Operations must be JSON objects.");
            var op = change["op"] is JsonValue opValue && opValue.GetValueKind() == JsonValueKind.String ? opValue.GetValue<string>()
                : throw new ImageApiException(400, "Operation objects must contain exactly one member named \"op\".");
            var path = change["path"] is JsonValue pathValue && pathValue.GetValueKind() == JsonValueKind.String ? pathValue.GetValue<string>()
                : throw new ImageApiException(400, "Unable to find 'path' in JSON Schema change");
            var key = path.TrimStart('/');
            var tagIndex = key.StartsWith("tags/", StringComparison.Ordinal) ? key[5..] : null;
            if (key.Length == 0 || (key.Contains('/', StringComparison.Ordinal) && tagIndex is null))
            {
                throw new ImageApiException(400, $"Invalid JSON pointer for this resource: '{path}'");
            }
            switch (op)
            {
                case "add" when tagIndex is not null:
                    image = image with { Tags = [.. image.Tags.Where(t => t != Str(change["value"], "tag")), Str(change["value"], "tag")] };
                    break;
                case "add" or "replace":
                    if (op == "replace" && !s_reserved.Contains(key) && !image.Properties.ContainsKey(key))
                    {
                        throw new ImageApiException(409, $"Property {key} does not exist.");
                    }
                    image = Apply(image, key, change["value"], caller);
                    break;
                case "remove" when tagIndex is not null:
                    image = image with { Tags = [.. image.Tags.Where((_, i) => i.ToString(CultureInfo.InvariantCulture) != tagIndex)] };
                    break;
                case "remove" when s_reserved.Contains(key):
                    throw new ImageApiException(403, $"Attribute '{key}' is reserved.");
                case "remove":
                    if (!image.Properties.ContainsKey(key))
                    {
                        throw new ImageApiException(409, $"Property {key} does not exist.");
                    }
                    image = image with { Properties = image.Properties.Where(p => p.Key != key).ToDictionary() };
                    break;
                default:
                    throw new ImageApiException(400, $"Invalid operation: `{op}`: must be one of add, remove, replace.");
            }
        }
        image = await catalog.SaveImageAsync(image with { UpdatedAt = time.GetUtcNow() }, cancellationToken);
        return Json(View(image));
    }

    /// <summary>Sets one attribute or custom property from a request value, as POST and PATCH allow.</summary>
    private static Image Apply(Image image, string key, JsonNode? value, RequestIdentity caller) => key switch
    {
        "name" => image with { Name = value is null ? "" : Str(value, key) },
        "disk_format" => image with { DiskFormat = OneOf(value, key, s_diskFormats) },
        "container_format" => image with { ContainerFormat = OneOf(value, key, s_containerFormats) },
        "visibility" => OneOf(value, key, s_visibilities) is var v && v == "public" && !caller.IsAdmin
            ? throw new ImageApiException(403, "Forbidden to set 'public' visibility.")
            : image with { Visibility = v },
        "min_disk" => image with { MinDiskGb = Int(value, key) },
        "min_ram" => image with { MinRamMb = Int(value, key) },
        "protected" => image with
        {
            Protected = value?.GetValueKind() is JsonValueKind.True or JsonValueKind.False ? value.GetValue<bool>() : throw new ImageApiException(400, "protected must be a boolean"),
        },
        "tags" => image with
        {
            Tags = value is JsonArray tags ? [.. tags.Select(t => Str(t, "tags")).Distinct()] : throw new ImageApiException(400, "tags must be an array"),
        },
        "owner" => !caller.IsAdmin ? throw new ImageApiException(403, "Attribute 'owner' is read-only.") : image with { Owner = value?.ToString() },
        _ when s_reserved.Contains(key) => throw new ImageApiException(403, $"Attribute '{key}' is read-only."),
        _ => image with
        {
            Properties = new Dictionary<string, string>(image.Properties)
            {
                [key] = value is null ? "" : value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : value.ToJsonString(),
            },
        },
    };

    private static string Str(JsonNode? value, string key) =>
        value?.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : throw new ImageApiException(400, $"Invalid value for '{key}': must be a string");

    private static int Int(JsonNode? value, string key) =>
        value?.GetValueKind() == JsonValueKind.Number && value.AsValue().TryGetValue<int>(out var n) && n >= 0
            ? n
            : throw new ImageApiException(400, $"Invalid value for '{key}': must be a non-negative integer");

    private static string OneOf(JsonNode? value, string key, string[] allowed)
    {
        var text = Str(value, key);
        return allowed.Contains(text) ? text : throw new ImageApiException(400, $"Invalid value '{text}' for '{key}': must be one of {string.Join(", ", allowed)}");
    }

    private static async Task<IResult> DeleteImageAsync(string id, HttpContext http, CatalogStore catalog, ImageServiceOptions options)
    {
        var image = await ModifiableAsync(http, catalog, id, "delete_image");
        if (image.Protected)
        {
            throw new ImageApiException(403, $"Image {image.Id} is protected and cannot be deleted.");
        }
        // An image without data has no file (and the store's directory may not exist yet).
        var data = DataPath(options, image.Id);
        await catalog.DeleteImageAsync(image.Id, http.RequestAborted);
        if (File.Exists(data))
        {
            File.Delete(data);
        }
        return Results.NoContent();
    }

    private static async Task<IResult> UploadAsync(string id, HttpContext http, CatalogStore catalog, ImageServiceOptions options, TimeProvider time, CancellationToken cancellationToken)
    {
        var image = await ModifiableAsync(http, catalog, id, "upload_image");
        if (image.Status != "queued")
        {
            throw new ImageApiException(409, $"Image status transition from {image.Status} to saving is not allowed");
        }
        if (image.DiskFormat.Length == 0 || image.ContainerFormat.Length == 0)
        {
            throw new ImageApiException(400, "Properties disk_format, container_format must be set prior to saving data.");
        }
        var cap = options.ImageSizeCap;
        if (http.Request.ContentLength > cap)
        {
            throw TooLarge();
        }
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            // Counted below against image_size_cap, with Glance's answer; Kestrel's own limit would cut at 30 MB.
            limit.MaxRequestBodySize = null;
        }
        await catalog.SaveImageAsync(image with { Status = "saving", UpdatedAt = time.GetUtcNow() }, cancellationToken);
        Directory.CreateDirectory(options.ImagesDirectory);
        var path = DataPath(options, image.Id);
        var partial = path + ".part";
        long size = 0;
        using var md5 = IncrementalHash.CreateHash(HashAlgorithmName.MD5);
        using var sha512 = IncrementalHash.CreateHash(HashAlgorithmName.SHA512);
        try
        {
            await using (var file = PrivateFiles.Create(partial, useAsync: true))
            {
                var buffer = new byte[1 << 16];
                int read;
                while ((read = await http.Request.Body.ReadAsync(buffer, cancellationToken)) > 0)
                {
                    if (size + read > cap)
                    {
                        throw TooLarge();
                    }
                    md5.AppendData(buffer, 0, read);
                    sha512.AppendData(buffer, 0, read);
                    await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                    size += read;
                }
            }
            File.Move(partial, path, overwrite: true);
        }
        catch
        {
            File.Delete(partial);
            // The image goes back to what it was whatever became of the request: it would stay "saving" for good.
            await catalog.SaveImageAsync(image with { UpdatedAt = time.GetUtcNow() }, CancellationToken.None);
            throw;
        }
        await catalog.SaveImageAsync(image with
        {
            Status = "active",
            SizeBytes = size,
            Checksum = Convert.ToHexStringLower(md5.GetHashAndReset()),
            OsHashAlgo = "sha512",
            OsHashValue = Convert.ToHexStringLower(sha512.GetHashAndReset()),
            UpdatedAt = time.GetUtcNow(),
        }, CancellationToken.None); // the file is in place: the record must say so
        return Results.NoContent();
    }

    /// <summary>Glance's answer to an upload beyond <c>image_size_cap</c>; the image goes back to queued.</summary>
    private static ImageApiException TooLarge() => new(413, "The incoming image is too large: The provided image is too large.");

    private static async Task<IResult> DownloadAsync(string id, HttpContext http, CatalogStore catalog, ImageServiceOptions options)
    {
        var image = await VisibleAsync(http, catalog, id);
        var path = DataPath(options, image.Id);
        if (image.Status != "active" || !File.Exists(path))
        {
            // Glance answers 204 for an image without data.
            return Results.NoContent();
        }
        if (image.Checksum is not null)
        {
            http.Response.Headers["Content-MD5"] = image.Checksum;
        }
        return Results.File(path, "application/octet-stream");
    }

    private static string DataPath(ImageServiceOptions options, string id) =>
        Path.GetFullPath(Path.Combine(options.ImagesDirectory, Guid.Parse(id).ToString()));

    private static string Time(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>An image in Glance v2's shape, custom properties flattened beside the core attributes.</summary>
    public static JsonObject View(Image image)
    {
        var hasData = image.Status is "active" or "deactivated";
        var view = new JsonObject();
        foreach (var (key, value) in image.Properties)
        {
            view[key] = value;
        }
        view["id"] = image.Id;
        view["name"] = image.Name.Length == 0 ? null : image.Name;
        view["status"] = image.Status;
        view["visibility"] = image.Visibility;
        view["protected"] = image.Protected;
        view["os_hidden"] = false;
        view["size"] = hasData || image.SizeBytes > 0 ? image.SizeBytes : null;
        view["virtual_size"] = null;
        view["checksum"] = image.Checksum;
        view["os_hash_algo"] = image.OsHashAlgo;
        view["os_hash_value"] = image.OsHashValue;
        view["min_disk"] = image.MinDiskGb;
        view["min_ram"] = image.MinRamMb;
        view["disk_format"] = image.DiskFormat.Length == 0 ? null : image.DiskFormat;
        view["container_format"] = image.ContainerFormat.Length == 0 ? null : image.ContainerFormat;
        view["created_at"] = Time(image.CreatedAt);
        view["updated_at"] = Time(image.UpdatedAt ?? image.CreatedAt);
        view["tags"] = new JsonArray([.. image.Tags.Select(t => (JsonNode)t)]);
        view["owner"] = image.Owner;
        view["self"] = $"/v2/images/{image.Id}";
        view["file"] = $"/v2/images/{image.Id}/file";
        view["schema"] = "/v2/schemas/image";
        return view;
    }
}
