using System.Text.Json.Serialization;
using Ferry.Core.Domain;

namespace Ferry.ControlPlane.Persistence;

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(Instance))]
[JsonSerializable(typeof(Migration))]
[JsonSerializable(typeof(Flavor))]
[JsonSerializable(typeof(Image))]
[JsonSerializable(typeof(Service))]
[JsonSerializable(typeof(ComputeNode))]
[JsonSerializable(typeof(List<string>))]
[JsonSerializable(typeof(Ferry.Core.Networking.Network))]
[JsonSerializable(typeof(Ferry.Core.Networking.Subnet))]
[JsonSerializable(typeof(Ferry.Core.Networking.Port))]
[JsonSerializable(typeof(Ferry.Core.Networking.PortBinding))]
[JsonSerializable(typeof(Ferry.Core.Volumes.Volume))]
[JsonSerializable(typeof(Ferry.Core.Volumes.VolumeAttachment))]
internal sealed partial class PersistenceJsonContext : JsonSerializerContext;
