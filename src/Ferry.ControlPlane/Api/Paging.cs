using System.Text;
using System.Text.Json.Nodes;
using Ferry.Core.Errors;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.ControlPlane.Api;

/// <summary>
/// Nova's list paging (nova/api/openstack/common.py get_limit_and_marker and ViewBuilder._get_collection_links):
/// every paged list returns at most <c>[api] max_limit</c> items, a larger <c>limit</c> is cut to it, and a page
/// that holds as many items as it could carries a <c>next</c> link with the request's parameters and the last
/// item as the marker.
/// </summary>
internal static class Paging
{
    /// <summary>Nova's <c>[api] max_limit</c> default.</summary>
    public const int DefaultMaxLimit = 1000;

    public static int MaxLimit(HttpContext http) => http.RequestServices.GetService<ControlPlaneOptions>()?.MaxLimit ?? DefaultMaxLimit;

    /// <summary>The <c>limit</c> query parameter as given (a non-negative integer, else 400), or null when absent.</summary>
    public static int? RequestedLimit(IQueryCollection q)
    {
        if (q["limit"].FirstOrDefault() is not { } text)
        {
            return null;
        }
        if (!int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var limit))
        {
            // Digits beyond int's range are still a number to Nova; they are cut to max_limit as any large limit.
            if (text.Length > 0 && text.All(char.IsAsciiDigit))
            {
                return int.MaxValue;
            }
            throw new BadRequestException($"Invalid input for query parameters limit. Value: {text}. '{text}' does not match '^[0-9]*$'");
        }
        return limit;
    }

    /// <summary>How many items a page may hold: the requested limit cut to max_limit, or max_limit.</summary>
    public static int Limit(HttpContext http) => Math.Min(RequestedLimit(http.Request.Query) ?? int.MaxValue, MaxLimit(http));

    /// <summary>
    /// The <c>*_links</c> array of a page of <paramref name="count"/> items of at most <paramref name="limit"/>: a
    /// <c>next</c> link when the page is full (Nova cannot tell whether more follow without reading them), else empty.
    /// </summary>
    public static JsonArray Links(HttpContext http, string collection, int count, int limit, string? lastId)
    {
        if (limit == 0 || count != limit || lastId is null)
        {
            return [];
        }
        return new JsonArray(new JsonObject { ["rel"] = "next", ["href"] = NextHref(http, collection, lastId) });
    }

    /// <summary>The request's URL for <paramref name="collection"/> with its parameters sorted by name and <c>marker</c> set to <paramref name="marker"/>.</summary>
    public static string NextHref(HttpContext http, string collection, string marker)
    {
        var parameters = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, values) in http.Request.Query)
        {
            parameters[key] = values.LastOrDefault() ?? "";
        }
        parameters["marker"] = marker;
        var query = new StringBuilder();
        foreach (var (key, value) in parameters)
        {
            query.Append(query.Length == 0 ? '?' : '&').Append(Uri.EscapeDataString(key)).Append('=').Append(Uri.EscapeDataString(value));
        }
        return $"{NovaJson.BaseUrl(http)}/v2.1/{collection}{query}";
    }
}
