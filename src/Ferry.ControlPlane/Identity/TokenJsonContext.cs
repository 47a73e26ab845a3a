using System.Text.Json.Serialization;

namespace Ferry.ControlPlane.Identity;

/// <summary>The JSON columns of the <c>tokens</c> table.</summary>
[JsonSerializable(typeof(UserEntry))]
[JsonSerializable(typeof(ProjectEntry))]
[JsonSerializable(typeof(List<RoleEntry>))]
[JsonSerializable(typeof(List<string>))]
internal sealed partial class TokenJsonContext : JsonSerializerContext;
