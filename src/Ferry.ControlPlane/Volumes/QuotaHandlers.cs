using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Volumes;
using Microsoft.AspNetCore.Http;
using static Ferry.ControlPlane.Volumes.VolumeEndpoints;

namespace Ferry.ControlPlane.Volumes;

/// <summary>
/// Cinder's quota reads (<c>os-quota-sets</c>, <c>limits</c>): Cinder's defaults, of which only gigabytes is enforced
/// (<see cref="VolumeHandlers.QuotaGigabytes"/>). <c>openstack quota show</c> and <c>limits show</c> ask every service in
/// the catalog, so without these they fail.
/// </summary>
internal static class QuotaHandlers
{
    /// <summary>Cinder's default quotas (cinder/quota.py), -1 = unlimited.</summary>
    private static JsonObject Defaults(string projectId) => new()
    {
        ["id"] = projectId,
        ["volumes"] = 10,
        ["snapshots"] = 10,
        ["gigabytes"] = VolumeHandlers.QuotaGigabytes,
        ["backups"] = 10,
        ["backup_gigabytes"] = 1000,
        ["groups"] = 10,
        ["per_volume_gigabytes"] = -1,
    };

    /// <summary>GET os-quota-sets/{id}: a project's own, or any for an admin (Cinder's policy); with usage=True, in_use too.</summary>
    public static async Task<IResult> ShowAsync(HttpContext http, string target, VolumeStore store)
    {
        var caller = Caller(http);
        if (!caller.IsAdmin && caller.ProjectId != target)
        {
            throw CinderException.PolicyRefused("volume_extension:quotas:show");
        }
        var quota = Defaults(target);
        if (string.Equals(http.Request.Query["usage"].FirstOrDefault(), "true", StringComparison.OrdinalIgnoreCase))
        {
            var volumes = await store.ListVolumesAsync(target, http.RequestAborted);
            foreach (var key in quota.Select(p => p.Key).Where(k => k != "id").ToList())
            {
                var inUse = key switch { "volumes" => volumes.Count, "gigabytes" => volumes.Sum(v => v.SizeGb), _ => 0 };
                quota[key] = new JsonObject { ["limit"] = quota[key]!.GetValue<int>(), ["in_use"] = inUse, ["reserved"] = 0, ["allocated"] = 0 };
            }
        }
        return Json(new JsonObject { ["quota_set"] = quota });
    }

    public static IResult Defaults(HttpContext http, string target)
    {
        _ = Caller(http);
        return Json(new JsonObject { ["quota_set"] = Defaults(target) });
    }

    /// <summary>GET limits: the caller's project's absolute limits and usage, no rate limits.</summary>
    public static async Task<IResult> LimitsAsync(HttpContext http, VolumeStore store)
    {
        var caller = Caller(http);
        var volumes = await store.ListVolumesAsync(caller.ProjectId, http.RequestAborted);
        var defaults = Defaults(caller.ProjectId);
        return Json(new JsonObject
        {
            ["limits"] = new JsonObject
            {
                ["rate"] = new JsonArray(),
                ["absolute"] = new JsonObject
                {
                    ["maxTotalVolumes"] = defaults["volumes"]!.GetValue<int>(),
                    ["maxTotalSnapshots"] = defaults["snapshots"]!.GetValue<int>(),
                    ["maxTotalVolumeGigabytes"] = defaults["gigabytes"]!.GetValue<int>(),
                    ["maxTotalBackups"] = defaults["backups"]!.GetValue<int>(),
                    ["maxTotalBackupGigabytes"] = defaults["backup_gigabytes"]!.GetValue<int>(),
                    ["totalVolumesUsed"] = volumes.Count,
                    ["totalGigabytesUsed"] = volumes.Sum(v => v.SizeGb),
                    ["totalSnapshotsUsed"] = 0,
                    ["totalBackupsUsed"] = 0,
                    ["totalBackupGigabytesUsed"] = 0,
                },
            },
        });
    }
}
