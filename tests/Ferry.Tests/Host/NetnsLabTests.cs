using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Ferry.Host.Distributed;

namespace Ferry.Tests.Host;

/// <summary>
/// The lab's namespaces, veths and bridge (<see cref="NetnsLab"/>): made, reachable, removed, and removed by the next
/// start when a lab was never disposed (its launcher killed). Needs root and iproute2, as `--netns` does. No guests' gateway:
/// the QEMU network tests of the other test process may hold it on a bridge of theirs.
/// </summary>
public sealed class NetnsLabTests : IDisposable
{
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("ferry-lab-test-").FullName;

    [Fact]
    public void Unavailable_NotRoot_OneLineNamingRoot()
    {
        var reason = NetnsLab.Unavailable(["Name:\tferry", "Uid:\t1000\t1000\t1000\t1000"], ["/usr/sbin", "/sbin"]);

        Assert.Equal("--netns needs root (network namespaces, veths and bridges are made with CAP_NET_ADMIN): run it as root or with sudo", reason);
    }

    [Fact]
    public void Unavailable_RootWithoutIp_OneLineNamingIproute2()
    {
        var reason = NetnsLab.Unavailable(["Uid:\t0\t0\t0\t0"], [_dataDirectory]);

        Assert.Equal("--netns needs the ip and tc commands (Debian package iproute2): apt-get install iproute2", reason);
    }

    [Fact]
    public async Task CreateAsync_TwoHosts_EachReachesTheControllerAndDisposeRemovesEverything()
    {
        Assert.Null(NetnsLab.Unavailable());
        string tag;
        await using (var lab = await NetnsLab.CreateAsync(_dataDirectory, hosts: 2, bandwidthMbit: 100, latencyMs: null, guestGateway: null, CancellationToken.None))
        {
            tag = lab.Tag;
            Assert.Equal([lab.Namespace(1), lab.Namespace(2)], Namespaces(tag));
            for (var host = 1; host <= 2; host++)
            {
                Assert.Equal(0, Run("ip", "netns", "exec", lab.Namespace(host), "ping", "-c", "1", "-W", "5", lab.ControllerAddress).ExitCode);
            }
            Assert.Equal(0, Run("ip", "netns", "exec", lab.Namespace(1), "ping", "-c", "1", "-W", "5", lab.HostAddress(2)).ExitCode);
            // Shaped to 100 Mbit/s in both directions; small packets ahead of bulk (NetnsLab.ShapeAsync).
            Assert.Contains("htb 1:1 root rate 100Mbit", Run("tc", "class", "show", "dev", $"fl{tag}v1").Output, StringComparison.Ordinal);
            var hostEnd = Run("tc", "-n", lab.Namespace(1), "class", "show", "dev", "eth0").Output;
            Assert.Contains("htb 1:10 parent 1:1 prio 0 rate 10Mbit ceil 100Mbit", hostEnd, StringComparison.Ordinal);
            Assert.Contains("htb 1:20 parent 1:1 leaf 20: prio 1 rate 90Mbit ceil 100Mbit", hostEnd, StringComparison.Ordinal);
            Assert.Contains("flowid 1:10", Run("tc", "filter", "show", "dev", $"fl{tag}v1").Output, StringComparison.Ordinal);
        }

        Assert.Empty(Namespaces(tag));
        Assert.Empty(RootDevices(tag));
    }

    [Fact]
    public async Task CreateAsync_AfterALabThatWasNeverRemoved_RemovesItsLeftoversFirst()
    {
        var crashed = await NetnsLab.CreateAsync(_dataDirectory, hosts: 2, bandwidthMbit: null, latencyMs: null, guestGateway: null, CancellationToken.None);
        // A process left in a namespace (a guest whose agent was killed) must not keep it alive.
        using var sleeper = Process.Start("ip", ["netns", "exec", crashed.Namespace(2), "sleep", "300"]);
        await Task.Delay(200);

        await using (var lab = await NetnsLab.CreateAsync(_dataDirectory, hosts: 1, bandwidthMbit: null, latencyMs: null, guestGateway: null, CancellationToken.None))
        {
            Assert.Equal([lab.Namespace(1)], Namespaces(lab.Tag));
            Assert.Equal([$"fl{lab.Tag}br", $"fl{lab.Tag}v1"], RootDevices(lab.Tag));
            Assert.True(sleeper.WaitForExit(5000), "the process in the crashed lab's namespace was ended");
        }
        Assert.Empty(Namespaces(crashed.Tag));
    }

    [Fact]
    public async Task SetPortBlockedAsync_OnePortOfOneHost_ThatConnectGoesUnansweredUntilUnblocked()
    {
        await using var lab = await NetnsLab.CreateAsync(_dataDirectory, hosts: 2, bandwidthMbit: 100, latencyMs: null, guestGateway: null, CancellationToken.None);
        using var blocked = new TcpListener(IPAddress.Parse(lab.ControllerAddress), 0);
        using var open = new TcpListener(IPAddress.Parse(lab.ControllerAddress), 0);
        blocked.Start();
        open.Start();
        var port = ((IPEndPoint)blocked.LocalEndpoint).Port;

        await lab.SetPortBlockedAsync(1, port, blocked: true, CancellationToken.None);

        // timeout(1) exits 124: the connect was never answered (a refusal would exit 1 at once).
        Assert.Equal(124, Connect(lab, 1, port));
        Assert.Equal(0, Connect(lab, 1, ((IPEndPoint)open.LocalEndpoint).Port));
        Assert.Equal(0, Connect(lab, 2, port));
        await lab.SetPortBlockedAsync(1, port, blocked: false, CancellationToken.None);
        Assert.Equal(0, Connect(lab, 1, port));
        Assert.DoesNotContain("1:30", Run("tc", "class", "show", "dev", $"fl{lab.Tag}v1").Output, StringComparison.Ordinal);
    }

    /// <summary>A TCP connect from the host's namespace to the controller's port, given 3 s: the exit code of timeout(1).</summary>
    private static int Connect(NetnsLab lab, int host, int port) =>
        Run("ip", "netns", "exec", lab.Namespace(host), "timeout", "3", "bash", "-c", $"exec 3<>/dev/tcp/{lab.ControllerAddress}/{port}").ExitCode;

    private static List<string> Namespaces(string tag) =>
        Directory.Exists("/run/netns") ? [.. Directory.EnumerateFiles("/run/netns").Select(Path.GetFileName).Where(n => n!.StartsWith($"ferry-{tag}-", StringComparison.Ordinal)).Order()!] : [];

    private static List<string> RootDevices(string tag) =>
        [.. Directory.EnumerateDirectories("/sys/class/net").Select(Path.GetFileName).Where(d => d!.StartsWith($"fl{tag}", StringComparison.Ordinal)).Order()!];

    private static (int ExitCode, string Output) Run(string program, params string[] args)
    {
        using var process = Process.Start(new ProcessStartInfo(program, args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false })!;
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output);
    }

    public void Dispose() => Directory.Delete(_dataDirectory, recursive: true);
}
