using System.Globalization;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Identity;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Ferry.FunctionalTests.Cli;

/// <summary>
/// The read-only slice of Glance v2 the openstack CLI calls (discovery, list by name, show) over
/// Ferry's catalog, token-checked, for the CLI tests until Ferry has its own image service.
/// </summary>
internal sealed class GlanceStub(WebApplication app) : IAsyncDisposable
{
    public static async Task<GlanceStub> StartAsync(string url, CatalogStore catalog, TokenStore tokens, CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(url);
        builder.Logging.ClearProviders();
        var app = builder.Build();
        app.MapGet("/", (HttpContext http) => Results.Json(new JsonObject
        {
            ["versions"] = new JsonArray(new JsonObject
            {
                ["id"] = "v2.9",
                ["status"] = "CURRENT",
                ["links"] = new JsonArray(new JsonObject { ["rel"] = "self", ["href"] = $"{url}/v2/" }),
            }),
        }, statusCode: 300));
        var v2 = app.MapGroup("/v2");
        v2.AddEndpointFilter(async (context, next) =>
            tokens.Validate(context.HttpContext.Request.Headers["X-Auth-Token"].ToString()) is null
                ? Results.Json(new JsonObject { ["error"] = new JsonObject { ["code"] = 401, ["title"] = "Unauthorized", ["message"] = "The request you have made requires authentication." } }, statusCode: 401)
                : await next(context));
        v2.MapGet("/images", (HttpContext http) =>
        {
            var name = http.Request.Query["name"].ToString();
            var id = http.Request.Query["id"].ToString();
            var images = catalog.ListImages().Where(i => (name.Length == 0 || i.Name == name) && (id.Length == 0 || i.Id == id));
            return Results.Json(new JsonObject
            {
                ["images"] = new JsonArray([.. images.Select(i => (JsonNode)View(i))]),
                ["first"] = "/v2/images",
                ["schema"] = "/v2/schemas/images",
            });
        });
        v2.MapGet("/images/{id}", (string id) =>
            catalog.ListImages().Find(i => i.Id == id) is { } image
                ? Results.Json(View(image))
                : Results.Json(new JsonObject { ["message"] = $"No image found with ID {id}", ["code"] = "404 Not Found", ["title"] = "Not Found" }, statusCode: 404));
        await app.StartAsync(cancellationToken);
        return new GlanceStub(app);
    }

    private static JsonObject View(Image image)
    {
        var created = image.CreatedAt.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
        var view = new JsonObject
        {
            ["id"] = image.Id,
            ["name"] = image.Name,
            ["status"] = image.Status,
            ["visibility"] = "public",
            ["protected"] = false,
            ["size"] = image.SizeBytes,
            ["min_disk"] = image.MinDiskGb,
            ["min_ram"] = image.MinRamMb,
            ["disk_format"] = image.DiskFormat,
            ["container_format"] = image.ContainerFormat,
            ["created_at"] = created,
            ["updated_at"] = created,
            ["tags"] = new JsonArray(),
            ["owner"] = null,
            ["self"] = $"/v2/images/{image.Id}",
            ["file"] = $"/v2/images/{image.Id}/file",
            ["schema"] = "/v2/schemas/image",
        };
        foreach (var (key, value) in image.Properties)
        {
            view[key] = value;
        }
        return view;
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }
}
