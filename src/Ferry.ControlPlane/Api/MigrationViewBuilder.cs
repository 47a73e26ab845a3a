using System.Text.Json.Nodes;
using Ferry.Core.Domain;
using Microsoft.AspNetCore.Http;

namespace Ferry.ControlPlane.Api;

/// <summary>Migration records as <c>GET /os-migrations</c> and <c>GET /servers/{id}/migrations</c> show them.</summary>
internal static class MigrationViewBuilder
{
    /// <summary>One entry of <c>/os-migrations</c> (nova/api/openstack/compute/migrations.py _output).</summary>
    public static JsonObject OsMigration(HttpContext http, ApiVersion v, Migration m)
    {
        var o = new JsonObject
        {
            ["id"] = m.Id,
            ["instance_uuid"] = m.InstanceUuid,
            ["source_compute"] = m.SourceCompute,
            ["source_node"] = m.SourceNode,
            ["dest_compute"] = m.DestCompute,
            ["dest_node"] = m.DestNode,
            ["dest_host"] = m.DestHost,
            ["status"] = m.Status,
            ["old_instance_type_id"] = m.OldInstanceTypeId,
            ["new_instance_type_id"] = m.NewInstanceTypeId,
            ["created_at"] = NovaJson.Db(m.CreatedAt),
            ["updated_at"] = NovaJson.Db(m.UpdatedAt),
        };
        if (v.AtLeast(59))
        {
            o["uuid"] = m.Uuid;
        }
        if (v.AtLeast(23))
        {
            o["migration_type"] = m.MigrationType;
            if (m.MigrationType == MigrationType.LiveMigration && MigrationStatus.LiveInProgress.Contains(m.Status))
            {
                o["links"] = NovaJson.Links(http, $"servers/{m.InstanceUuid}/migrations/{m.Id}");
            }
        }
        if (v.AtLeast(80))
        {
            o["user_id"] = m.UserId;
            o["project_id"] = m.ProjectId;
        }
        return o;
    }

    /// <summary>An in-progress live migration of one server (server_migrations.py output), with progress bytes.</summary>
    public static JsonObject ServerMigration(ApiVersion v, Migration m)
    {
        var o = new JsonObject
        {
            ["id"] = m.Id,
            ["server_uuid"] = m.InstanceUuid,
            ["status"] = m.Status,
            ["source_compute"] = m.SourceCompute,
            ["source_node"] = m.SourceNode,
            ["dest_compute"] = m.DestCompute,
            ["dest_node"] = m.DestNode,
            ["dest_host"] = m.DestHost,
            ["memory_total_bytes"] = m.MemoryTotal,
            ["memory_processed_bytes"] = m.MemoryProcessed,
            ["memory_remaining_bytes"] = m.MemoryRemaining,
            ["disk_total_bytes"] = m.DiskTotal,
            ["disk_processed_bytes"] = m.DiskProcessed,
            ["disk_remaining_bytes"] = m.DiskRemaining,
            ["created_at"] = NovaJson.Db(m.CreatedAt),
            ["updated_at"] = NovaJson.Db(m.UpdatedAt),
        };
        if (v.AtLeast(59))
        {
            o["uuid"] = m.Uuid;
        }
        if (v.AtLeast(80))
        {
            o["user_id"] = m.UserId;
            o["project_id"] = m.ProjectId;
        }
        return o;
    }
}
