using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Ferry.Tests.Shared;
using Ferry.Virt.Qemu;

namespace Ferry.FunctionalTests.Distributed;

/// <summary>
/// Ctrl-C (SIGTERM) of `ferry distributed` and the volume service's qemu-storage-daemon, which an api process starts in a
/// session of its own: as with the all-in-one, it ends with the guests (<c>--kill-guests-on-stop</c>) and otherwise keeps
/// serving for the next start to adopt. Fake hosts with the NBD backend asked for, over the run's PostgreSQL and RabbitMQ.
/// </summary>
[Collection(ProcessRestartCollection.Name)]
[Trait("Requires", "qemu")]
public sealed partial class DistributedVolumeDaemonTests
{
    private static readonly TimeSpan s_waitLimit = TimeSpan.FromSeconds(60);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Stop_NbdVolumeBackend_EndsTheStorageDaemonOnlyWhenGuestsEndToo(bool killGuestsOnStop)
    {
        var dataDirectory = QemuTestDirectories.Create("fdv");
        var qmpSocket = Path.Combine(dataDirectory, "run", "volumes", "qmp.sock");
        var daemon = 0;
        try
        {
            var broker = await FerryFixture.SharedBrokerAsync();
            string[] arguments =
            [
                "--hosts", "1", "--replicas", "1", "--time-scale", "0", "--auth", "noauth2", "--volume-backend", "nbd",
                "--compute-port", "0", "--placement-port", "0", "--identity-port", "0", "--image-port", "0", "--network-port", "0", "--volume-port", "0",
                "--database", PostgresServer.Shared.CreateDatabase("qsd"), "--transport", broker.Url, "--control-exchange", $"ferry-qsd-{Guid.NewGuid():N}",
                .. killGuestsOnStop ? ["--kill-guests-on-stop"] : Array.Empty<string>(),
            ];
            var ferry = await DistributedFerry.StartAsync(dataDirectory, arguments);
            await using (ferry)
            {
                // The first volume starts the daemon (in api-1, which serves the volume API).
                await CreateVolumeAsync(VolumeUrl().Match(ferry.ReadyLine).Groups[1].Value);
                var pidFile = Path.Combine(dataDirectory, "run", "volumes", "qemu-storage-daemon.pid");
                var waited = Stopwatch.StartNew();
                while (!(File.Exists(pidFile) && int.TryParse(File.ReadAllText(pidFile).Trim(), CultureInfo.InvariantCulture, out daemon) && QemuProcess.IsAlive(daemon, qmpSocket)))
                {
                    Assert.True(waited.Elapsed < s_waitLimit, $"no qemu-storage-daemon for {dataDirectory} after the first volume:\n{ferry.Output}");
                    await Task.Delay(50);
                }
            } // SIGTERM, as Ctrl-C; every role must be gone after it

            if (killGuestsOnStop)
            {
                Assert.False(QemuProcess.IsAlive(daemon, qmpSocket), $"the storage daemon {daemon} outlived `ferry distributed --kill-guests-on-stop`");
            }
            else
            {
                Assert.True(QemuProcess.IsAlive(daemon, qmpSocket), $"the storage daemon {daemon} ended with `ferry distributed`, whose guests outlive it");
            }
        }
        finally
        {
            if (daemon != 0 && QemuProcess.IsAlive(daemon, qmpSocket))
            {
                using var process = Process.GetProcessById(daemon);
                process.Kill();
                await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            }
            if (Directory.Exists(dataDirectory))
            {
                Directory.Delete(dataDirectory, recursive: true);
            }
        }
    }

    private static async Task CreateVolumeAsync(string volumeUrl)
    {
        using var http = new HttpClient { BaseAddress = new Uri(volumeUrl + "/"), Timeout = TimeSpan.FromSeconds(60) };
        using var request = new HttpRequestMessage(HttpMethod.Post, "v3/volumes")
        {
            Content = new StringContent(new JsonObject { ["volume"] = new JsonObject { ["size"] = 1, ["name"] = "data" } }.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("X-Auth-Token", "admin:admin");
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"volume create: {(int)response.StatusCode} {text}");
    }

    [GeneratedRegex(@"volumes (http://\S+?)/v3")]
    private static partial Regex VolumeUrl();
}
