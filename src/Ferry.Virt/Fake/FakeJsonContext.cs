using System.Text.Json.Serialization;

namespace Ferry.Virt.Fake;

/// <summary>A fake guest's definition file (<c>_run/&lt;host&gt;/&lt;uuid&gt;.json</c>).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true, UseStringEnumConverter = true)]
[JsonSerializable(typeof(FakeGuest))]
internal sealed partial class FakeJsonContext : JsonSerializerContext;
