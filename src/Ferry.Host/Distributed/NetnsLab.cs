using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Ferry.Virt;

namespace Ferry.Host.Distributed;

/// <summary>
/// Machines on one machine (`./ferry up --distributed --netns`): each compute host in a network namespace of its own,
/// joined to the root namespace by a link (a veth pair, or with a latency two taps joined by a <see cref="DelayWire"/>)
/// whose root end is on the lab's bridge. One flat L2 segment carries both
/// the management network (the controller at .1, host N at .(10+N); live migration, NBD and cold-migration transfers
/// cross it) and the guests' network (the seeded subnet's gateway on the same root bridge), as a flat provider network
/// would: inside a host the link's end sits on the host's own bridge, which carries the host's management address and its
/// guests' taps. Both ends of every link may be shaped with <c>tc</c> (a rate with HTB); a one-way delay is the wire's.
/// Names carry a tag of the data directory, so two labs never collide and a start removes what a killed one left.
/// </summary>
public sealed class NetnsLab : IAsyncDisposable
{
    /// <summary>The bridge in each host namespace (the QEMU driver's <c>--bridge</c>).</summary>
    public const string HostBridge = "ferrybr0";

    private readonly List<string> _namespaces = [];
    private readonly List<DelayWire> _wires = [];
    private bool _bridgeMade;

    private NetnsLab(string tag, int subnet, int hosts)
    {
        Tag = tag;
        _subnetOctet = subnet;
        Hosts = hosts;
    }

    private readonly int _subnetOctet;

    /// <summary>Four hex digits of the data directory's path.</summary>
    public string Tag { get; }

    public int Hosts { get; }

    /// <summary>The lab's bridge in the root namespace.</summary>
    public string RootBridge => $"fl{Tag}br";

    /// <summary>The management network's prefix length.</summary>
    public const int PrefixLength = 24;

    /// <summary>The root namespace's address on the management network: the control plane listens here.</summary>
    public string ControllerAddress => Address(1);

    public string HostAddress(int host) => Address(10 + host);

    /// <summary>
    /// Frames the links' delay wires (a lab made with a latency) have dropped so far, their queue full, and lost, a link
    /// down: a blackout measured across a wire that dropped frames measures the wire as well. Both 0 without a latency.
    /// </summary>
    public (long Dropped, long Lost) DelayWireFrames => (_wires.Sum(w => w.Dropped), _wires.Sum(w => w.Lost));

    public string Namespace(int host) => $"ferry-{Tag}-compute{host.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>How a process is started inside host <paramref name="host"/>'s namespace (ip netns exec execs, so the pid is the program's).</summary>
    public IReadOnlyList<string> Wrapper(int host) => ["ip", "netns", "exec", Namespace(host)];

    private string Address(int last) => string.Create(CultureInfo.InvariantCulture, $"10.233.{_subnetOctet}.{last}");

    /// <summary>The root end of host <paramref name="host"/>'s link (a veth or a tap), on the root bridge.</summary>
    private string RootVeth(int host) => string.Create(CultureInfo.InvariantCulture, $"fl{Tag}v{host}");

    /// <summary>The host end of a delayed link while it is made in the root namespace, before it moves in as eth0.</summary>
    private string HostTap(int host) => string.Create(CultureInfo.InvariantCulture, $"fl{Tag}h{host}");

    /// <summary>
    /// One clear line when this machine cannot make a lab: not root, or no <c>ip</c>. Root's commands live in /usr/sbin,
    /// which a user's PATH may lack: it is searched after PATH.
    /// </summary>
    public static string? Unavailable() =>
        Unavailable(File.ReadLines("/proc/self/status"), (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Append("/usr/sbin").Append("/sbin"));

    /// <summary>The same from a process status (its <c>Uid:</c> line: real, effective…) and the directories searched for commands.</summary>
    internal static string? Unavailable(IEnumerable<string> processStatus, IEnumerable<string> commandPath)
    {
        var uid = processStatus.FirstOrDefault(l => l.StartsWith("Uid:", StringComparison.Ordinal))?.Split(['\t', ' '], StringSplitOptions.RemoveEmptyEntries);
        if (uid is not { Length: > 2 } || uid[2] != "0")
        {
            return "--netns needs root (network namespaces, veths and bridges are made with CAP_NET_ADMIN): run it as root or with sudo";
        }
        var path = string.Join(':', commandPath);
        if (!ExecutablePath.Exists("ip", path) || !ExecutablePath.Exists("tc", path))
        {
            return "--netns needs the ip and tc commands (Debian package iproute2): apt-get install iproute2";
        }
        return null;
    }

    /// <summary>Removes what a lab of <paramref name="dataDirectory"/> left (a killed launcher's): namespaces with their processes, devices.</summary>
    public static Task RemoveLeftoversAsync(string dataDirectory, CancellationToken ct) => ForDirectory(dataDirectory, 0).RemoveLeftoversAsync(ct);

    private static NetnsLab ForDirectory(string dataDirectory, int hosts)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(dataDirectory)));
        // The management subnet 10.233.X.0/24 follows the tag too: two labs' controllers never share an address.
        return new NetnsLab(Convert.ToHexStringLower(hash)[..4], hash[2], hosts);
    }

    /// <summary>
    /// Makes the lab for <paramref name="hosts"/> hosts, after removing whatever a lab of the same data directory left.
    /// <paramref name="guestGateway"/> (a.b.c.d/n) goes on the root bridge beside the controller's address.
    /// </summary>
    public static async Task<NetnsLab> CreateAsync(string dataDirectory, int hosts, double? bandwidthMbit, double? latencyMs, string? guestGateway,
        CancellationToken ct)
    {
        var lab = ForDirectory(dataDirectory, hosts);
        try
        {
            await lab.RemoveLeftoversAsync(ct);
            await IpAsync(ct, "link", "add", lab.RootBridge, "type", "bridge", "stp_state", "0", "forward_delay", "0");
            lab._bridgeMade = true;
            await IpAsync(ct, "address", "add", $"{lab.ControllerAddress}/{PrefixLength}", "dev", lab.RootBridge);
            if (!string.IsNullOrEmpty(guestGateway))
            {
                await IpAsync(ct, "address", "replace", guestGateway, "dev", lab.RootBridge);
            }
            await IpAsync(ct, "link", "set", lab.RootBridge, "up");
            for (var host = 1; host <= hosts; host++)
            {
                await lab.AddHostAsync(host, bandwidthMbit, latencyMs, ct);
            }
            return lab;
        }
        catch
        {
            await lab.DisposeAsync();
            throw;
        }
    }

    private async Task AddHostAsync(int host, double? bandwidthMbit, double? latencyMs, CancellationToken ct)
    {
        var ns = Namespace(host);
        await IpAsync(ct, "netns", "add", ns);
        _namespaces.Add(ns);
        if (latencyMs is { } latency)
        {
            // A delay is carried by this process (DelayWire) rather than by tc netem even where the kernel has netem: one
            // path that works on every kernel with tun (this machine's has no netem), and the one the tests exercise. The
            // wire lives as long as this lab; a killed launcher's taps vanish with its descriptors.
            var wire = DelayWire.Open(HostTap(host), RootVeth(host), TimeSpan.FromMilliseconds(latency));
            _wires.Add(wire);
            await IpAsync(ct, "link", "set", HostTap(host), "netns", ns, "name", "eth0");
        }
        else
        {
            // The pair is made with its host end already in the namespace, named eth0 there.
            await IpAsync(ct, "link", "add", RootVeth(host), "type", "veth", "peer", "name", "eth0", "netns", ns);
        }
        await IpAsync(ct, "link", "set", RootVeth(host), "master", RootBridge, "up");
        await IpAsync(ct, "-n", ns, "link", "set", "lo", "up");
        await IpAsync(ct, "-n", ns, "link", "add", HostBridge, "type", "bridge", "stp_state", "0", "forward_delay", "0");
        await IpAsync(ct, "-n", ns, "link", "set", "eth0", "master", HostBridge, "up");
        await IpAsync(ct, "-n", ns, "address", "add", $"{HostAddress(host)}/{PrefixLength}", "dev", HostBridge);
        await IpAsync(ct, "-n", ns, "link", "set", HostBridge, "up");
        await IpAsync(ct, "-n", ns, "route", "add", "default", "via", ControllerAddress);
        // At most 256 KiB a sender has not yet sent may wait in a TCP socket (the kernel allows 4 MiB). QEMU counts its
        // downtime until the last byte is in the socket, not on the wire: 4 MiB queued there is 335 ms at 100 Mbit/s that
        // the guest is stopped and QEMU does not report.
        await RunAsync("ip", ["netns", "exec", ns, "sysctl", "-qw", "net.ipv4.tcp_notsent_lowat=262144"], ct);
        if (bandwidthMbit is { } rate)
        {
            await ShapeAsync(null, RootVeth(host), rate, ct);
            await ShapeAsync(ns, "eth0", rate, ct);
        }
    }

    /// <summary>
    /// Shapes the device's egress (each direction of a link is shaped at its sender, before a delayed link's wire) to
    /// <paramref name="rate"/> Mbit/s: an HTB class with two leaves, as an operator would give a link shared by
    /// guests, control traffic and live migrations: IP packets under 512 bytes (probes, ARP-sized traffic, TCP ACKs,
    /// small RPCs) and everything that is not IP go first; bulk (a migration's memory stream, NBD, disk copies) gets the
    /// rest and queues at most 10 ms of the rate (more is data in flight that QEMU does not count as downtime). A single token bucket put a guest's answers behind the stream's
    /// queue (up to 100 ms at 100 Mbit/s), dropped them when it was full, and counted that as the migration's blackout.
    /// </summary>
    private static async Task ShapeAsync(string? ns, string device, double rate, CancellationToken ct)
    {
        // A burst of at least 4 ms of the rate (the kernel's tick may be 4 ms) and never below 64 KiB.
        var burst = Invariant($"{Math.Max(64 * 1024, (long)(rate * 1_000_000 / 8 * 0.004))}b");
        var bulkQueueBytes = Invariant($"{Math.Max(64 * 1024, (long)(rate * 1_000_000 / 8 * 0.01))}");
        await RunAsync("tc", ns is null ? ["qdisc", "del", "dev", device, "root"] : ["-n", ns, "qdisc", "del", "dev", device, "root"], ct, ignoreFailure: true);
        await TcAsync(ns, ["qdisc", "add", "dev", device, "root", "handle", "1:", "htb", "default", "10"], ct);
        await TcAsync(ns, ["class", "add", "dev", device, "parent", "1:", "classid", "1:1", "htb", "rate", Mbit(rate), "burst", burst, "cburst", burst, "quantum", "60000"], ct);
        await TcAsync(ns, ["class", "add", "dev", device, "parent", "1:1", "classid", "1:10", "htb", "rate", Mbit(rate * 0.1), "ceil", Mbit(rate),
            "burst", burst, "cburst", burst, "prio", "0", "quantum", "60000"], ct);
        await TcAsync(ns, ["class", "add", "dev", device, "parent", "1:1", "classid", "1:20", "htb", "rate", Mbit(rate * 0.9), "ceil", Mbit(rate),
            "burst", burst, "cburst", burst, "prio", "1", "quantum", "60000"], ct);
        await TcAsync(ns, ["qdisc", "add", "dev", device, "parent", "1:20", "handle", "20:", "bfifo", "limit", bulkQueueBytes], ct);
        // The IP total length (bytes 2–3 of the header) below 512 → first; any other IP packet → bulk. Priority 1 stays
        // free for a blocked port (SetPortBlockedAsync), which must be matched before either.
        await TcAsync(ns, ["filter", "add", "dev", device, "parent", "1:", "protocol", "ip", "prio", "2", "u32", "match", "u16", "0x0000", "0xfe00", "at", "2", "flowid", "1:10"], ct);
        await TcAsync(ns, ["filter", "add", "dev", device, "parent", "1:", "protocol", "ip", "prio", "3", "u32", "match", "u32", "0", "0", "flowid", "1:20"], ct);

        static string Mbit(double mbit) => Invariant($"{mbit}mbit");
    }

    private static Task TcAsync(string? ns, IReadOnlyList<string> args, CancellationToken ct) =>
        RunAsync("tc", ns is null ? args : ["-n", ns, .. args], ct);

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    /// <summary>Shapes both directions of host <paramref name="host"/>'s link to <paramref name="mbit"/> Mbit/s (tests: a slower link for one move).</summary>
    public async Task ShapeLinkAsync(int host, double mbit, CancellationToken ct)
    {
        await ShapeAsync(null, RootVeth(host), mbit, ct);
        await ShapeAsync(Namespace(host), "eth0", mbit, ct);
    }

    /// <summary>
    /// Takes host <paramref name="host"/>'s link down or up (its root end): a cut cable. On a delayed link the host's end
    /// stays up, but what it sends is lost at the wire, as what the bridge would send it is never sent.
    /// </summary>
    public Task SetLinkAsync(int host, bool up, CancellationToken ct) => IpAsync(ct, "link", "set", RootVeth(host), up ? "up" : "down");

    /// <summary>
    /// Makes host <paramref name="host"/> unable, or able again, to reach the controller's TCP port <paramref name="port"/>
    /// only, as a firewall that drops silently would: what the controller sends from that port to the host goes into a
    /// queue with no room on the host's link (its root end), so the host's connects go unanswered until its TCP gives up.
    /// Every other port, the other direction's traffic to other ports and the other hosts are untouched. Needs the link
    /// shaped with a rate (its HTB). This kernel's tc has no drop action, and a drop at the host's own end would be
    /// reported to the sending socket at once rather than look like a dead path.
    /// </summary>
    public async Task SetPortBlockedAsync(int host, int port, bool blocked, CancellationToken ct)
    {
        var device = RootVeth(host);
        if (!blocked)
        {
            await RunAsync("tc", ["filter", "del", "dev", device, "parent", "1:", "protocol", "ip", "prio", "1"], ct, ignoreFailure: true);
            await RunAsync("tc", ["class", "del", "dev", device, "classid", BlockedClass], ct, ignoreFailure: true);
            return;
        }
        await TcAsync(null, ["class", "replace", "dev", device, "parent", "1:", "classid", BlockedClass, "htb", "rate", "8kbit", "quantum", "1500"], ct);
        await TcAsync(null, ["qdisc", "replace", "dev", device, "parent", BlockedClass, "handle", "30:", "pfifo", "limit", "0"], ct);
        await TcAsync(null, ["filter", "add", "dev", device, "parent", "1:", "protocol", "ip", "prio", "1", "u32",
            "match", "ip", "protocol", "6", "0xff", "match", "ip", "src", $"{ControllerAddress}/32",
            "match", "ip", "sport", port.ToString(CultureInfo.InvariantCulture), "0xffff", "flowid", BlockedClass], ct);
    }

    /// <summary>The HTB class of a link whose leaf holds nothing: what is sent to it is dropped.</summary>
    private const string BlockedClass = "1:30";

    /// <summary>Namespaces and root devices of this lab's tag, whoever made them.</summary>
    private async Task RemoveLeftoversAsync(CancellationToken ct)
    {
        var prefix = $"ferry-{Tag}-";
        if (Directory.Exists("/run/netns"))
        {
            foreach (var ns in Directory.EnumerateFiles("/run/netns").Select(Path.GetFileName).Where(n => n!.StartsWith(prefix, StringComparison.Ordinal)))
            {
                await KillProcessesInAsync(ns!);
                await RunAsync("ip", ["netns", "delete", ns!], ct, ignoreFailure: true);
            }
        }
        foreach (var device in Directory.EnumerateDirectories("/sys/class/net").Select(Path.GetFileName).Where(d => d!.StartsWith($"fl{Tag}", StringComparison.Ordinal)))
        {
            await RunAsync("ip", ["link", "delete", device!], ct, ignoreFailure: true);
        }
    }

    /// <summary>
    /// Stops the delayed links' wires (their taps vanish), deletes the namespaces (their veth ends, and so the root ends, go
    /// with them) and the root bridge. Processes still inside a namespace keep it alive until they end: stop them first.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var wire in _wires)
        {
            wire.Dispose();
        }
        _wires.Clear();
        foreach (var ns in _namespaces)
        {
            await KillProcessesInAsync(ns);
            await RunAsync("ip", ["netns", "delete", ns], CancellationToken.None, ignoreFailure: true);
        }
        _namespaces.Clear();
        for (var host = 1; host <= Hosts; host++)
        {
            if (Directory.Exists($"/sys/class/net/{RootVeth(host)}"))
            {
                await RunAsync("ip", ["link", "delete", RootVeth(host)], CancellationToken.None, ignoreFailure: true);
            }
        }
        if (_bridgeMade)
        {
            await RunAsync("ip", ["link", "delete", RootBridge], CancellationToken.None, ignoreFailure: true);
            _bridgeMade = false;
        }
    }

    /// <summary>Kills every process in host <paramref name="host"/>'s namespace (a machine that lost its power) and waits until they are gone.</summary>
    public Task KillProcessesInAsync(int host) => KillProcessesInAsync(Namespace(host));

    /// <summary>Ends every process still in the namespace (QEMU guests an agent left): a namespace with processes outlives its deletion.</summary>
    private static async Task KillProcessesInAsync(string ns)
    {
        var (_, pids, _) = await HostCommand.RunAsync("ip", ["netns", "pids", ns], "iproute2", CancellationToken.None);
        foreach (var line in pids.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (!int.TryParse(line, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }
            try
            {
                using var process = Process.GetProcessById(pid);
                process.Kill();
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or OperationCanceledException or System.ComponentModel.Win32Exception)
            {
                // Gone already, or not ours to wait for: the namespace goes once its last process has.
            }
        }
    }

    private static Task IpAsync(CancellationToken ct, params string[] args) => RunAsync("ip", args, ct);

    private static async Task RunAsync(string program, IReadOnlyList<string> args, CancellationToken ct, bool ignoreFailure = false)
    {
        var (exitCode, _, stderr) = await HostCommand.RunAsync(program, args, "iproute2", ct);
        if (exitCode != 0 && !ignoreFailure)
        {
            throw new FerryStartException($"lab: {program} {string.Join(' ', args)} failed: {stderr.Trim()}");
        }
    }
}
