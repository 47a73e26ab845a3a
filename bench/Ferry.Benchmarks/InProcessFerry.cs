using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Host;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Ferry.Benchmarks;

/// <summary>
/// The all-in-one in this process, as the functional tests run it: Kestrel on free loopback ports, SQLite
/// in a temp directory, fake hosts with no simulated time and zero-cost memory copy, logging off.
/// Driven only through the REST API; the instance store is read to see when a move has ended.
/// </summary>
internal sealed class InProcessFerry : IBenchFerry, IAsyncDisposable
{
    private static readonly TimeSpan s_bootLimit = TimeSpan.FromSeconds(60);
    private readonly string _dataDirectory;

    private InProcessFerry(string dataDirectory, AllInOne ferry)
    {
        _dataDirectory = dataDirectory;
        Ferry = ferry;
        Http = Client(ferry.Options.ComputeApiUrl);
        Instances = ferry.Services.GetRequiredService<InstanceStore>();
        Migrations = ferry.Services.GetRequiredService<MigrationStore>();
    }

    public AllInOne Ferry { get; }
    public HttpClient Http { get; }
    public InstanceStore Instances { get; }
    public MigrationStore Migrations { get; }

    public IReadOnlyList<string> HostNames =>
        [.. Ferry.Computes.Keys.OrderBy(h => int.Parse(h["compute".Length..], System.Globalization.CultureInfo.InvariantCulture))];

    public TimeSpan LatencyPoll => TimeSpan.FromMilliseconds(0.2);

    public static async Task<InProcessFerry> StartAsync(int hosts, int maxConcurrentLiveMigrations)
    {
        var dataDirectory = Directory.CreateTempSubdirectory("ferry-bench-").FullName;
        var options = new FerryHostOptions
        {
            DataDirectory = dataDirectory,
            ComputeApiPort = 0, // bound at build time: no race for a released port
            PlacementPort = 0,
            ImagePort = 0,
            NetworkPort = 0,
            VolumePort = 0,
            Hosts = hosts,
            FakeTimeScale = 0,
            FakeBandwidthMiBps = 0,
            MaxConcurrentLiveMigrations = maxConcurrentLiveMigrations,
            Metrics = Environment.GetEnvironmentVariable("FERRY_BENCH_METRICS") != "0", // 0: measure what metrics cost
        };
        var ferry = AllInOne.Build(options, logging => logging.ClearProviders().SetMinimumLevel(LogLevel.None));
        using var cts = new CancellationTokenSource(s_bootLimit);
        await ferry.StartAsync(cts.Token);
        // The benchmarks boot hundreds of servers in one project: lift Nova's default quotas (10 instances, 20 cores).
        await ferry.Services.GetRequiredService<QuotaStore>().SetClassLimitsAsync(
            "default", new Dictionary<string, long> { ["instances"] = -1, ["cores"] = -1, ["ram"] = -1 }, cts.Token);
        return new InProcessFerry(dataDirectory, ferry);
    }

    /// <summary>An HttpClient that speaks to the compute API as the admin, at microversion 2.95.</summary>
    public static HttpClient Client(string computeUrl)
    {
        var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 64 })
        {
            BaseAddress = new Uri(computeUrl + "/v2.1/"),
            Timeout = TimeSpan.FromSeconds(30),
        };
        http.DefaultRequestHeaders.Add("X-Auth-Token", "admin:admin");
        http.DefaultRequestHeaders.Add("OpenStack-API-Version", "compute 2.95");
        http.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        return http;
    }

    public static HttpRequestMessage Post(string path, string json) =>
        new(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };

    public static string BootBody(string name, string host) =>
        new JsonObject
        {
            ["server"] = new JsonObject
            {
                ["name"] = name,
                ["imageRef"] = "ferry-test-guest",
                ["flavorRef"] = "m1.nano",
                ["networks"] = "none",
                ["availability_zone"] = $"nova:{host}",
            },
        }.ToJsonString();

    public static string LiveMigrateBody(string host) =>
        $$$"""{"os-migrateLive": {"host": "{{{host}}}", "block_migration": "auto"}}""";

    public static string ColdMigrateBody(string host) => $$$"""{"migrate": {"host": "{{{host}}}"}}""";

    public const string ConfirmBody = """{"confirmResize": null}""";

    /// <summary>POSTs a boot request; returns the new server's id (not yet ACTIVE).</summary>
    public static async Task<string> PostBootAsync(HttpClient http, string name, string host)
    {
        using var response = await http.SendAsync(Post("servers", BootBody(name, host)));
        var text = await response.Content.ReadAsStringAsync();
        if (response.StatusCode != HttpStatusCode.Accepted)
        {
            throw new InvalidOperationException($"boot on {host}: {(int)response.StatusCode} {text}");
        }
        return JsonNode.Parse(text)!["server"]!["id"]!.GetValue<string>();
    }

    /// <summary>Boots servers on the given hosts, a few at a time, and waits until all are ACTIVE.</summary>
    public async Task<List<(string Id, string Host)>> BootManyAsync(IReadOnlyList<string> hosts)
    {
        using var gate = new SemaphoreSlim(16);
        var ids = await Task.WhenAll(hosts.Select(async (host, i) =>
        {
            await gate.WaitAsync();
            try
            {
                return await PostBootAsync(Http, $"bench-{i}", host);
            }
            finally
            {
                gate.Release();
            }
        }));
        var wanted = ids.ToHashSet(StringComparer.Ordinal);
        await Poll.UntilAsync(() => Instances.List().Count(i => wanted.Contains(i.Uuid) && i.VmState == VmState.Active && i.TaskState is null) == wanted.Count,
            TimeSpan.FromMilliseconds(20), s_bootLimit, $"{ids.Length} servers ACTIVE");
        return [.. ids.Zip(hosts)];
    }

    /// <summary>Sends one server action; throws unless the status is <paramref name="expected"/>.</summary>
    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        try
        {
            await Ferry.DisposeAsync();
        }
        catch (Exception ex)
        {
            // Shutting down is not what is measured: report it and go on with the next figure.
            Console.Error.WriteLine($"[bench] warning: stopping the all-in-one failed: {ex}");
        }
        try
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
