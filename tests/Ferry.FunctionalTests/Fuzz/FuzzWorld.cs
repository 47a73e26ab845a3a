using System.Text.Json.Nodes;

namespace Ferry.FunctionalTests.Fuzz;

/// <summary>
/// The real ids the fuzzer puts in paths and bodies (so that a bad body reaches the handler, not only the
/// 404), and the seed bodies — one valid request per write route — that the mutations bend.
/// </summary>
internal sealed class FuzzWorld
{
    /// <summary>An ed25519 public key (its private half was thrown away).</summary>
    public const string PublicKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM5zuM085KTqqYw3CXLNYk6HgkI1CzSGSANI00l9e528 fuzz";

    public Dictionary<string, List<string>> Ids { get; } = new(StringComparer.Ordinal);
    public string ThrowawayToken { get; set; } = "";
    public Random Random { get; set; } = new(0);

    public void Add(string kind, string? id)
    {
        if (!string.IsNullOrEmpty(id))
        {
            (Ids.TryGetValue(kind, out var list) ? list : Ids[kind] = []).Add(id);
        }
    }

    public string One(string kind) => Ids.TryGetValue(kind, out var list) && list.Count > 0 ? list[Random.Next(list.Count)] : "none";

    /// <summary>A real id for a route parameter, chosen by its name and the path segment before it.</summary>
    public string ValidValue(FuzzRoute route, string parameter, Random random)
    {
        var kind = parameter switch
        {
            "uuid" => "provider",
            "consumer" or "server_id" => "server",
            "resourceClass" => "resource_class",
            "migrationId" => "migration",
            "requestId" => "request",
            "key" => "extra_spec",
            "name" => "keypair",
            "host" => "host",
            "alias" => "alias",
            "projectId" or "project_id" => "project",
            _ => null,
        };
        if (kind is null)
        {
            var segments = route.Template.Split('/');
            var at = Array.FindIndex(segments, s => s == $"{{{parameter}}}");
            kind = (at > 0 ? segments[at - 1] : "") switch
            {
                "servers" => "server",
                "flavors" => "flavor",
                "images" => "image",
                "os-server-groups" => "group",
                "os-services" => "service",
                "os-hypervisors" => "hypervisor",
                "projects" => "project",
                "users" => "user",
                "os-keypairs" => "keypair",
                "os-quota-sets" or "os-quota-class-sets" => "project",
                "networks" => "network",
                "subnets" => "subnet",
                "ports" => "port",
                "volumes" => "volume",
                "attachments" => "attachment",
                _ => null,
            };
        }
        if (kind is null || !Ids.ContainsKey(kind))
        {
            var all = Ids.Values.SelectMany(v => v).ToList();
            return all[random.Next(all.Count)];
        }
        var ids = Ids[kind];
        return ids[random.Next(ids.Count)];
    }

    /// <summary>One valid body per write route (keys as <see cref="FuzzRoute.Key"/>); other routes get a small object.</summary>
    public static Dictionary<string, Func<FuzzWorld, JsonNode>> Seeds(string adminPassword)
    {
        var seeds = ServiceSeeds(adminPassword);
        // The volume API serves each route with and without the project in the path.
        foreach (var prefix in new[] { "/v3", "/v3/{project_id}" })
        {
            seeds[$"POST {prefix}/volumes"] = w => new JsonObject
            {
                ["volume"] = new JsonObject
                {
                    ["size"] = 1, ["name"] = "fuzz-vol", ["description"] = null, ["volume_type"] = null, ["availability_zone"] = null, ["metadata"] = new JsonObject(),
                    ["imageRef"] = w.Random.Next(3) == 0 ? w.One("image") : null, ["snapshot_id"] = null, ["source_volid"] = null,
                },
            };
            seeds[$"PUT {prefix}/volumes/{{id}}"] = _ => new JsonObject { ["volume"] = new JsonObject { ["name"] = "fuzz-renamed", ["metadata"] = new JsonObject { ["k"] = "v" } } };
            seeds[$"POST {prefix}/volumes/{{id}}/action"] = w => w.Random.Next(6) switch
            {
                0 => new JsonObject { ["os-extend"] = new JsonObject { ["new_size"] = 2 } },
                1 => new JsonObject { ["os-begin_detaching"] = null },
                2 => new JsonObject { ["os-roll_detaching"] = null },
                3 => new JsonObject { ["os-reset_status"] = new JsonObject { ["status"] = "available" } },
                4 => new JsonObject { ["os-force_delete"] = null },
                _ => new JsonObject { ["os-unknown"] = null },
            };
            seeds[$"POST {prefix}/attachments"] = w => new JsonObject
            {
                ["attachment"] = new JsonObject
                {
                    ["volume_uuid"] = w.One("volume"), ["instance_uuid"] = w.One("server"),
                    ["connector"] = w.Random.Next(2) == 0 ? null : new JsonObject { ["host"] = "compute1", ["ip"] = "127.0.0.1", ["mountpoint"] = "/dev/vdb" },
                },
            };
            seeds[$"PUT {prefix}/attachments/{{id}}"] = _ => new JsonObject
            {
                ["attachment"] = new JsonObject { ["connector"] = new JsonObject { ["host"] = "compute2", ["ip"] = "127.0.0.1", ["mountpoint"] = "/dev/vdc" } },
            };
            seeds[$"POST {prefix}/attachments/{{id}}/action"] = _ => new JsonObject { ["os-complete"] = null };
        }
        return seeds;
    }

    private static Dictionary<string, Func<FuzzWorld, JsonNode>> ServiceSeeds(string adminPassword) => new(StringComparer.Ordinal)
    {
        ["POST /servers"] = w => new JsonObject
        {
            ["server"] = new JsonObject
            {
                ["name"] = "fuzz",
                ["imageRef"] = w.One("image"),
                ["flavorRef"] = w.One("flavor"),
                ["networks"] = "none",
                ["availability_zone"] = "nova",
                ["metadata"] = new JsonObject { ["k"] = "v" },
                ["min_count"] = 1,
            },
        },
        ["POST /servers/{id}/action"] = w => w.Random.Next(12) switch
        {
            0 => new JsonObject { ["os-migrateLive"] = new JsonObject { ["host"] = "compute2", ["block_migration"] = "auto" } },
            1 => new JsonObject { ["os-migrateLive"] = new JsonObject { ["host"] = null, ["block_migration"] = false, ["disk_over_commit"] = false } },
            2 => new JsonObject { ["migrate"] = new JsonObject { ["host"] = "compute3" } },
            3 => new JsonObject { ["resize"] = new JsonObject { ["flavorRef"] = w.One("flavor") } },
            4 => new JsonObject { ["confirmResize"] = null },
            5 => new JsonObject { ["revertResize"] = null },
            6 => new JsonObject { ["evacuate"] = new JsonObject { ["host"] = "compute2", ["onSharedStorage"] = false } },
            7 => new JsonObject { ["os-start"] = null },
            8 => new JsonObject { ["os-stop"] = null },
            9 => new JsonObject { ["reboot"] = new JsonObject { ["type"] = "SOFT" } },
            10 => new JsonObject { ["os-getConsoleOutput"] = new JsonObject { ["length"] = 10 } },
            _ => new JsonObject { ["unknownAction"] = new JsonObject() },
        },
        ["POST /servers/{id}/metadata"] = _ => new JsonObject { ["metadata"] = new JsonObject { ["fuzz"] = "v", ["k"] = "w" } },
        ["PUT /servers/{id}/metadata"] = _ => new JsonObject { ["metadata"] = new JsonObject { ["k"] = "v" } },
        ["PUT /servers/{id}/metadata/{key}"] = _ => new JsonObject { ["meta"] = new JsonObject { ["k"] = "v" } },
        ["POST /servers/{id}/migrations/{migrationId}/action"] = _ => new JsonObject { ["force_complete"] = null },
        ["POST /flavors"] = _ => new JsonObject
        {
            ["flavor"] = new JsonObject
            {
                ["name"] = "fuzz", ["ram"] = 512, ["vcpus"] = 1, ["disk"] = 1, ["OS-FLV-EXT-DATA:ephemeral"] = 0, ["swap"] = 0,
                ["rxtx_factor"] = 1.0, ["os-flavor-access:is_public"] = true,
            },
        },
        ["POST /v2.0/networks"] = _ => new JsonObject { ["network"] = new JsonObject { ["name"] = "fuzz-net" } },
        ["PUT /v2.0/networks/{id}"] = _ => new JsonObject { ["network"] = new JsonObject { ["name"] = "fuzz-renamed", ["admin_state_up"] = true } },
        ["POST /v2.0/subnets"] = w => new JsonObject
        {
            ["subnet"] = new JsonObject { ["network_id"] = w.One("network"), ["cidr"] = "10.123.0.0/24", ["ip_version"] = 4, ["name"] = "fuzz-subnet" },
        },
        ["PUT /v2.0/subnets/{id}"] = _ => new JsonObject { ["subnet"] = new JsonObject { ["name"] = "fuzz-renamed", ["dns_nameservers"] = new JsonArray("10.0.0.53") } },
        ["POST /v2.0/ports"] = w => new JsonObject
        {
            ["port"] = new JsonObject { ["network_id"] = w.One("network"), ["name"] = "fuzz-port", ["fixed_ips"] = new JsonArray(new JsonObject { ["subnet_id"] = w.One("subnet") }) },
        },
        ["PUT /v2.0/ports/{id}"] = _ => new JsonObject { ["port"] = new JsonObject { ["name"] = "fuzz-renamed", ["binding:host_id"] = "compute2" } },
        ["POST /v2.0/ports/{id}/bindings"] = _ => new JsonObject { ["binding"] = new JsonObject { ["host"] = "compute3" } },
        ["POST /os-keypairs"] = _ => new JsonObject { ["keypair"] = new JsonObject { ["name"] = "fuzz", ["type"] = "ssh", ["public_key"] = PublicKey } },
        ["POST /os-server-groups"] = w => new JsonObject
        {
            ["server_group"] = w.Random.Next(2) == 0
                ? new JsonObject { ["name"] = "fuzz", ["policies"] = new JsonArray("anti-affinity") }
                : new JsonObject { ["name"] = "fuzz", ["policy"] = "soft-affinity", ["rules"] = new JsonObject() },
        },
        ["PUT /os-services/{id}"] = w => w.Random.Next(2) == 0
            ? new JsonObject { ["status"] = "enabled" }
            : new JsonObject { ["forced_down"] = false },
        ["POST /resource_providers"] = _ => new JsonObject { ["name"] = "fuzz", ["uuid"] = Guid.NewGuid().ToString() },
        ["PUT /resource_providers/{uuid}"] = _ => new JsonObject { ["name"] = "fuzz-renamed", ["parent_provider_uuid"] = null },
        ["PUT /resource_providers/{uuid}/inventories"] = _ => new JsonObject
        {
            ["resource_provider_generation"] = 1,
            ["inventories"] = new JsonObject
            {
                ["VCPU"] = new JsonObject { ["total"] = 8, ["reserved"] = 0, ["min_unit"] = 1, ["max_unit"] = 8, ["step_size"] = 1, ["allocation_ratio"] = 16.0 },
            },
        },
        ["POST /resource_providers/{uuid}/inventories"] = w => new JsonObject
        {
            ["resource_class"] = w.Random.Next(2) == 0 ? "DISK_GB" : "CUSTOM_FUZZ", ["total"] = 8, ["reserved"] = 0, ["min_unit"] = 1, ["max_unit"] = 8,
            ["step_size"] = 1, ["allocation_ratio"] = 1.0,
        },
        ["PUT /resource_providers/{uuid}/inventories/{resourceClass}"] = _ => new JsonObject
        {
            ["resource_provider_generation"] = 1, ["total"] = 8, ["reserved"] = 0, ["min_unit"] = 1, ["max_unit"] = 8, ["step_size"] = 1,
            ["allocation_ratio"] = 1.0,
        },
        ["PUT /resource_providers/{uuid}/traits"] = _ => new JsonObject { ["resource_provider_generation"] = 1, ["traits"] = new JsonArray("CUSTOM_FUZZ", "HW_CPU_X86_AVX") },
        ["PUT /allocations/{consumer}"] = w => Allocation(w),
        ["POST /allocations"] = w => new JsonObject { [Guid.NewGuid().ToString()] = Allocation(w) },
        ["POST /v3/auth/tokens"] = w => new JsonObject
        {
            ["auth"] = new JsonObject
            {
                ["identity"] = new JsonObject
                {
                    ["methods"] = new JsonArray("password"),
                    ["password"] = new JsonObject
                    {
                        // A wrong password only for a user that does not exist: lock-out must not end the run.
                        ["user"] = w.Random.Next(2) == 0
                            ? new JsonObject { ["name"] = "admin", ["domain"] = new JsonObject { ["id"] = "default" }, ["password"] = adminPassword }
                            : new JsonObject { ["name"] = "fuzz-nobody", ["domain"] = new JsonObject { ["name"] = "Default" }, ["password"] = "x" },
                    },
                },
                ["scope"] = new JsonObject { ["project"] = new JsonObject { ["name"] = "admin", ["domain"] = new JsonObject { ["id"] = "default" } } },
            },
        },
        ["POST /v2/images"] = _ => new JsonObject
        {
            ["name"] = "fuzz", ["disk_format"] = "raw", ["container_format"] = "bare", ["visibility"] = "private", ["min_ram"] = 0,
            ["tags"] = new JsonArray("t"), ["fuzz:property"] = "v",
        },
        ["PATCH /v2/images/{id}"] = w => new JsonArray(
            new JsonObject { ["op"] = "replace", ["path"] = "/name", ["value"] = "fuzz" },
            new JsonObject { ["op"] = w.Random.Next(2) == 0 ? "add" : "remove", ["path"] = "/fuzz_key", ["value"] = "v" }),
    };

    private static JsonObject Allocation(FuzzWorld w) => new()
    {
        ["allocations"] = new JsonObject { [w.One("provider")] = new JsonObject { ["resources"] = new JsonObject { ["VCPU"] = 1, ["MEMORY_MB"] = 64 } } },
        ["project_id"] = w.One("project"),
        ["user_id"] = w.One("user"),
        ["consumer_generation"] = null,
    };
}
