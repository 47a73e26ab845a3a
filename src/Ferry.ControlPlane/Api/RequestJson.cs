using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace Ferry.ControlPlane.Api;

/// <summary>
/// The one JSON reader for request bodies of every API (compute, identity, image, placement). It reads
/// as Python's <c>json.loads</c> does where that is safe — a repeated key keeps its last value — and
/// turns everything a body can get wrong into a <see cref="JsonException"/> that each service answers
/// with its own 400: malformed or truncated text, invalid UTF-8, a lone UTF-16 surrogate escape
/// (<c>"\ud800"</c>, which no store or response can hold), nesting deeper than 64.
/// </summary>
internal static class RequestJson
{
    private static readonly JsonReaderOptions s_options = new() { MaxDepth = 64 };

    /// <summary>The request body as a JSON node; null when the body is empty or only whitespace.</summary>
    public static async Task<JsonNode?> ReadAsync(HttpRequest request, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        await request.Body.CopyToAsync(buffer, ct);
        return Parse(buffer.GetBuffer().AsSpan(0, (int)buffer.Length));
    }

    /// <summary>Parses UTF-8 JSON text; null for empty or whitespace-only text.</summary>
    public static JsonNode? Parse(ReadOnlySpan<byte> utf8)
    {
        if (utf8.Trim(" \t\r\n"u8).IsEmpty)
        {
            return null;
        }
        var reader = new Utf8JsonReader(utf8, s_options);
        try
        {
            reader.Read();
            var node = ReadValue(ref reader);
            // A second top-level value makes the reader throw; anything else after the value is whitespace.
            reader.Read();
            return node;
        }
        catch (InvalidOperationException ex)
        {
            // Utf8JsonReader.GetString: invalid UTF-8 or an unpaired surrogate escape in a string.
            throw new JsonException(ex.Message, ex);
        }
    }

    private static JsonNode? ReadValue(ref Utf8JsonReader reader)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.StartObject:
                var o = new JsonObject();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
                {
                    var key = reader.GetString()!;
                    reader.Read();
                    // Python's json keeps the last of repeated keys; so do Nova, Glance, Keystone and Placement.
                    o[key] = ReadValue(ref reader);
                }
                return o;
            case JsonTokenType.StartArray:
                var a = new JsonArray();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    a.Add(ReadValue(ref reader));
                }
                return a;
            case JsonTokenType.String:
                return JsonValue.Create(reader.GetString()!);
            case JsonTokenType.Number:
                return JsonValue.Create(JsonElement.ParseValue(ref reader));
            case JsonTokenType.True:
                return JsonValue.Create(true);
            case JsonTokenType.False:
                return JsonValue.Create(false);
            case JsonTokenType.Null:
                return null;
            default:
                throw new JsonException($"Unexpected JSON token {reader.TokenType}.");
        }
    }
}
