using System.Text.Json;
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
            ListAsync(http, nodes, services, instances, compute, detail: false));
        api.MapGet("/os-hypervisors/detail", (HttpContext http, ComputeNodeStore nodes, ServiceStore services, InstanceStore instances, ComputeApi compute) =>
            ListAsync(http, nodes, services, instances, compute, detail: true));
        api.MapGet("/os-hypervisors/{id}", ShowAsync);
        api.MapGet("/os-hypervisors/statistics", StatisticsAsync);
        api.MapGet("/os-hypervisors/{id}/uptime", GetUptimeAsync);
        api.MapGet("/os-hypervisors/{pattern}/search", (HttpContext http, string pattern, ComputeNodeStore nodes, ServiceStore services, InstanceStore instances, ComputeApi compute) =>
            SearchAsync(http, pattern, nodes, services, instances, compute, withServers: false));
        api.MapGet("/os-hypervisors/{pattern}/servers", (HttpContext http, string pattern, ComputeNodeStore nodes, ServiceStore services, InstanceStore instances, ComputeApi compute) =>
            SearchAsync(http, pattern, nodes, services, instances, compute, withServers: true));
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
    private static async Task<ComputeNode> FindNodeAsync(RequestContext ctx, string id, ComputeNodeStore nodes, CancellationToken cancellationToken)
    {
        ComputeNode? node;
        if (ctx.Version.AtLeast(53))
        {
            if (!BodySchema.IsUuid(id))
            {
                throw new BadRequestException($"Invalid uuid {id}");
            }
            node = await nodes.FindByUuidAsync(id, cancellationToken);
        }
        else
        {
            node = int.TryParse(id, out var intId) ? await nodes.FindByIdAsync(intId, cancellationToken) : null;
        }
        return node ?? throw HypervisorNotFound(id);
    }

    /// <summary>GET /os-hypervisors/statistics (2.1–2.87): sums over the enabled nova-compute hosts (compute_node_statistics).</summary>
    internal static async Task<IResult> StatisticsAsync(HttpContext http, ComputeNodeStore nodes, ServiceStore services, InstanceStore instances)
    {
        var ctx = RequestContext.Of(http);
        RequireVersion(ctx, 1, 87);
        ctx.RequireAdmin("os_compute_api:os-hypervisors:statistics");
        var computes = await ComputeServicesAsync(services, http.RequestAborted);
        var usedByHost = await instances.UsageByHostAsync(null, http.RequestAborted);
        var enabled = (await nodes.ListAsync(http.RequestAborted)).Where(n => computes.TryGetValue(n.Host, out var s) && !s.Disabled).ToList();
        var usage = enabled.Select(n => Usage(n, usedByHost.GetValueOrDefault(n.Host))).ToList();
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
    internal static async Task<IResult> GetUptimeAsync(HttpContext http, string id, ComputeNodeStore nodes, ServiceStore services, InstanceStore instances, ComputeApi compute)
    {
        var ctx = RequestContext.Of(http);
        RequireVersion(ctx, 1, 87);
        ctx.RequireAdmin("os_compute_api:os-hypervisors:uptime");
        var node = await FindNodeAsync(ctx, id, nodes, http.RequestAborted);
        if (await services.FindAsync(node.Host, "nova-compute", http.RequestAborted) is null)
        {
            throw HypervisorNotFound(id);
        }
        if (!await compute.IsComputeUpAsync(node.Host, http.RequestAborted))
        {
            throw new BadRequestException($"Compute service of {node.Host} is unavailable at this time.");
        }
        var views = new ViewWriter(ctx, await HostFacts.OfAsync(node.Host, services, instances, withServers: false, http.RequestAborted), compute, detail: false, withServers: false);
        return NovaJson.Ok(w => views.WriteOne(w, node, withUptime: true));
    }

    /// <summary>
    /// GET /os-hypervisors/{pattern}/search and /servers (2.1–2.52): the basic view of every hypervisor whose
    /// hostname contains the pattern (404 when none does); /servers adds the servers on each, when there are any.
    /// </summary>
    internal static async Task<IResult> SearchAsync(HttpContext http, string pattern, ComputeNodeStore nodes, ServiceStore services, InstanceStore instances, ComputeApi compute, bool withServers)
    {
        var ctx = RequestContext.Of(http);
        RequireVersion(ctx, 1, 52);
        ctx.RequireAdmin($"os_compute_api:os-hypervisors:{(withServers ? "servers" : "search")}");
        var matching = (await nodes.ListAsync(http.RequestAborted)).Where(n => n.HypervisorHostname.Contains(pattern, StringComparison.OrdinalIgnoreCase)).ToList();
        if (matching.Count == 0)
        {
            throw new NotFoundException($"No hypervisor matching '{pattern}' could be found.");
        }
        var facts = await HostFacts.LoadAsync(services, instances, withServers ? matching.Select(n => n.Host).ToList() : null, http.RequestAborted);
        var views = new ViewWriter(ctx, facts, compute, detail: false, withServers);
        return NovaJson.Ok(w => views.WriteList(w, matching.Where(n => facts.Services.ContainsKey(n.Host)), links: null));
    }

    internal static async Task<IResult> ListAsync(HttpContext http, ComputeNodeStore nodes, ServiceStore services, InstanceStore instances, ComputeApi compute, bool detail)
    {
        var ctx = RequestContext.Of(http);
        ctx.RequireAdmin($"os_compute_api:os-hypervisors:{(detail ? "list-detail" : "list")}");
        var v = ctx.Version;
        var q = http.Request.Query;
        if (v.AtLeast(53))
        {
            QuerySchema.NoAdditional(http, "limit", "marker", "hypervisor_hostname_pattern", "with_servers");
        }
        var pattern = v.AtLeast(53) ? q["hypervisor_hostname_pattern"].FirstOrDefault() : null;
        var withServers = v.AtLeast(53) && q["with_servers"].FirstOrDefault() is { } ws && BodySchema.TryBoolean(ws, out var b) && b;
        List<ComputeNode> page;
        int? limit = null;
        if (pattern is not null)
        {
            if (q.ContainsKey("limit") || q.ContainsKey("marker"))
            {
                throw new BadRequestException("Paging over hypervisors with the hypervisor_hostname_pattern query parameter is not supported.");
            }
            page = (await nodes.ListAsync(http.RequestAborted)).Where(n => n.HypervisorHostname.Contains(pattern, StringComparison.OrdinalIgnoreCase)).ToList();
            if (page.Count == 0)
            {
                throw new NotFoundException($"No hypervisor matching '{pattern}' could be found.");
            }
        }
        else if (v.AtLeast(33))
        {
            // One page in id order from the marker's id on (Nova's compute_node_get_all_by_pagination), at most max_limit.
            int? after = null;
            if (q["marker"].FirstOrDefault() is { } marker)
            {
                var markerNode = v.AtLeast(53)
                    ? await nodes.FindByUuidAsync(marker, http.RequestAborted)
                    : int.TryParse(marker, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var markerId)
                        ? await nodes.FindByIdAsync(markerId, http.RequestAborted)
                        : null;
                after = markerNode?.Id ?? throw new BadRequestException($"marker [{marker}] not found");
            }
            limit = Paging.Limit(http);
            page = await nodes.ListPageAsync(after, limit, http.RequestAborted);
        }
        else
        {
            page = await nodes.ListPageAsync(afterId: null, limit: null, http.RequestAborted);
        }
        // Three queries for the whole page (nodes, services, usage; a fourth for with_servers), never one per node.
        // A page reads the services and usage of its own hosts (index seeks); the whole list reads them all at once.
        var facts = limit is null
            ? await HostFacts.LoadAsync(services, instances, withServers ? page.Select(n => n.Host).ToList() : null, http.RequestAborted)
            : await HostFacts.LoadForAsync(page.Select(n => n.Host).ToList(), services, instances, withServers, http.RequestAborted);
        // A node whose compute service was deleted is skipped, as Nova skips it (and, as Nova, counted out of the page).
        var shown = page.Where(n => facts.Services.ContainsKey(n.Host)).ToList();
        JsonArray? links = null;
        if (limit is { } lim)
        {
            var last = shown.Count > 0 ? shown[^1] : null;
            var lastId = last is null ? null : v.AtLeast(53) ? last.Uuid : last.Id.ToString(System.Globalization.CultureInfo.InvariantCulture);
            links = Paging.Links(http, detail ? "os-hypervisors/detail" : "os-hypervisors", shown.Count, lim, lastId);
        }
        var views = new ViewWriter(ctx, facts, compute, detail, withServers);
        return NovaJson.Ok(w => views.WriteList(w, shown, links));
    }

    internal static async Task<IResult> ShowAsync(HttpContext http, string id, ComputeNodeStore nodes, ServiceStore services, InstanceStore instances, ComputeApi compute)
    {
        var ctx = RequestContext.Of(http);
        ctx.RequireAdmin("os_compute_api:os-hypervisors:show");
        if (ctx.Version.AtLeast(53))
        {
            QuerySchema.NoAdditional(http, "with_servers");
        }
        var node = await FindNodeAsync(ctx, id, nodes, http.RequestAborted);
        var withServers = ctx.Version.AtLeast(53) && http.Request.Query["with_servers"].FirstOrDefault() is { } ws && BodySchema.TryBoolean(ws, out var b) && b;
        var facts = await HostFacts.OfAsync(node.Host, services, instances, withServers, http.RequestAborted);
        if (!facts.Services.ContainsKey(node.Host))
        {
            throw HypervisorNotFound(id);
        }
        var views = new ViewWriter(ctx, facts, compute, detail: true, withServers);
        return NovaJson.Ok(w => views.WriteOne(w, node));
    }

    /// <summary>
    /// Writes hypervisor views straight to the response (all 10,000 hosts of a cloud are ~7 MB of JSON, a tree of
    /// JsonNodes for them cost more than reading them). Keys in Nova's order.
    /// </summary>
    private sealed class ViewWriter(RequestContext ctx, HostFacts facts, ComputeApi compute, bool detail, bool withServers)
    {
        private readonly ApiVersion _v = ctx.Version;
        private (CpuInfo Cpu, int Vcpus, string Text)? _lastCpuInfo; // hosts of a cloud mostly share a CPU: its text is made once
        private string? _loadAverages; // read once for a list, not once a host

        private string? Uptime(ComputeNode n) => HypervisorsEndpoints.Uptime(n.BootedAt, compute.Now, _loadAverages ??= LoadAverages());

        /// <summary><c>{"hypervisors": [...], "hypervisors_links": [...]}</c>; links absent, not empty, without a next page (as Nova).</summary>
        public void WriteList(Utf8JsonWriter w, IEnumerable<ComputeNode> nodes, JsonArray? links)
        {
            w.WriteStartObject();
            w.WriteStartArray("hypervisors");
            foreach (var n in nodes)
            {
                Write(w, n);
            }
            w.WriteEndArray();
            if (links is { Count: > 0 })
            {
                w.WritePropertyName("hypervisors_links");
                links.WriteTo(w);
            }
            w.WriteEndObject();
        }

        /// <summary><c>{"hypervisor": {...}}</c>; GET …/uptime (<paramref name="withUptime"/>) adds the host's uptime last.</summary>
        public void WriteOne(Utf8JsonWriter w, ComputeNode n, bool withUptime = false)
        {
            w.WriteStartObject();
            w.WritePropertyName("hypervisor");
            Write(w, n, withUptime);
            w.WriteEndObject();
        }

        private void Write(Utf8JsonWriter w, ComputeNode n, bool withUptime = false)
        {
            var service = facts.Services.GetValueOrDefault(n.Host);
            var up = service is not null && compute.IsUp(service);
            w.WriteStartObject();
            if (_v.AtLeast(53))
            {
                w.WriteString("id", n.Uuid);
            }
            else
            {
                w.WriteNumber("id", n.Id);
            }
            w.WriteString("hypervisor_hostname", n.HypervisorHostname);
            w.WriteString("state", up ? "up" : "down");
            w.WriteString("status", service is { Disabled: false } ? "enabled" : "disabled");
            if (detail)
            {
                WriteDetail(w, n, service, up);
            }
            // Nova lists servers only when there are some, except that from 2.75 a requested list is always there.
            var hosted = facts.Hosted?.GetValueOrDefault(n.Host) ?? [];
            if (withServers && (hosted.Count > 0 || _v.AtLeast(75)))
            {
                w.WriteStartArray("servers");
                foreach (var (id, uuid) in hosted)
                {
                    // Instance.Name is instance-%08x of the id: the view needs no more of the row than (id, uuid).
                    w.WriteStartObject();
                    w.WriteString("name", $"instance-{id:x8}");
                    w.WriteString("uuid", uuid);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            if (withUptime)
            {
                w.WriteString("uptime", Uptime(n));
            }
            w.WriteEndObject();
        }

        private void WriteDetail(Utf8JsonWriter w, ComputeNode n, Service? service, bool up)
        {
            w.WriteString("hypervisor_type", n.HypervisorType);
            w.WriteNumber("hypervisor_version", n.HypervisorVersion);
            w.WriteString("host_ip", n.HostIp);
            w.WriteStartObject("service");
            if (service is null)
            {
                w.WriteNull("id");
            }
            else if (_v.AtLeast(53))
            {
                w.WriteString("id", service.Uuid);
            }
            else
            {
                w.WriteNumber("id", service.Id);
            }
            w.WriteString("host", n.Host);
            w.WriteString("disabled_reason", service?.DisabledReason);
            w.WriteEndObject();
            if (_v.AtLeast(88))
            {
                // A host that is down cannot report its uptime: Nova shows null.
                w.WriteString("uptime", up ? Uptime(n) : null);
                return;
            }
            var u = Usage(n, facts.Usage.GetValueOrDefault(n.Host));
            w.WriteNumber("vcpus", n.Vcpus);
            w.WriteNumber("memory_mb", n.MemoryMb);
            w.WriteNumber("local_gb", n.LocalGb);
            w.WriteNumber("vcpus_used", u.VcpusUsed);
            w.WriteNumber("memory_mb_used", u.RamUsed);
            w.WriteNumber("local_gb_used", u.DiskUsed);
            w.WriteNumber("free_ram_mb", n.MemoryMb - u.RamUsed);
            w.WriteNumber("free_disk_gb", n.LocalGb - u.DiskUsed);
            w.WriteNumber("current_workload", u.Workload);
            w.WriteNumber("running_vms", u.Running);
            w.WriteNumber("disk_available_least", n.LocalGb - u.DiskUsed);
            w.WritePropertyName("cpu_info");
            if (_v.AtLeast(28))
            {
                WriteCpuInfo(w, n);
            }
            else
            {
                w.WriteStringValue(CpuInfoText(n)); // before 2.28 an object serialized into a string
            }
        }

        private static void WriteCpuInfo(Utf8JsonWriter w, ComputeNode n)
        {
            w.WriteStartObject();
            w.WriteString("arch", n.CpuInfo.Arch);
            w.WriteString("model", n.CpuInfo.Model);
            w.WriteString("vendor", n.CpuInfo.Vendor);
            w.WriteStartObject("topology");
            w.WriteNumber("sockets", 1);
            w.WriteNumber("cores", n.Vcpus);
            w.WriteNumber("threads", 1);
            w.WriteEndObject();
            w.WriteStartArray("features");
            foreach (var feature in n.CpuInfo.Features)
            {
                w.WriteStringValue(feature);
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }

        private string CpuInfoText(ComputeNode n)
        {
            if (_lastCpuInfo is { } last && last.Vcpus == n.Vcpus && last.Cpu.Arch == n.CpuInfo.Arch && last.Cpu.Model == n.CpuInfo.Model
                && last.Cpu.Vendor == n.CpuInfo.Vendor && last.Cpu.Features.SequenceEqual(n.CpuInfo.Features))
            {
                return last.Text;
            }
            var buffer = new System.Buffers.ArrayBufferWriter<byte>();
            using (var cpu = new Utf8JsonWriter(buffer))
            {
                WriteCpuInfo(cpu, n);
            }
            var text = System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
            _lastCpuInfo = (n.CpuInfo, n.Vcpus, text);
            return text;
        }
    }

    /// <summary>What the resource tracker would report for a node: the instances the database places on it.</summary>
    private static (long VcpusUsed, long RamUsed, long DiskUsed, long Workload, long Running) Usage(ComputeNode n, HostUsage? used) =>
        used is null
            ? (0, n.ReservedHostMemoryMb, 0, 0, 0)
            : (used.Vcpus, used.MemoryMb + n.ReservedHostMemoryMb, used.DiskGb, used.Busy, used.Count);

    private static async Task<Dictionary<string, Service>> ComputeServicesAsync(ServiceStore services, CancellationToken cancellationToken) =>
        (await services.ListAsync(cancellationToken, binary: "nova-compute")).ToDictionary(s => s.Host, StringComparer.Ordinal);

    /// <summary>What the views need beside the nodes, read once per request: compute services and usage by host, and (with_servers) the instances on each.</summary>
    private sealed record HostFacts(
        IReadOnlyDictionary<string, Service> Services,
        IReadOnlyDictionary<string, HostUsage> Usage,
        IReadOnlyDictionary<string, List<(int Id, string Uuid)>>? Hosted)
    {
        public static async Task<HostFacts> LoadAsync(ServiceStore services, InstanceStore instances, IReadOnlyCollection<string>? serversOf,
            CancellationToken cancellationToken) =>
            new(await ComputeServicesAsync(services, cancellationToken), await instances.UsageByHostAsync(null, cancellationToken),
                serversOf is null ? null : await instances.ListIdsByHostAsync(serversOf, cancellationToken));

        public static async Task<HostFacts> LoadForAsync(List<string> hosts, ServiceStore services, InstanceStore instances, bool withServers,
            CancellationToken cancellationToken) =>
            new(await services.FindByHostsAsync(hosts, "nova-compute", cancellationToken), await instances.UsageByHostAsync(hosts, cancellationToken),
                withServers ? await instances.ListIdsByHostAsync(hosts, cancellationToken) : null);

        /// <summary>The facts of one host (show, uptime): the same index reads as a page of one.</summary>
        public static Task<HostFacts> OfAsync(string host, ServiceStore services, InstanceStore instances, bool withServers, CancellationToken cancellationToken) =>
            LoadForAsync([host], services, instances, withServers, cancellationToken);
    }

    /// <summary>
    /// The host's uptime in the format of Linux `uptime`, as Nova reports it (the openstack CLI parses it):
    /// time since the compute agent started, and this machine's load averages (<see cref="LoadAverages"/>).
    /// </summary>
    internal static string? Uptime(DateTimeOffset? bootedAt, DateTimeOffset now, string loadAverages)
    {
        if (bootedAt is not { } booted)
        {
            return null;
        }
        var up = now - booted;
        var duration = up.TotalDays >= 1
            ? $"{(int)up.TotalDays} day{((int)up.TotalDays == 1 ? "" : "s")}, {up.Hours,2}:{up.Minutes:00}"
            : up.TotalHours >= 1 ? $"{up.Hours,2}:{up.Minutes:00}" : $"{up.Minutes} min";
        return string.Create(System.Globalization.CultureInfo.InvariantCulture, $" {now:HH:mm:ss} up {duration},  1 user,  load average: {loadAverages}");
    }

    /// <summary>This machine's 1, 5 and 15 minute load averages as `uptime` prints them.</summary>
    internal static string LoadAverages()
    {
        try
        {
            var parts = File.ReadAllText("/proc/loadavg").Split(' ');
            return $"{parts[0]}, {parts[1]}, {parts[2]}";
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return "0.00, 0.00, 0.00";
        }
    }
}
