using System.Text.Json.Serialization;

namespace Ferry.Virt.Qemu;

/// <summary>The guest spec the driver keeps beside each guest's disk (<c>guest.json</c>), to restart it after power-off or an agent restart.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true)]
[JsonSerializable(typeof(GuestSpec))]
[JsonSerializable(typeof(Dictionary<string, string>))]
internal sealed partial class QemuJsonContext : JsonSerializerContext;
