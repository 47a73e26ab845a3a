using Ferry.Core.Errors;
using Microsoft.AspNetCore.Http;

namespace Ferry.ControlPlane.Api;

/// <summary>Nova's query-string schemas with <c>additionalProperties: False</c> (from the microversion that blocked extras).</summary>
internal static class QuerySchema
{
    /// <summary>400 naming every parameter the schema does not list; an error at the schema's root has no field path in Nova's message.</summary>
    public static void NoAdditional(HttpContext http, params string[] allowed)
    {
        var extra = http.Request.Query.Keys.Where(key => !allowed.Contains(key)).ToList();
        if (extra.Count > 0)
        {
            throw new BadRequestException(
                $"Additional properties are not allowed ({string.Join(", ", extra.Select(e => $"'{e}'"))} {(extra.Count == 1 ? "was" : "were")} unexpected)");
        }
    }
}
