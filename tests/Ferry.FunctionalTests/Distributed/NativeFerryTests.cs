using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Ferry.Tests.Shared;

namespace Ferry.FunctionalTests.Distributed;

/// <summary>
/// The native ferry (<c>FERRY_BINARY</c>, published by <c>./ferry test</c>) answers as the JIT one does where Native AOT
/// changes what runs: bodies built with <c>JsonArray</c> (links, paging, zones, traits, resource classes, version
/// documents), minimal API handlers bound by the request delegate generator, and the wording of 4xx errors (framework
/// messages are kept: no <c>UseSystemResourceKeys</c>). Both run as `ferry all-in-one` child processes on their own data.
/// </summary>
public sealed partial class NativeFerryTests
{
    private static readonly (string Api, HttpMethod Method, string Path, string? Body)[] s_requests =
    [
        ("compute", HttpMethod.Get, "/", null),
        ("compute", HttpMethod.Get, "/v2.1/", null),
        ("compute", HttpMethod.Get, "/v2.1/flavors?limit=1", null),
        ("compute", HttpMethod.Get, "/v2.1/flavors/detail", null),
        ("compute", HttpMethod.Get, "/v2.1/flavors?limit=abc", null),
        ("compute", HttpMethod.Get, "/v2.1/flavors/no-such-flavor", null),
        ("compute", HttpMethod.Get, "/v2.1/os-availability-zone", null),
        ("compute", HttpMethod.Get, "/v2.1/os-availability-zone/detail", null),
        ("compute", HttpMethod.Get, "/v2.1/images", null),
        ("compute", HttpMethod.Get, "/v2.1/servers/detail?limit=1", null),
        ("compute", HttpMethod.Get, "/v2.1/1.5", null),
        ("placement", HttpMethod.Delete, "/1.5", null),
        ("images", HttpMethod.Get, "/v2/no-such/1.5", null),
        ("compute", HttpMethod.Post, "/v2.1/servers", "{\"server\": {\"name\": "),
        ("compute", HttpMethod.Post, "/v2.1/servers", "{\"server\": {\"name\": \"x\", \"flavorRef\": 42}}"),
        ("placement", HttpMethod.Get, "/", null),
        ("placement", HttpMethod.Get, "/traits?name=startswith:COMPUTE_STATUS", null),
        ("placement", HttpMethod.Get, "/resource_classes", null),
        ("placement", HttpMethod.Get, "/resource_providers?name=compute1", null),
        ("images", HttpMethod.Get, "/", null),
        ("images", HttpMethod.Get, "/v2/images", null),
    ];

    [Fact]
    public async Task Apis_SameRequestsToNativeAndJitFerry_SameStatusAndBody()
    {
        var native = FerryBinary.Given
            ?? throw new InvalidOperationException($"{FerryBinary.Variable} is not set: ./ferry test publishes the native ferry and sets it");
        var nativeDir = TestTempNames.Directory("native");
        var jitDir = TestTempNames.Directory("jit");
        try
        {
            var startNative = FerryChildProcess.StartAsync(nativeDir, new Dictionary<string, string>(), hosts: 2, program: native);
            var startJit = FerryChildProcess.StartAsync(jitDir, new Dictionary<string, string>(), hosts: 2);
            try
            {
                await Task.WhenAll(startNative, startJit);
            }
            catch
            {
                // The one that started is stopped too (WhenAll throws before anything below would dispose it).
                foreach (var start in new[] { startNative, startJit }.Where(t => t.IsCompletedSuccessfully))
                {
                    await start.Result.DisposeAsync();
                }
                throw;
            }
            await using var nativeFerry = startNative.Result;
            await using var jitFerry = startJit.Result;
            foreach (var request in s_requests)
            {
                var fromNative = await SendAsync(nativeFerry, request);
                var fromJit = await SendAsync(jitFerry, request);
                Assert.True(fromJit == fromNative, $"{request.Method} {request.Api} {request.Path}:\n  JIT:    {fromJit}\n  native: {fromNative}");
            }
        }
        finally
        {
            Directory.Delete(nativeDir, recursive: true);
            Directory.Delete(jitDir, recursive: true);
        }
    }

    [Fact]
    public void Binary_Published_KeepsTypeDataInItsFileAndIsNotPositionIndependent()
    {
        var native = FerryBinary.Given
            ?? throw new InvalidOperationException($"{FerryBinary.Variable} is not set: ./ferry test publishes the native ferry and sets it");
        var elf = ElfFile.Read(native);

        // A dehydrated binary rebuilds its type data into .hydrated at start: ~10 MB of private memory in every process.
        Assert.DoesNotContain(".hydrated", elf.SectionNames);
        // ET_EXEC, not ET_DYN (PIE): a PIE relocates every pointer of that data at load, making each page private again.
        Assert.Equal(ElfFile.Executable, elf.Type);
    }

    [Fact]
    public void Binary_Published_MethodsLaidOutInTheOrderFilesOrder()
    {
        var native = FerryBinary.Given
            ?? throw new InvalidOperationException($"{FerryBinary.Variable} is not set: ./ferry test publishes the native ferry and sets it");
        var symbols = ElfFile.Read(native + ".dbg");
        var code = symbols.Section("__managedcode");
        var order = File.ReadAllLines(Path.Combine(TestRepository.Root(), "src", "Ferry.Host", "method-order.txt"));

        // Still the binary's methods (tools/method-order/update.sh makes the list again when the code has moved on).
        var present = order.Where(symbols.FunctionAddresses.ContainsKey).ToList();
        Assert.True(present.Count >= order.Length * 0.8, $"{present.Count} of the {order.Length} methods in method-order.txt are in the binary");
        // Laid out as listed: each role's methods together (fault-around makes every 64 KB a process touches resident).
        var addresses = present.Select(name => symbols.FunctionAddresses[name]).Where(code.Contains).ToList();
        Assert.Equal(code.Address, addresses[0]);
        var outOfOrder = addresses.Zip(addresses.Skip(1)).Count(pair => pair.Second < pair.First);
        Assert.True(outOfOrder <= addresses.Count / 100, $"{outOfOrder} of {addresses.Count} listed methods lie before the one listed before them");
    }

    [Fact]
    public void Binary_Published_Gen0BudgetIsOneRegion()
    {
        var native = FerryBinary.Given
            ?? throw new InvalidOperationException($"{FerryBinary.Variable} is not set: ./ferry test publishes the native ferry and sets it");

        // Gen0 fills its whole budget between two GCs, so the budget is resident in every process after a burst of moves:
        // 4 MB (one GC region) instead of 8 saved ~4 MB in each of the distributed shape's processes (BENCHMARKS.md).
        Assert.Equal("400000", EmbeddedRuntimeSetting(File.ReadAllBytes(native), "GCgen0size"));
    }

    /// <summary>
    /// A runtime setting compiled into a native binary (ILC's <c>--runtimeopt</c>; a <c>DOTNET_</c> variable of the same name
    /// overrides it), kept as NUL-separated name and hex value; or null. The runtime's table of known setting names holds
    /// the same name between other names, so the match taken is the one followed by a number.
    /// </summary>
    private static string? EmbeddedRuntimeSetting(byte[] binary, string name)
    {
        var key = Encoding.ASCII.GetBytes($"\0{name}\0");
        for (var from = 0; binary.AsSpan(from).IndexOf(key) is var found and >= 0; from += found + 1)
        {
            var value = binary.AsSpan(from + found + key.Length);
            var text = Encoding.ASCII.GetString(value[..value.IndexOf((byte)0)]);
            if (text.Length > 0 && text.All(char.IsAsciiHexDigit))
            {
                return text;
            }
        }
        return null;
    }

    [Fact]
    public async Task Process_NativeAllInOneReady_HasNoEventPipeThreadNorDiagnosticsSocket()
    {
        var native = FerryBinary.Given
            ?? throw new InvalidOperationException($"{FerryBinary.Variable} is not set: ./ferry test publishes the native ferry and sets it");
        var dataDir = TestTempNames.Directory("native-threads");
        try
        {
            await using var ferry = await FerryChildProcess.StartAsync(dataDir, new Dictionary<string, string>(), hosts: 1, program: native);
            var threads = Directory.GetDirectories($"/proc/{ferry.Pid}/task")
                .Select(task => File.ReadAllText(Path.Combine(task, "comm")).Trim())
                .ToList();

            // EventSource is compiled out (EventSourceSupport=false): no diagnostics server, so no thread or socket for it.
            Assert.DoesNotContain(".NET EventPipe", threads);
            // Only a socket made since this process started: one left by a killed earlier process with the same pid is not its.
            var startedAt = System.Diagnostics.Process.GetProcessById(ferry.Pid).StartTime.ToUniversalTime().AddSeconds(-1);
            Assert.Empty(Directory.GetFiles(Path.GetTempPath(), $"dotnet-diagnostic-{ferry.Pid}-*").Where(f => File.GetLastWriteTimeUtc(f) >= startedAt));
        }
        finally
        {
            Directory.Delete(dataDir, recursive: true);
        }
    }

    /// <summary>Status, content type and body, with what differs between two Ferrys by design (ports, uuids, times) masked.</summary>
    private static async Task<string> SendAsync(FerryChildProcess ferry, (string Api, HttpMethod Method, string Path, string? Body) r)
    {
        var baseUrl = r.Api switch { "compute" => ferry.ComputeUrl, "placement" => ferry.PlacementUrl, _ => ferry.ImageUrl };
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        using var request = new HttpRequestMessage(r.Method, baseUrl.TrimEnd('/') + r.Path);
        request.Headers.Add("X-Auth-Token", "admin:admin");
        request.Headers.Add("OpenStack-API-Version", r.Api == "placement" ? "placement 1.39" : "compute 2.95");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        if (r.Body is not null)
        {
            request.Content = new StringContent(r.Body, Encoding.UTF8, "application/json");
        }
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        var body = text.Length > 0 && text.TrimStart().StartsWith('{') ? Sorted(JsonNode.Parse(text))!.ToJsonString() : text;
        foreach (var url in new[] { ferry.ComputeUrl, ferry.PlacementUrl, ferry.ImageUrl })
        {
            body = body.Replace(url.TrimEnd('/'), "<url>", StringComparison.Ordinal).Replace(new Uri(url).Authority, "<authority>", StringComparison.Ordinal);
        }
        body = Volatile().Replace(body, "<masked>");
        return $"{(int)response.StatusCode} {response.Content.Headers.ContentType?.MediaType} {body}";
    }

    /// <summary>The node with every object's members in name order: a map's order (hosts in a zone) is the agents' start order.</summary>
    private static JsonNode? Sorted(JsonNode? node) => node switch
    {
        JsonObject o => new JsonObject(o.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => KeyValuePair.Create(p.Key, Sorted(p.Value)))),
        JsonArray a => new JsonArray([.. a.Select(Sorted)]),
        _ => node?.DeepClone(),
    };

    // uuids, request ids and ISO 8601 times: two Ferrys differ in them by design.
    [GeneratedRegex(@"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|req-[0-9a-f-]+|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")]
    private static partial Regex Volatile();
}
