using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Ferry.Host;
using Ferry.Tests.Shared;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Ferry.FunctionalTests.Fuzz;

/// <summary>
/// A bounded, seeded fuzz run over every route of every service (compute, placement, identity, image) on
/// real Kestrel with Keystone tokens, as admin and as a member: no answer is a 5xx, every error body is in
/// its service's own shape, and no refused request changes the database, the image store or the identity
/// file. The seed is fixed (FERRY_FUZZ_SEED overrides it, FERRY_FUZZ_REQUESTS the request count).
/// </summary>
public sealed class ApiFuzzTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int DefaultSeed = 20261204;
    private const int DefaultRequests = 5000;
    private static readonly TimeSpan s_settleTimeout = TimeSpan.FromSeconds(10);

    private readonly HttpClient _http = new(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false }) { Timeout = TimeSpan.FromSeconds(30) };
    private readonly FuzzWorld _world = new();
    private readonly ErrorLogCollector _errors = new();
    private readonly Dictionary<string, string> _tokens = new(StringComparer.Ordinal);
    private string _dataDirectory = "";
    private AllInOne _ferry = null!;
    private FerryHostOptions _options = null!;

    public async Task InitializeAsync()
    {
        _dataDirectory = TestTempNames.Directory("fuzz");
        _options = new FerryHostOptions
        {
            DataDirectory = _dataDirectory,
            ComputeApiPort = 0,
            PlacementPort = 0,
            IdentityPort = 0,
            ImagePort = 0,
            NetworkPort = 0,
            VolumePort = 0,
            Auth = "keystone",
            Hosts = 3,
            FakeTimeScale = 0,
            // No heartbeat or periodic task may change a row while a refused request is being checked.
            ReportInterval = TimeSpan.FromHours(1),
            ServiceDownTime = TimeSpan.FromHours(2),
        };
        _ferry = AllInOne.Build(_options, logging => logging.AddProvider(_errors));
        _ferry.ConfigureCompute = c => c.PowerStateSyncInterval = TimeSpan.FromHours(1);
        await _ferry.StartAsync(CancellationToken.None);
        await SetUpWorldAsync();
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _ferry.DisposeAsync();
        try
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [Fact]
    public async Task EveryRoute_FuzzedRequests_NoServerErrorOwnErrorShapeAndNoStateChangeWhenRefused()
    {
        var seed = int.TryParse(Environment.GetEnvironmentVariable("FERRY_FUZZ_SEED"), out var s) ? s : DefaultSeed;
        var total = int.TryParse(Environment.GetEnvironmentVariable("FERRY_FUZZ_REQUESTS"), out var n) ? n : DefaultRequests;
        output.WriteLine($"fuzz seed {seed} (FERRY_FUZZ_SEED), {total} requests (FERRY_FUZZ_REQUESTS)");
        var random = new Random(seed);
        _world.Random = random;
        var ports = new Dictionary<int, FuzzService>
        {
            [_options.ComputeApiPort] = FuzzService.Compute,
            [_options.PlacementPort] = FuzzService.Placement,
            [_options.IdentityPort] = FuzzService.Identity,
            [_options.ImagePort] = FuzzService.Image,
            [_options.NetworkPort] = FuzzService.Network,
            [_options.VolumePort] = FuzzService.Volume,
        };
        var routes = FuzzRoute.Enumerate(_ferry.Services, ports);
        foreach (var service in Enum.GetValues<FuzzService>())
        {
            Assert.Contains(routes, r => r.Service == service && !r.IsFallback);
        }
        output.WriteLine($"{routes.Count} routes: {string.Join(", ", Enum.GetValues<FuzzService>().Select(sv => $"{sv} {routes.Count(r => r.Service == sv)}"))}");

        // Every route gets its share; the order is shuffled so one route's effects meet every other's.
        var plan = Enumerable.Range(0, total).Select(i => routes[i % routes.Count]).ToArray();
        random.Shuffle(plan);
        var generator = new FuzzGenerator(random, _world);
        var seeds = FuzzWorld.Seeds(AllInOne.IdentityOptionsOf(_options).AdminPassword);
        using var state = new StateSnapshot(_dataDirectory);
        var failures = new Dictionary<string, (int Count, string Example)>(StringComparer.Ordinal);
        var statuses = new SortedDictionary<int, int>();
        var clock = Stopwatch.StartNew();
        var sending = new Stopwatch();
        var checking = new Stopwatch();
        var settling = new Stopwatch();
        // The tables are read again only when SQLite says another connection committed (data_version);
        // first make sure that a write through the API does move it, or the check below could never fail.
        var tables = state.Take();
        var version = state.Version();
        await SendJsonAsync(HttpMethod.Post, _options.ComputeApiUrl + "/v2.1/os-keypairs", "member",
            new JsonObject { ["keypair"] = new JsonObject { ["name"] = "fuzz-probe", ["public_key"] = FuzzWorld.PublicKey } });
        Assert.NotEqual(version, state.Version());
        Assert.False(StateSnapshot.Same(tables, state.Take()));
        tables = state.Take();
        version = state.Version();
        foreach (var route in plan)
        {
            var request = generator.Next(route, seeds);
            SortedDictionary<string, string>? files = null;
            if (!FuzzRoute.IsSafe(request.Method))
            {
                checking.Start();
                if (state.Version() != version)
                {
                    version = state.Version();
                    tables = state.Take();
                }
                files = state.Files();
                checking.Stop();
            }
            sending.Start();
            var (status, contentType, body) = await SendAsync(request);
            sending.Stop();
            statuses[status] = statuses.GetValueOrDefault(status) + 1;
            string? problem = null;
            if (status >= 500)
            {
                problem = $"{status}";
            }
            else if (status >= 400 && request.Method != "HEAD" && ErrorShapes.Check(route.Service, status, contentType, body) is { } shape)
            {
                problem = $"{status} {shape}";
            }
            if (files is not null)
            {
                if (status >= 400)
                {
                    checking.Start();
                    var changed = new List<string>();
                    if (state.Version() != version)
                    {
                        version = state.Version();
                        var after = state.Take();
                        if (!StateSnapshot.Same(tables, after))
                        {
                            changed.Add(StateSnapshot.Diff(tables, after));
                        }
                        tables = after;
                    }
                    var filesAfter = state.Files();
                    if (!StateSnapshot.Same(files, filesAfter))
                    {
                        changed.Add(StateSnapshot.Diff(files, filesAfter));
                    }
                    if (changed.Count > 0)
                    {
                        problem = (problem is null ? "" : problem + "; ") + $"refused with {status} but changed {string.Join("; ", changed)}";
                    }
                    checking.Stop();
                }
                else
                {
                    settling.Start();
                    await SettleAsync(state);
                    settling.Stop();
                }
            }
            if (problem is not null)
            {
                var key = $"{route} → {problem}";
                var example = $"{request.Method} {request.Path} as {request.Caller ?? "anonymous"} [{request.Mutation}]"
                    + $" body {Preview(request.Body)} → {status} {Cut(body, 300)}";
                failures[key] = failures.TryGetValue(key, out var f) ? (f.Count + 1, f.Example) : (1, example);
            }
        }
        clock.Stop();
        output.WriteLine($"{total} requests in {clock.Elapsed.TotalSeconds:F1} s (sending {sending.Elapsed.TotalSeconds:F1} s, state checks {checking.Elapsed.TotalSeconds:F1} s, settling after accepted writes {settling.Elapsed.TotalSeconds:F1} s); statuses {string.Join(", ", statuses.Select(p => $"{p.Key}×{p.Value}"))}");
        foreach (var error in _errors.Errors.Distinct().Take(40))
        {
            output.WriteLine($"logged: {error}");
        }
        foreach (var (key, (count, example)) in failures.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            output.WriteLine($"FAIL ×{count}: {key}\n    e.g. {example}");
        }
        Assert.True(failures.Count == 0,
            $"{failures.Values.Sum(f => f.Count)} bad answers in {failures.Count} kinds (seed {seed}); first: {failures.Keys.Order(StringComparer.Ordinal).FirstOrDefault()}");
    }

    /// <summary>Waits until what a successful write started (a build, a migration) has stopped changing the database.</summary>
    private static async Task SettleAsync(StateSnapshot state)
    {
        var clock = Stopwatch.StartNew();
        var last = state.Version();
        while (clock.Elapsed < s_settleTimeout)
        {
            await Task.Delay(15);
            var now = state.Version();
            if (now == last && state.InFlight() == 0)
            {
                return;
            }
            last = now;
        }
    }

    private async Task<(int Status, string? ContentType, string Body)> SendAsync(FuzzRequest request)
    {
        var baseUrl = request.Route.Service switch
        {
            FuzzService.Compute => _options.ComputeApiUrl,
            FuzzService.Placement => _options.PlacementUrl,
            FuzzService.Identity => _options.IdentityUrl,
            FuzzService.Network => _options.NetworkUrl,
            FuzzService.Volume => _options.VolumeUrl,
            _ => _options.ImageUrl,
        };
        using var message = new HttpRequestMessage(new HttpMethod(request.Method), new Uri(baseUrl + request.Path));
        if (request.Caller is { } caller)
        {
            message.Headers.TryAddWithoutValidation("X-Auth-Token", _tokens.GetValueOrDefault(caller, "gAAAAA-not-a-token"));
        }
        foreach (var (name, value) in request.Headers)
        {
            message.Headers.TryAddWithoutValidation(name, value);
        }
        if (request.Route.Service == FuzzService.Volume && !request.Headers.Any(h => h.Key == "OpenStack-API-Version"))
        {
            // The attachments API needs 3.27+; without it most of its requests would only meet the 404 below it.
            message.Headers.TryAddWithoutValidation("OpenStack-API-Version", "volume 3.70");
        }
        if (request.Body is not null)
        {
            message.Content = new ByteArrayContent(request.Body);
            if (request.ContentType is not null)
            {
                message.Content.Headers.TryAddWithoutValidation("Content-Type", request.ContentType);
            }
        }
        using var response = await _http.SendAsync(message);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, response.Content.Headers.ContentType?.MediaType, text);
    }

    // ---- the world the fuzzer aims at ----

    private async Task SetUpWorldAsync()
    {
        var identity = AllInOne.IdentityOptionsOf(_options);
        _tokens["admin"] = await IssueTokenAsync("admin", identity.AdminPassword, "admin");
        _tokens["member"] = await IssueTokenAsync("demo", identity.DemoPassword, "demo");
        _world.ThrowawayToken = await IssueTokenAsync("demo", identity.DemoPassword, "demo");

        var flavors = await GetAsync(_options.ComputeApiUrl + "/v2.1/flavors", "admin");
        foreach (var f in flavors["flavors"]!.AsArray())
        {
            _world.Add("flavor", f!["id"]!.GetValue<string>());
        }
        var images = await GetAsync(_options.ImageUrl + "/v2/images", "admin");
        foreach (var i in images["images"]!.AsArray())
        {
            _world.Add("image", i!["id"]!.GetValue<string>());
        }
        var flavor = _world.Ids["flavor"][0];
        var image = _world.Ids["image"][0];
        foreach (var (caller, host) in new[] { ("admin", "compute1"), ("member", null as string), ("admin", "compute2") })
        {
            var server = new JsonObject
            {
                ["name"] = $"fuzz-{caller}", ["imageRef"] = image, ["flavorRef"] = flavor, ["networks"] = "none",
            };
            if (host is not null && caller == "admin")
            {
                server["availability_zone"] = $"nova:{host}";
            }
            var created = await SendJsonAsync(HttpMethod.Post, _options.ComputeApiUrl + "/v2.1/servers", caller, new JsonObject { ["server"] = server });
            var id = created["server"]!["id"]!.GetValue<string>();
            _world.Add("server", id);
            await WaitForStatusAsync(id, "ACTIVE");
        }
        var first = _world.Ids["server"][0];
        await SendJsonAsync(HttpMethod.Post, $"{_options.ComputeApiUrl}/v2.1/servers/{first}/action", "admin",
            new JsonObject { ["os-migrateLive"] = new JsonObject { ["host"] = "compute3", ["block_migration"] = "auto" } });
        await WaitForStatusAsync(first, "ACTIVE", host: "compute3");
        await SendJsonAsync(HttpMethod.Post, _options.ComputeApiUrl + "/v2.1/os-keypairs", "member", new JsonObject { ["keypair"] = new JsonObject { ["name"] = "fuzz-key", ["public_key"] = FuzzWorld.PublicKey } });
        _world.Add("keypair", "fuzz-key");
        var group = await SendJsonAsync(HttpMethod.Post, _options.ComputeApiUrl + "/v2.1/os-server-groups", "admin",
            new JsonObject { ["server_group"] = new JsonObject { ["name"] = "fuzz-group", ["policy"] = "affinity" } });
        _world.Add("group", group["server_group"]!["id"]!.GetValue<string>());

        foreach (var m in (await GetAsync(_options.ComputeApiUrl + "/v2.1/os-migrations", "admin"))["migrations"]!.AsArray())
        {
            _world.Add("migration", m!["id"]!.ToJsonString());
        }
        foreach (var a in (await GetAsync($"{_options.ComputeApiUrl}/v2.1/servers/{first}/os-instance-actions", "admin"))["instanceActions"]!.AsArray())
        {
            _world.Add("request", a!["request_id"]!.GetValue<string>());
        }
        foreach (var sv in (await GetAsync(_options.ComputeApiUrl + "/v2.1/os-services", "admin", "compute 2.53"))["services"]!.AsArray())
        {
            _world.Add("service", sv!["id"]!.GetValue<string>());
        }
        foreach (var h in (await GetAsync(_options.ComputeApiUrl + "/v2.1/os-hypervisors", "admin", "compute 2.53"))["hypervisors"]!.AsArray())
        {
            _world.Add("hypervisor", h!["id"]!.GetValue<string>());
        }
        foreach (var p in (await GetAsync(_options.PlacementUrl + "/resource_providers", "admin"))["resource_providers"]!.AsArray())
        {
            _world.Add("provider", p!["uuid"]!.GetValue<string>());
        }
        foreach (var p in (await GetAsync(_options.IdentityUrl + "/v3/auth/projects", "admin"))["projects"]!.AsArray())
        {
            _world.Add("project", p!["id"]!.GetValue<string>());
        }
        foreach (var caller in new[] { "admin", "member" })
        {
            var token = await GetAsync(_options.IdentityUrl + "/v3/auth/tokens", caller, subjectToken: _tokens[caller]);
            _world.Add("user", token["token"]!["user"]!["id"]!.GetValue<string>());
        }
        foreach (var n in (await GetAsync(_options.NetworkUrl + "/v2.0/networks", "admin"))["networks"]!.AsArray())
        {
            _world.Add("network", n!["id"]!.GetValue<string>());
        }
        foreach (var s in (await GetAsync(_options.NetworkUrl + "/v2.0/subnets", "admin"))["subnets"]!.AsArray())
        {
            _world.Add("subnet", s!["id"]!.GetValue<string>());
        }
        var port = await SendJsonAsync(HttpMethod.Post, _options.NetworkUrl + "/v2.0/ports", "member",
            new JsonObject { ["port"] = new JsonObject { ["network_id"] = _world.Ids["network"][0], ["device_owner"] = "compute:nova" } });
        _world.Add("port", port["port"]!["id"]!.GetValue<string>());
        var volume = await SendJsonAsync(HttpMethod.Post, _options.VolumeUrl + "/v3/volumes", "member",
            new JsonObject { ["volume"] = new JsonObject { ["size"] = 1, ["name"] = "fuzz-volume" } });
        _world.Add("volume", volume["volume"]!["id"]!.GetValue<string>());
        var attached = await SendJsonAsync(HttpMethod.Post, _options.VolumeUrl + "/v3/volumes", "member",
            new JsonObject { ["volume"] = new JsonObject { ["size"] = 1, ["name"] = "fuzz-attached" } });
        _world.Add("volume", attached["volume"]!["id"]!.GetValue<string>());
        var attachment = await SendJsonAsync(HttpMethod.Post, _options.VolumeUrl + "/v3/attachments", "member", new JsonObject
        {
            ["attachment"] = new JsonObject { ["volume_uuid"] = _world.Ids["volume"][1], ["instance_uuid"] = _world.Ids["server"][0], ["connector"] = null },
        }, "volume 3.44");
        _world.Add("attachment", attachment["attachment"]!["id"]!.GetValue<string>());
        _world.Add("host", "compute1");
        _world.Add("host", "compute2");
        _world.Add("alias", "binding");
        _world.Add("resource_class", "VCPU");
        _world.Add("resource_class", "MEMORY_MB");
        _world.Add("extra_spec", "hw:cpu_policy");
        output.WriteLine("world: " + string.Join(", ", _world.Ids.Select(p => $"{p.Key} {p.Value.Count}")));
    }

    private async Task<string> IssueTokenAsync(string user, string password, string project)
    {
        var body = new JsonObject
        {
            ["auth"] = new JsonObject
            {
                ["identity"] = new JsonObject
                {
                    ["methods"] = new JsonArray("password"),
                    ["password"] = new JsonObject { ["user"] = new JsonObject { ["name"] = user, ["domain"] = new JsonObject { ["id"] = "default" }, ["password"] = password } },
                },
                ["scope"] = new JsonObject { ["project"] = new JsonObject { ["name"] = project, ["domain"] = new JsonObject { ["id"] = "default" } } },
            },
        };
        using var response = await _http.PostAsync(_options.IdentityUrl + "/v3/auth/tokens", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return response.Headers.GetValues("X-Subject-Token").Single();
    }

    private async Task<JsonNode> GetAsync(string url, string caller, string? version = null, string? subjectToken = null)
    {
        using var message = new HttpRequestMessage(HttpMethod.Get, url);
        message.Headers.Add("X-Auth-Token", _tokens[caller]);
        if (version is not null)
        {
            message.Headers.Add("OpenStack-API-Version", version);
        }
        if (subjectToken is not null)
        {
            message.Headers.Add("X-Subject-Token", subjectToken);
        }
        using var response = await _http.SendAsync(message);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"GET {url}: {(int)response.StatusCode} {text}");
        return JsonNode.Parse(text)!;
    }

    private async Task<JsonNode> SendJsonAsync(HttpMethod method, string url, string caller, JsonNode body, string version = "compute 2.95")
    {
        using var message = new HttpRequestMessage(method, url) { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        message.Headers.Add("X-Auth-Token", _tokens[caller]);
        message.Headers.Add("OpenStack-API-Version", version);
        using var response = await _http.SendAsync(message);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{method} {url}: {(int)response.StatusCode} {text}");
        return text.Length == 0 ? new JsonObject() : JsonNode.Parse(text)!;
    }

    private async Task WaitForStatusAsync(string id, string status, string? host = null)
    {
        var clock = Stopwatch.StartNew();
        var last = "";
        while (clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            var server = (await GetAsync($"{_options.ComputeApiUrl}/v2.1/servers/{id}", "admin", "compute 2.95"))["server"]!;
            last = $"{server["status"]} {server["OS-EXT-STS:task_state"]} on {server["OS-EXT-SRV-ATTR:host"]}";
            if (server["status"]!.GetValue<string>() == status && server["OS-EXT-STS:task_state"] is null
                && (host is null || server["OS-EXT-SRV-ATTR:host"]?.GetValue<string>() == host))
            {
                return;
            }
            await Task.Delay(20);
        }
        Assert.Fail($"server {id} did not reach {status}{(host is null ? "" : $" on {host}")} in 30 s during the fuzz set-up; last: {last}");
    }

    private static string Preview(byte[]? body) =>
        body is null ? "none" : body.Length > 200 ? $"{Encoding.UTF8.GetString(body, 0, 200)}…({body.Length} bytes)" : Encoding.UTF8.GetString(body);

    private static string Cut(string s, int max) => s.Length > max ? s[..max] + "…" : s;
}
