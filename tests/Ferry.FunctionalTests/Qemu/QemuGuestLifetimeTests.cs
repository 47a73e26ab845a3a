using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Ferry.Tests.Shared;
using Ferry.Virt;

namespace Ferry.FunctionalTests.Qemu;

/// <summary>
/// QEMU guests outlive the Ferry that started them (Ctrl-C, SIGTERM), as libvirt's guests outlive nova-compute,
/// unless Ferry runs with --kill-guests-on-stop. Each test runs `ferry all-in-one` as a child process in its own process
/// group and signals the whole group, as a terminal or a service manager does.
/// </summary>
[Collection("qemu")]
[Trait("Requires", "qemu")]
public sealed partial class QemuGuestLifetimeTests : IDisposable
{
    private static readonly TimeSpan s_waitLimit = TimeSpan.FromSeconds(300);
    private readonly string _dataDirectory = QemuTestDirectories.Create("fgl");
    private readonly string _bridge = TestBridges.NewName();
    private readonly string _kernel = QemuFerryFixture.BuildTestGuest();

    private static CancellationToken Ct => CancellationToken.None;

    [Theory]
    [InlineData("INT")]
    [InlineData("TERM")]
    public async Task Stop_SignalToProcessGroup_GuestKeepsRunningAndNextFerryReattaches(string signal)
    {
        string id;
        int pid;
        long counter;
        await using (var first = await StartFerryAsync())
        {
            using var nova = Nova(first);
            id = await BootAsync(nova, "compute1");
            counter = await WaitForCounterAsync(nova, id, 0);
            pid = Assert.Single(FerryHostProcess.QemuProcesses(id));

            Assert.Equal(0, await first.SignalGroupAndWaitAsync(signal, Ct));
            Assert.Contains("keep running", first.Output, StringComparison.Ordinal);
        }
        Assert.Equal([pid], FerryHostProcess.QemuProcesses(id));

        await using var second = await StartFerryAsync();
        using (var nova = Nova(second))
        {
            var server = await nova.GetServerAsync(id);
            Assert.Equal(("ACTIVE", 1), (server["status"]!.GetValue<string>(), server["OS-EXT-STS:power_state"]!.GetValue<int>()));
            await WaitForCounterAsync(nova, id, counter + 20);
            Assert.Equal([pid], FerryHostProcess.QemuProcesses(id));
            // The re-attached monitor drives the guest: deleting the server ends its QEMU.
            Assert.Equal(HttpStatusCode.NoContent, (await nova.SendAsync(HttpMethod.Delete, $"servers/{id}")).Status);
            await WaitUntilAsync(() => Task.FromResult(FerryHostProcess.QemuProcesses(id).Count == 0), $"{id}'s QEMU gone after delete");
        }
        Assert.Equal(0, await second.SignalGroupAndWaitAsync("INT", Ct));
    }

    [Theory]
    [InlineData(false, "INT")]
    [InlineData(true, "TERM")]
    public async Task Stop_KillGuestsOnStop_NoQemuLeft(bool sharedStorage, string signal)
    {
        string[] extra = sharedStorage ? ["--kill-guests-on-stop", "--shared-storage"] : ["--kill-guests-on-stop"];
        await using var ferry = await StartFerryAsync(extra);
        using (var nova = Nova(ferry))
        {
            var ids = new[] { await BootAsync(nova, "compute1"), await BootAsync(nova, "compute2") };
            foreach (var id in ids)
            {
                await WaitForCounterAsync(nova, id, 0);
            }
            Assert.Equal(2, FerryHostProcess.QemuProcesses(_dataDirectory).Count);
        }

        Assert.Equal(0, await ferry.SignalGroupAndWaitAsync(signal, Ct));

        Assert.Empty(FerryHostProcess.QemuProcesses(_dataDirectory));
    }

    public void Dispose()
    {
        // Even when a test failed: no QEMU of this test may outlive it.
        FerryHostProcess.KillQemuProcesses(_dataDirectory);
        LinuxNetwork.DeleteAsync(_bridge, CancellationToken.None).GetAwaiter().GetResult();
        try
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    private Task<FerryHostProcess> StartFerryAsync(params string[] extra) =>
        FerryHostProcess.StartAsync(_dataDirectory, ["--driver", "qemu", "--hosts", "2", "--test-guest-kernel", _kernel, "--report-interval", "1", "--bridge", _bridge, "--bridge-address", "", .. extra], Ct);

    private static NovaClient Nova(FerryHostProcess ferry) => new(ferry.ComputeUrl, "admin:admin");

    private static async Task<string> BootAsync(NovaClient nova, string host)
    {
        var (status, body) = await nova.PostAsync("servers", new JsonObject
        {
            ["server"] = new JsonObject
            {
                ["name"] = "lifetime",
                ["imageRef"] = "ferry-test-guest",
                ["flavorRef"] = "m1.nano",
                ["networks"] = "none",
                ["availability_zone"] = "nova:" + host,
            },
        });
        Assert.True(status == HttpStatusCode.Accepted, $"boot: {(int)status} {body?.ToJsonString()}");
        var id = body!["server"]!["id"]!.GetValue<string>();
        await WaitUntilAsync(async () => (await nova.GetServerAsync(id))["status"]!.GetValue<string>() is "ACTIVE" or "ERROR", $"{id} built");
        var server = await nova.GetServerAsync(id);
        Assert.True(server["status"]!.GetValue<string>() == "ACTIVE", $"{id}: {server.ToJsonString()}");
        return id;
    }

    /// <summary>Waits until the guest's console shows a counter above <paramref name="above"/>; returns the newest.</summary>
    private static async Task<long> WaitForCounterAsync(NovaClient nova, string id, long above)
    {
        long last = -1;
        await WaitUntilAsync(async () =>
        {
            var (status, body) = await nova.ActionAsync(id, JsonNode.Parse("""{"os-getConsoleOutput": {"length": 5}}""")!);
            Assert.True(status == HttpStatusCode.OK, $"console output: {(int)status} {body?.ToJsonString()}");
            var counters = CounterPattern().Matches(body!["output"]!.GetValue<string>());
            last = counters.Count > 0 ? long.Parse(counters[^1].Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : -1;
            return last > above;
        }, $"{id}: a counter above {above}");
        return last;
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        var started = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(started.Elapsed < s_waitLimit, $"timed out after {started.Elapsed.TotalSeconds:F0} s waiting for {what}");
            await Task.Delay(200, Ct);
        }
    }

    [GeneratedRegex(@"counter=(\d+)")]
    private static partial Regex CounterPattern();
}
