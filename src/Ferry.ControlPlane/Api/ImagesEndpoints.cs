using System.Text.Json.Nodes;
using Ferry.ControlPlane.Images;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.ControlPlane.Api;

/// <summary>
/// Compute's image proxy over Ferry's built-in catalog (nova/api/openstack/compute/images.py). Nova
/// stopped proxying at 2.36; Ferry has no image service, so it keeps serving it at every version.
/// </summary>
public static class ImagesEndpoints
{
    public static RouteGroupBuilder MapImages(this RouteGroupBuilder api)
    {
        api.MapGet("/images", (HttpContext http, CatalogStore catalog) => ListAsync(http, catalog, detail: false));
        api.MapGet("/images/detail", (HttpContext http, CatalogStore catalog) => ListAsync(http, catalog, detail: true));
        api.MapGet("/images/{id}", ShowAsync);
        return api;
    }

    internal static JsonObject View(HttpContext http, Image image, bool detail)
    {
        var o = new JsonObject
        {
            ["id"] = image.Id,
            ["name"] = image.Name,
            ["links"] = NovaJson.Links(http, $"images/{image.Id}"),
        };
        // Nova's image view adds a third link to the image service itself (views/images.py _get_alternate_link).
        var glance = http.RequestServices.GetRequiredService<ControlPlaneOptions>().ImageApiUrl ?? $"{http.Request.Scheme}://{http.Request.Host.Host}:9292";
        o["links"]!.AsArray().Add((JsonNode)new JsonObject
        {
            ["rel"] = "alternate",
            ["type"] = "application/vnd.openstack.image",
            ["href"] = $"{glance.TrimEnd('/')}/images/{image.Id}",
        });
        if (detail)
        {
            o["status"] = image.Status.ToUpperInvariant();
            o["progress"] = image.Status == "active" ? 100 : 0;
            o["minDisk"] = image.MinDiskGb;
            o["minRam"] = image.MinRamMb;
            o["created"] = NovaJson.IsoZ(image.CreatedAt);
            o["updated"] = NovaJson.IsoZ(image.CreatedAt);
            o["metadata"] = NovaJson.ToJson(image.Properties);
            o["OS-EXT-IMG-SIZE:size"] = image.SizeBytes;
        }
        return o;
    }

    internal static async Task<IResult> ListAsync(HttpContext http, CatalogStore catalog, bool detail)
    {
        var ctx = RequestContext.Of(http);
        var images = (await catalog.ListImagesAsync(http.RequestAborted)).Where(i => ImageAccess.CanSee(ctx.ProjectId, ctx.IsAdmin, i)).ToList();
        if (http.Request.Query["name"].FirstOrDefault() is { } name)
        {
            images = images.Where(i => i.Name == name).ToList();
        }
        return NovaJson.Ok(new JsonObject { ["images"] = NovaJson.Array(images.Select(i => View(http, i, detail))) });
    }

    internal static async Task<IResult> ShowAsync(HttpContext http, string id, CatalogStore catalog)
    {
        var ctx = RequestContext.Of(http);
        // Nova asks Glance as the caller: an image the caller cannot see is not found.
        var image = await catalog.FindImageAsync(id, http.RequestAborted) is { } found && ImageAccess.CanSee(ctx.ProjectId, ctx.IsAdmin, found)
            ? found
            : throw new ImageNotFoundException(id);
        return NovaJson.Ok(new JsonObject { ["image"] = View(http, image, detail: true) });
    }
}
