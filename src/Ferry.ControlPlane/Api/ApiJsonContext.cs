using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Ferry.ControlPlane.Api;

/// <summary>
/// The compute API writes JsonNode trees built by the view builders: Nova's keys
/// (<c>OS-EXT-STS:vm_state</c>, <c>os-flavor-access:is_public</c>) and per-microversion fields fit a tree better than records.
/// </summary>
[JsonSerializable(typeof(JsonNode))]
[JsonSerializable(typeof(JsonObject))]
internal sealed partial class ApiJsonContext : JsonSerializerContext;
