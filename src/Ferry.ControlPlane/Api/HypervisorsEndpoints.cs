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
        api.MapGet("/os-hypervisors/statistics", Statistics);
        api.MapGet("/os-hypervisors/{id}/uptime", GetUptime);
        api.MapGet("/os-hypervisors/{pattern}/search", (HttpContext http, string pattern, ComputeNodeStore nodes, ServiceStore services, InstanceStore instances, ComputeApi compute) =>
            Search(http, pattern, nodes, services, instances, compute, withServers: false));
        api.MapGet("/os-hypervisors/{pattern}/servers", (HttpContext http, string pattern, ComputeNodeStore nodes, ServiceStore services, InstanceStore instances, ComputeApi compute) =>
            Search(http, pattern, nodes, services, instances, compute, withServers: true));
        return api;
    }

    /// <summary>Nova answers a route its microversion does not serve with a plain 404.</summary>
    private static void RequireVersion(RequestContext ctx, int fromMinor, int toMinor)
    {
        if (!ctx.Version.AtLeast(fromMinor) || ctx.Version.AtLeast(toMinor + 1))
        {
            throw new NotFoundException("The resource could not be found.");
        }
    }

    private static NotFoundException HypervisorNotFound(string id) => new($"Hypervisor with ID '{id}' could not be found.");

    /// <summary>
    /// _validate_id and compute_node_get: a UUID from 2.53 (else 400), an integer before (else 404); the node
    /// must exist and have a nova-compute service.
    /// </summary>
    private static ComputeNode FindNode(RequestContext ctx, string id, ComputeNodeStore nodes)
    {
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
        return node ?? throw HypervisorNotFound(id);
    }

    /// <summary>GET /os-hypervisors/statistics (2.1–2.87): sums over the enabled nova-compute hosts (compute_node_statistics).</summary>
    internal static IResult Statistics(HttpContext http, ComputeNodeStore nodes, ServiceStore services, InstanceStore instances)
    {
        var ctx = RequestContext.Of(http);
        RequireVersion(ctx, 1, 87);
        ctx.RequireAdmin("os_compute_api:os-hypervisors:statistics");
        var enabled = nodes.List().Where(n => services.Find(n.Host, "nova-compute") is { Disabled: false }).ToList();
        var usage = enabled.Select(n => Usage(n, instances.List(host: n.Host))).ToList();
        return NovaJson.Ok(new JsonObject
        {
            ["hypervisor_statistics"] = new JsonObject
            {
                ["count"] = enabled.Count,
                ["vcpus"] = enabled.Sum(n => n.Vcpus),
                ["memory_mb"] = enabled.Sum(n => (long)n.MemoryMb),
                ["local_gb"] = enabled.Sum(n => (long)n.LocalGb),
                ["vcpus_used"] = usage.Sum(u => u.VcpusUsed),
                ["memory_mb_used"] = usage.Sum(u => (long)u.RamUsed),
                ["local_gb_used"] = usage.Sum(u => (long)u.DiskUsed),
                ["free_ram_mb"] = enabled.Zip(usage).Sum(p => (long)p.First.MemoryMb - p.Second.RamUsed),
                ["free_disk_gb"] = enabled.Zip(usage).Sum(p => (long)p.First.LocalGb - p.Second.DiskUsed),
                ["current_workload"] = usage.Sum(u => u.Workload),
                ["running_vms"] = usage.Sum(u => u.Running),
                ["disk_available_least"] = enabled.Zip(usage).Sum(p => (long)p.First.LocalGb - p.Second.DiskUsed),
            },
        });
    }

    /// <summary>
    /// GET /os-hypervisors/{id}/uptime (2.1–2.87): the basic view plus the host's uptime; a host whose compute
    /// service is down cannot answer (400 ComputeServiceUnavailable). From 2.88 the detail view carries it.
    /// </summary>
    internal static IResult GetUptime(HttpContext http, string id, ComputeNodeStore nodes, ServiceStore services, InstanceStore instances, ComputeApi compute)
    {
        var ctx = RequestContext.Of(http);
        RequireVersion(ctx, 1, 87);
        ctx.RequireAdmin("os_compute_api:os-hypervisors:uptime");
        var node = FindNode(ctx, id, nodes);
        if (services.Find(node.Host, "nova-compute") is null)
        {
            throw HypervisorNotFound(id);
        }
        if (!compute.IsComputeUp(node.Host))
        {
            throw new BadRequestException($"Compute service of {node.Host} is unavailable at this time.");
        }
        var view = View(ctx, node, services, instances, compute, detail: false, withServers: false);
        view["uptime"] = Uptime(node.BootedAt, compute.Now);
        return NovaJson.Ok(new JsonObject { ["hypervisor"] = view });
    }

    /// <summary>
    /// GET /os-hypervisors/{pattern}/search and /servers (2.1–2.52): the basic view of every hypervisor whose
    /// hostname contains the pattern (404 when none does); /servers adds the servers on each, when there are any.
    /// </summary>
    internal static IResult Search(HttpContext http, string pattern, ComputeNodeStore nodes, ServiceStore services, InstanceStore instances, ComputeApi compute, bool withServers)
    {
        var ctx = RequestContext.Of(http);
        RequireVersion(ctx, 1, 52);
        ctx.RequireAdmin($"os_compute_api:os-hypervisors:{(withServers ? "servers" : "search")}");
        var matching = nodes.List().Where(n => n.HypervisorHostname.Contains(pattern, StringComparison.OrdinalIgnoreCase)).ToList();
        if (matching.Count == 0)
        {
            throw new NotFoundException($"No hypervisor matching '{pattern}' could be found.");
        }
        var views = matching
            .Where(n => services.Find(n.Host, "nova-compute") is not null)
            .Select(n => (JsonNode?)View(ctx, n, services, instances, compute, detail: false, withServers));
        return NovaJson.Ok(new JsonObject { ["hypervisors"] = NovaJson.Array(views) });
    }

    internal static IResult List(HttpContext http, ComputeNodeStore nodes, ServiceStore services, InstanceStore instances, ComputeApi compute, bool detail)
    {
        var ctx = RequestContext.Of(http);
        ctx.RequireAdmin($"os_compute_api:os-hypervisors:{(detail ? "list-detail" : "list")}");
        var v = ctx.Version;
        var q = http.Request.Query;
        if (v.AtLeast(53))
        {
            QuerySchema.NoAdditional(http, "limit", "marker", "hypervisor_hostname_pattern", "with_servers");
        }
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
            // A node whose compute service was deleted is skipped, as Nova skips it.
            ["hypervisors"] = NovaJson.Array(nodesList.Where(n => services.Find(n.Host, "nova-compute") is not null)
                .Select(n => View(ctx, n, services, instances, compute, detail, withServers))),
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
        if (ctx.Version.AtLeast(53))
        {
            QuerySchema.NoAdditional(http, "with_servers");
        }
        var node = FindNode(ctx, id, nodes);
        if (services.Find(node.Host, "nova-compute") is null)
        {
            throw HypervisorNotFound(id);
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
                // A host that is down cannot report its uptime: Nova shows null.
                o["uptime"] = service is not null && compute.IsUp(service) ? Uptime(n.BootedAt, compute.Now) : null;
            }
            else
            {
                var u = Usage(n, hosted);
                o["vcpus"] = n.Vcpus;
                o["memory_mb"] = n.MemoryMb;
                o["local_gb"] = n.LocalGb;
                o["vcpus_used"] = u.VcpusUsed;
                o["memory_mb_used"] = u.RamUsed;
                o["local_gb_used"] = u.DiskUsed;
                o["free_ram_mb"] = n.MemoryMb - u.RamUsed;
                o["free_disk_gb"] = n.LocalGb - u.DiskUsed;
                o["current_workload"] = u.Workload;
                o["running_vms"] = u.Running;
                o["disk_available_least"] = n.LocalGb - u.DiskUsed;
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
        // Nova lists servers only when there are some, except that from 2.75 a requested list is always there.
        if (withServers && (hosted.Count > 0 || v.AtLeast(75)))
        {
            o["servers"] = NovaJson.Array(hosted.Select(i => (JsonNode?)new JsonObject { ["name"] = i.Name, ["uuid"] = i.Uuid }));
        }
        return o;
    }

    /// <summary>What the resource tracker would report for a node: the instances the database places on it.</summary>
    private static (int VcpusUsed, int RamUsed, int DiskUsed, int Workload, int Running) Usage(ComputeNode n, List<Instance> hosted) =>
        (hosted.Sum(i => i.Flavor.Vcpus),
         hosted.Sum(i => i.Flavor.MemoryMb) + n.ReservedHostMemoryMb,
         hosted.Sum(i => i.VolumeBacked ? i.Flavor.DiskGb - i.Flavor.RootGb : i.Flavor.DiskGb),
         hosted.Count(i => i.TaskState is not null),
         hosted.Count);

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
