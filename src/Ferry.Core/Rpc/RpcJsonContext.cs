using System.Text.Json.Serialization;
using Ferry.Core.Domain;
using Ferry.Core.Rpc.Compute;
using Ferry.Core.Rpc.Conductor;
using Ferry.Core.Rpc.Scheduler;

namespace Ferry.Core.Rpc;

/// <summary>Source-generated serializers for everything that crosses a topic.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(RpcError))]
[JsonSerializable(typeof(RpcEmpty))]
[JsonSerializable(typeof(Instance))]
[JsonSerializable(typeof(Migration))]
[JsonSerializable(typeof(ComputeNode))]
[JsonSerializable(typeof(LiveMigrateData))]
[JsonSerializable(typeof(BuildAndRunInstanceRequest))]
[JsonSerializable(typeof(InstanceRequest))]
[JsonSerializable(typeof(CheckCanLiveMigrateDestinationRequest))]
[JsonSerializable(typeof(CheckCanLiveMigrateSourceRequest))]
[JsonSerializable(typeof(LiveMigrationRequest))]
[JsonSerializable(typeof(PreLiveMigrationRequest))]
[JsonSerializable(typeof(PostLiveMigrationAtDestinationRequest))]
[JsonSerializable(typeof(RollbackLiveMigrationAtDestinationRequest))]
[JsonSerializable(typeof(LiveMigrationAbortRequest))]
[JsonSerializable(typeof(PrepResizeRequest))]
[JsonSerializable(typeof(ResizeInstanceRequest))]
[JsonSerializable(typeof(FinishResizeRequest))]
[JsonSerializable(typeof(MigrationRequest))]
[JsonSerializable(typeof(RebuildInstanceRequest))]
[JsonSerializable(typeof(CheckInstanceSharedStorageRequest))]
[JsonSerializable(typeof(BoolReply))]
[JsonSerializable(typeof(ConsoleOutputRequest))]
[JsonSerializable(typeof(ConsoleOutputReply))]
[JsonSerializable(typeof(BuildInstanceRequest))]
[JsonSerializable(typeof(LiveMigrateInstanceRequest))]
[JsonSerializable(typeof(MigrateServerRequest))]
[JsonSerializable(typeof(EvacuateRequest))]
[JsonSerializable(typeof(ServiceReportRequest))]
[JsonSerializable(typeof(ServiceReportReply))]
[JsonSerializable(typeof(ComputeNodeUpdateRequest))]
[JsonSerializable(typeof(InstanceGetRequest))]
[JsonSerializable(typeof(InstancesByHostRequest))]
[JsonSerializable(typeof(InstanceList))]
[JsonSerializable(typeof(InstanceUpdateRequest))]
[JsonSerializable(typeof(MigrationGetRequest))]
[JsonSerializable(typeof(MigrationUpdateRequest))]
[JsonSerializable(typeof(MigrationsByHostRequest))]
[JsonSerializable(typeof(MigrationList))]
[JsonSerializable(typeof(ActionEventRequest))]
[JsonSerializable(typeof(InstanceFaultRequest))]
[JsonSerializable(typeof(SelectDestinationsRequest))]
[JsonSerializable(typeof(SelectDestinationsReply))]
public sealed partial class RpcJsonContext : JsonSerializerContext;
