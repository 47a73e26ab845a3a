using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Microsoft.AspNetCore.Http;

namespace Ferry.ControlPlane.Api;

/// <summary>Nova's views/servers.py: the basic and detailed server representations per microversion.</summary>
internal sealed class ServerViewBuilder(ActionStore actions, ServiceStore services, ComputeApi api)
{
    private static readonly HashSet<string> s_progressStatuses = ["ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"];

    public static JsonObject Basic(HttpContext http, Instance instance) => new()
    {
        ["id"] = instance.Uuid,
        ["name"] = instance.DisplayName,
        ["links"] = NovaJson.Links(http, $"servers/{instance.Uuid}"),
    };

    /// <summary>
    /// The detailed views of a page of servers, with what they need from other tables (each host's compute service,
    /// the faults of failed servers) read in one query each for the whole page, not one per server.
    /// </summary>
    public async Task<IEnumerable<JsonNode?>> DetailListAsync(HttpContext http, RequestContext ctx, List<Instance> page)
    {
        var hosts = page.Where(i => i.Host is not null).Select(i => i.Host!).ToList();
        var computes = hosts.Count == 0 ? [] : await services.FindByHostsAsync(hosts, "nova-compute", http.RequestAborted);
        var failed = page.Where(i => i.VmState is VmState.Error or VmState.Deleted).Select(i => i.Uuid).ToList();
        var faults = failed.Count == 0 ? [] : await actions.LatestFaultsAsync(failed, http.RequestAborted);
        return page.Select(i => (JsonNode?)Detail(http, ctx, i, show: false, computes.GetValueOrDefault, faults.GetValueOrDefault));
    }

    public async Task<JsonObject> DetailAsync(HttpContext http, RequestContext ctx, Instance i, bool show = true)
    {
        // Only a failed server shows its latest fault: read it up front, as the list does for its page.
        var fault = i.VmState is VmState.Error or VmState.Deleted ? await actions.LatestFaultAsync(i.Uuid, http.RequestAborted) : null;
        // Only an admin's view from 2.16 shows host_status, which needs the host's compute service.
        var computeService = ctx.Version.AtLeast(16) && ctx.IsAdmin && i.Host is { } host
            ? await services.FindAsync(host, "nova-compute", http.RequestAborted)
            : null;
        return Detail(http, ctx, i, show, _ => computeService, _ => fault);
    }

    private JsonObject Detail(HttpContext http, RequestContext ctx, Instance i, bool show, Func<string, Service?> computeService, Func<string, InstanceFaultRow?> latestFault)
    {
        var v = ctx.Version;
        var status = StateNames.ServerStatus(i.VmState, i.TaskState);
        var server = new JsonObject
        {
            ["id"] = i.Uuid,
            ["name"] = i.DisplayName,
            ["status"] = status,
            ["tenant_id"] = i.ProjectId,
            ["user_id"] = i.UserId,
            ["metadata"] = NovaJson.ToJson(i.Metadata),
            ["hostId"] = HostId(i.ProjectId, i.Host),
            ["image"] = i.VolumeBacked || i.ImageRef.Length == 0
                ? ""
                : new JsonObject { ["id"] = i.ImageRef, ["links"] = new JsonArray(new JsonObject { ["rel"] = "bookmark", ["href"] = $"{NovaJson.BaseUrl(http)}/images/{i.ImageRef}" }) },
            ["flavor"] = Flavor(http, v, i.Flavor),
            ["created"] = NovaJson.IsoZ(i.CreatedAt),
            ["updated"] = NovaJson.IsoZ(i.UpdatedAt),
            ["addresses"] = Addresses(i, extended: true),
            ["accessIPv4"] = "",
            ["accessIPv6"] = "",
            ["links"] = NovaJson.Links(http, $"servers/{i.Uuid}"),
            ["OS-DCF:diskConfig"] = "MANUAL",
            ["OS-EXT-AZ:availability_zone"] = i.AvailabilityZone,
            ["config_drive"] = i.ConfigDrive ? "True" : "",
            ["key_name"] = i.KeyName,
            ["OS-EXT-STS:task_state"] = i.TaskState.ToNova(),
            ["OS-EXT-STS:vm_state"] = i.VmState.ToNova(),
            ["OS-EXT-STS:power_state"] = (int)i.PowerState,
            ["OS-SRV-USG:launched_at"] = NovaJson.Db(i.LaunchedAt),
            ["OS-SRV-USG:terminated_at"] = NovaJson.Db(i.TerminatedAt),
            // 2.3 adds delete_on_termination (extended_volumes.py).
            ["os-extended-volumes:volumes_attached"] = NovaJson.Array(i.BlockDevices.Where(b => b.HasVolume).OrderBy(b => b.DeviceName, StringComparer.Ordinal)
                .Select(b => v.AtLeast(3) ? new JsonObject { ["id"] = b.VolumeId, ["delete_on_termination"] = b.DeleteOnTermination } : new JsonObject { ["id"] = b.VolumeId })),
            // No security_groups: Nova lists the groups of the server's ports, and a Ferry server has
            // none (as with Nova's networks=none), so the key is absent, as in nova-cli-session.txt.
        };
        if (s_progressStatuses.Contains(status))
        {
            server["progress"] = i.Progress;
        }
        if (ctx.IsAdmin)
        {
            server["OS-EXT-SRV-ATTR:host"] = i.Host;
            server["OS-EXT-SRV-ATTR:hypervisor_hostname"] = i.Node;
            server["OS-EXT-SRV-ATTR:instance_name"] = i.Name;
            if (v.AtLeast(3))
            {
                server["OS-EXT-SRV-ATTR:reservation_id"] = $"r-{i.Uuid[..8]}";
                server["OS-EXT-SRV-ATTR:launch_index"] = 0;
                server["OS-EXT-SRV-ATTR:kernel_id"] = "";
                server["OS-EXT-SRV-ATTR:ramdisk_id"] = "";
                server["OS-EXT-SRV-ATTR:root_device_name"] = i.VolumeBacked ? "/dev/vda" : "/dev/sda";
                server["OS-EXT-SRV-ATTR:user_data"] = i.UserData;
            }
        }
        if (v.AtLeast(3) && (ctx.IsAdmin || v.AtLeast(90)))
        {
            server["OS-EXT-SRV-ATTR:hostname"] = Hostname(i.DisplayName);
        }
        if (v.AtLeast(9))
        {
            server["locked"] = i.Locked;
        }
        if (v.AtLeast(73))
        {
            server["locked_reason"] = i.LockedReason;
        }
        if (v.AtLeast(19))
        {
            server["description"] = null;
        }
        if (v.AtLeast(26))
        {
            server["tags"] = new JsonArray();
        }
        if (v.AtLeast(63))
        {
            server["trusted_image_certificates"] = null;
        }
        // From 2.71 in show (and update/rebuild answers), never in the list's detail view (views/servers.py).
        if (v.AtLeast(71) && show)
        {
            server["server_groups"] = i.ServerGroupUuid is { } g ? new JsonArray(g) : new JsonArray();
        }
        if (v.AtLeast(16) && ctx.IsAdmin)
        {
            server["host_status"] = HostStatus(i.Host, computeService);
        }
        if (i.VmState is VmState.Error or VmState.Deleted && latestFault(i.Uuid) is { } fault)
        {
            var f = new JsonObject
            {
                ["code"] = fault.Code,
                ["created"] = NovaJson.IsoZ(DateTimeOffset.Parse(fault.CreatedAt, System.Globalization.CultureInfo.InvariantCulture)),
                ["message"] = fault.Message,
            };
            if (ctx.IsAdmin || fault.Code != 500)
            {
                f["details"] = fault.Details;
            }
            server["fault"] = f;
        }
        return server;
    }

    /// <summary>host_status (≥2.16): UP, DOWN, MAINTENANCE (service disabled), UNKNOWN, or "" without a host.</summary>
    private string HostStatus(string? host, Func<string, Service?> computeService)
    {
        if (host is null)
        {
            return "";
        }
        var service = computeService(host);
        if (service is null)
        {
            return "UNKNOWN";
        }
        if (!api.IsUp(service))
        {
            return "DOWN";
        }
        return service.Disabled ? "MAINTENANCE" : "UP";
    }

    public static JsonObject Flavor(HttpContext http, ApiVersion v, Flavor flavor) =>
        v.AtLeast(47)
            ? new JsonObject
            {
                ["vcpus"] = flavor.Vcpus,
                ["ram"] = flavor.MemoryMb,
                ["disk"] = flavor.RootGb,
                ["ephemeral"] = flavor.EphemeralGb,
                ["swap"] = flavor.SwapMb,
                ["original_name"] = flavor.Name,
                ["extra_specs"] = NovaJson.ToJson(flavor.ExtraSpecs),
            }
            : new JsonObject
            {
                ["id"] = flavor.Id,
                ["links"] = new JsonArray(new JsonObject { ["rel"] = "bookmark", ["href"] = $"{NovaJson.BaseUrl(http)}/flavors/{flavor.Id}" }),
            };

    /// <summary>hostId: an opaque per-project hash of the host (Nova uses sha224; 56 hex digits of sha256 here).</summary>
    public static string HostId(string projectId, string? host) =>
        host is null ? "" : Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(projectId + host)))[..56];

    private static string Hostname(string displayName)
    {
        var chars = displayName.ToLowerInvariant().Select(c => char.IsAsciiLetterOrDigit(c) || c == '-' ? c : '-').ToArray();
        var name = new string(chars).Trim('-');
        return name.Length == 0 ? "server" : name[..Math.Min(name.Length, 63)];
    }

    /// <summary>
    /// Nova's addresses view: the server's fixed IPs under their network's name, from its info cache; with
    /// <paramref name="extended"/> (server show and detail) each carries its type and the port's MAC.
    /// </summary>
    internal static JsonObject Addresses(Instance i, bool extended)
    {
        var addresses = new JsonObject();
        foreach (var vif in i.NetworkInfo)
        {
            if (addresses[vif.NetworkLabel] is not JsonArray list)
            {
                addresses[vif.NetworkLabel] = list = new JsonArray();
            }
            foreach (var ip in vif.Ips)
            {
                var entry = new JsonObject { ["version"] = 4, ["addr"] = ip.Address };
                if (extended)
                {
                    entry["OS-EXT-IPS:type"] = "fixed";
                    entry["OS-EXT-IPS-MAC:mac_addr"] = vif.MacAddress;
                }
                list.Add((JsonNode)entry);
            }
        }
        return addresses;
    }
}
