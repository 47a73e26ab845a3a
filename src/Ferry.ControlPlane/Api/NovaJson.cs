using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.Core.Errors;
using Microsoft.AspNetCore.Http;

namespace Ferry.ControlPlane.Api;

/// <summary>Helpers for Nova's JSON: results, fault bodies, timestamps, links, request bodies.</summary>
internal static class NovaJson
{
    public static IResult Ok(JsonNode body, int statusCode = StatusCodes.Status200OK) =>
        TypedResults.Json(body, ApiJsonContext.Default.JsonNode, statusCode: statusCode);

    /// <summary>
    /// A body written straight into the response: for lists of thousands (all hypervisors of a cloud: ~7 MB), where a
    /// JsonNode tree of every item costs more than the queries behind it. Same encoder and content type as <see cref="Ok(JsonNode, int)"/>.
    /// </summary>
    public static IResult Ok(Action<Utf8JsonWriter> write, int statusCode = StatusCodes.Status200OK) => new WrittenJson(write, statusCode);

    private sealed class WrittenJson(Action<Utf8JsonWriter> write, int statusCode) : IResult, IStatusCodeHttpResult, IContentTypeHttpResult
    {
        public int? StatusCode => statusCode;

        public string ContentType => "application/json; charset=utf-8";

        public async Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.StatusCode = statusCode;
            httpContext.Response.ContentType = ContentType;
            using (var writer = new Utf8JsonWriter(httpContext.Response.BodyWriter))
            {
                write(writer);
            }
            await httpContext.Response.BodyWriter.FlushAsync(httpContext.RequestAborted);
        }
    }

    public static IResult Fault(int status, string faultName, string message) =>
        Ok(new JsonObject { [faultName] = new JsonObject { ["code"] = status, ["message"] = message } }, status);

    public static IResult Fault(FerryException ex) => Fault(ex.HttpStatus, ex.FaultName, ex.Message);

    /// <summary>Timestamps in server views (<c>utils.isotime</c>): <c>2026-11-22T10:22:08Z</c>.</summary>
    public static string IsoZ(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>Timestamps as Nova's DB objects serialize them: <c>2026-11-22T10:22:20.694943</c>.</summary>
    public static string Db(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff", CultureInfo.InvariantCulture);

    public static string? Db(DateTimeOffset? time) => time is { } t ? Db(t) : null;

    /// <summary>Re-formats a timestamp the stores keep as text.</summary>
    public static string? Db(string? stored) =>
        stored is null ? null
        : DateTimeOffset.TryParse(stored, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t)
            ? Db(t) : stored;

    public static string BaseUrl(HttpContext http) => $"{http.Request.Scheme}://{http.Request.Host}";

    /// <summary>Nova's self + bookmark links for a resource path such as <c>servers/{id}</c>.</summary>
    public static JsonArray Links(HttpContext http, string path) =>
        new(
            new JsonObject { ["rel"] = "self", ["href"] = $"{BaseUrl(http)}/v2.1/{path}" },
            new JsonObject { ["rel"] = "bookmark", ["href"] = $"{BaseUrl(http)}/{path}" });

    public static JsonObject ToJson(Dictionary<string, string> values)
    {
        var o = new JsonObject();
        foreach (var (k, v) in values)
        {
            o[k] = v;
        }
        return o;
    }

    public static JsonArray Array(IEnumerable<JsonNode?> items)
    {
        var a = new JsonArray();
        foreach (var item in items)
        {
            a.Add(item);
        }
        return a;
    }

    /// <summary>Reads the body as a JSON object; a missing, malformed or non-object body is 400.</summary>
    public static async Task<JsonObject> ReadBodyAsync(HttpContext http)
    {
        JsonNode? node;
        try
        {
            node = await RequestJson.ReadAsync(http.Request, http.RequestAborted)
                ?? throw new BadRequestException("The request body is empty or not valid JSON.");
        }
        catch (JsonException ex)
        {
            throw new BadRequestException($"Malformed request body: {ex.Message}");
        }
        return node as JsonObject ?? throw new BadRequestException("Malformed request body: the body must be a JSON object.");
    }

    public static string Describe(JsonNode? node) => node?.ToJsonString() ?? "None";
}
