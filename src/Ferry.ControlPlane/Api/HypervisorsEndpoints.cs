using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.ControlPlane.Api;

/// <summary>
/// <c>/os-hypervisors</c> (nova/api/openstack/compute/hypervisors.py). Usage figures count the
/// instances the database places on each host; placement is the scheduler's business, not this view's.
/// </summary>
public static class HypervisorsEndpoints
{
    public static RouteGroupBuilder MapHypervisors(this RouteGroupBuilder api)
    {
        api.MapGet("/os-hypervisors", (HttpContext http, ComputeNodeStore nodes, ServiceStore services, InstanceStore instances, ComputeApi compute) =>
            List(http, nodes, services, instances, compute, detail: false));
        api.MapGet("/os-hypervisors/detail", (HttpContext http, ComputeNodeStore nodes, ServiceStore services, InstanceStore instances, ComputeApi compute) =>
            List(http, nodes, services, instances, compute, detail: true));
        api.MapGet("/os-hypervisors/{id}", Show);
        return api;
    }

    internal static IResult List(HttpContext http, ComputeNodeStore nodes, ServiceStore services, InstanceStore instances, ComputeApi compute, bool detail)
    {
        var ctx = RequestContext.Of(http);
        ctx.RequireAdmin($"os_compute_api:os-hypervisors:{(detail ? "list-detail" : "list")}");
        var v = ctx.Version;
        var q = http.Request.Query;
        IEnumerable<ComputeNode> list = nodes.List();
        var pattern = v.AtLeast(53) ? q["hypervisor_hostname_pattern"].FirstOrDefault() : null;
        var withServers = v.AtLeast(53) && q["with_servers"].FirstOrDefault() is { } ws && BodySchema.TryBoolean(ws, out var b) && b;
        if (pattern is not null)
        {
            if (q.ContainsKey("limit") || q.ContainsKey("marker"))
            {
                throw new BadRequestException("Paging over hypervisors with the hypervisor_hostname_pattern query parameter is not supported.");
            }
            list = list.Where(n => n.HypervisorHostname.Contains(pattern, StringComparison.OrdinalIgnoreCase)).ToList();
            if (!list.Any())
            {
                throw new NotFoundException($"No hypervisor matching '{pattern}' could be found.");
            }
        }
        var nodesList = list.ToList();
        int? limit = null;
        if (v.AtLeast(33))
        {
            if (q["marker"].FirstOrDefault() is { } marker)
            {
                var index = nodesList.FindIndex(n => (v.AtLeast(53) ? n.Uuid : n.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)) == marker);
                if (index < 0)
                {
                    throw new BadRequestException($"marker [{marker}] not found");
                }
                nodesList = nodesList[(index + 1)..];
            }
            limit = ServersEndpoints.QueryLimit(q);
            if (limit is { } l)
            {
                nodesList = nodesList.Take(l).ToList();
            }
        }
        var body = new JsonObject
        {
            ["hypervisors"] = NovaJson.Array(nodesList.Select(n => View(ctx, n, services, instances, compute, detail, withServers))),
        };
        if (limit is { } lim && nodesList.Count == lim && lim > 0)
        {
            var last = nodesList[^1];
            body["hypervisors_links"] = new JsonArray(new JsonObject
            {
                ["rel"] = "next",
                ["href"] = $"{NovaJson.BaseUrl(http)}/v2.1/os-hypervisors{(detail ? "/detail" : "")}?limit={lim}&marker={(v.AtLeast(53) ? last.Uuid : last.Id)}",
            });
        }
        return NovaJson.Ok(body);
    }

    internal static IResult Show(HttpContext http, string id, ComputeNodeStore nodes, ServiceStore services, InstanceStore instances, ComputeApi compute)
    {
        var ctx = RequestContext.Of(http);
        ctx.RequireAdmin("os_compute_api:os-hypervisors:show");
        ComputeNode? node;
        if (ctx.Version.AtLeast(53))
        {
            if (!BodySchema.IsUuid(id))
            {
                throw new BadRequestException($"Invalid uuid {id}");
            }
            node = nodes.FindByUuid(id);
        }
        else
        {
            node = int.TryParse(id, out var intId) ? nodes.List().FirstOrDefault(n => n.Id == intId) : null;
        }
        if (node is null)
        {
            throw new NotFoundException($"Hypervisor with ID {id} could not be found.");
        }
        var withServers = ctx.Version.AtLeast(53) && http.Request.Query["with_servers"].FirstOrDefault() is { } ws && BodySchema.TryBoolean(ws, out var b) && b;
        return NovaJson.Ok(new JsonObject { ["hypervisor"] = View(ctx, node, services, instances, compute, detail: true, withServers) });
    }

    private static JsonObject View(RequestContext ctx, ComputeNode n, ServiceStore services, InstanceStore instances, ComputeApi compute, bool detail, bool withServers)
    {
        var v = ctx.Version;
        var service = services.Find(n.Host, "nova-compute");
        var o = new JsonObject
        {
            ["id"] = v.AtLeast(53) ? n.Uuid : n.Id,
            ["hypervisor_hostname"] = n.HypervisorHostname,
            ["state"] = service is not null && compute.IsUp(service) ? "up" : "down",
            ["status"] = service is { Disabled: false } ? "enabled" : "disabled",
        };
        var hosted = instances.List(host: n.Host);
        if (detail)
        {
            o["hypervisor_type"] = n.HypervisorType;
            o["hypervisor_version"] = n.HypervisorVersion;
            o["host_ip"] = n.HostIp;
            o["service"] = new JsonObject
            {
                ["id"] = service is null ? null : v.AtLeast(53) ? service.Uuid : service.Id,
                ["host"] = n.Host,
                ["disabled_reason"] = service?.DisabledReason,
            };
            if (v.AtLeast(88))
            {
                o["uptime"] = Uptime(n.BootedAt, compute.Now);
            }
            else
            {
                var vcpusUsed = hosted.Sum(i => i.Flavor.Vcpus);
                var ramUsed = hosted.Sum(i => i.Flavor.MemoryMb) + n.ReservedHostMemoryMb;
                var diskUsed = hosted.Sum(i => i.VolumeBacked ? i.Flavor.DiskGb - i.Flavor.RootGb : i.Flavor.DiskGb);
                o["vcpus"] = n.Vcpus;
                o["memory_mb"] = n.MemoryMb;
                o["local_gb"] = n.LocalGb;
                o["vcpus_used"] = vcpusUsed;
                o["memory_mb_used"] = ramUsed;
                o["local_gb_used"] = diskUsed;
                o["free_ram_mb"] = n.MemoryMb - ramUsed;
                o["free_disk_gb"] = n.LocalGb - diskUsed;
                o["current_workload"] = hosted.Count(i => i.TaskState is not null);
                o["running_vms"] = hosted.Count;
                o["disk_available_least"] = n.LocalGb - diskUsed;
                var cpu = new JsonObject
                {
                    ["arch"] = n.CpuInfo.Arch,
                    ["model"] = n.CpuInfo.Model,
                    ["vendor"] = n.CpuInfo.Vendor,
                    ["topology"] = new JsonObject { ["sockets"] = 1, ["cores"] = n.Vcpus, ["threads"] = 1 },
                    ["features"] = NovaJson.Array(n.CpuInfo.Features.Select(f => (JsonNode?)f)),
                };
                o["cpu_info"] = v.AtLeast(28) ? cpu : cpu.ToJsonString();
            }
        }
        if (withServers)
        {
            o["servers"] = NovaJson.Array(hosted.Select(i => (JsonNode?)new JsonObject { ["name"] = i.Name, ["uuid"] = i.Uuid }));
        }
        return o;
    }

    /// <summary>
    /// The host's uptime in the format of Linux `uptime`, as Nova reports it (the openstack CLI parses it):
    /// time since the compute agent started, and this machine's load averages.
    /// </summary>
    internal static string? Uptime(DateTimeOffset? bootedAt, DateTimeOffset now)
    {
        if (bootedAt is not { } booted)
        {
            return null;
        }
        var up = now - booted;
        var duration = up.TotalDays >= 1
            ? $"{(int)up.TotalDays} day{((int)up.TotalDays == 1 ? "" : "s")}, {up.Hours,2}:{up.Minutes:00}"
            : up.TotalHours >= 1 ? $"{up.Hours,2}:{up.Minutes:00}" : $"{up.Minutes} min";
        var load = "0.00, 0.00, 0.00";
        try
        {
            var parts = File.ReadAllText("/proc/loadavg").Split(' ');
            load = $"{parts[0]}, {parts[1]}, {parts[2]}";
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return string.Create(System.Globalization.CultureInfo.InvariantCulture, $" {now:HH:mm:ss} up {duration},  1 user,  load average: {load}");
    }
}
