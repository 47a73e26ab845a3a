using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Ferry.FunctionalTests.Distributed;
using Ferry.FunctionalTests.Qemu;
using Ferry.Host;
using Ferry.Host.Distributed;
using Ferry.Virt;

namespace Ferry.FunctionalTests.Lab;

/// <summary>
/// `ferry distributed --netns --driver qemu` launched in the test process: two compute hosts, each in its own network
/// namespace with its own `ferry compute` process, bridge and QEMU guests, their links to the root namespace's lab
/// bridge (controller and guests' gateway) shaped to <see cref="LinkMbit"/>. The test process sits in the root
/// namespace, where an operator would: it reaches the APIs at the controller's address and the guests at theirs.
/// </summary>
public class NetnsLabFixture : IAsyncLifetime
{
    /// <summary>Every host's link, each way: slow enough that a test can act while a migration crosses it.</summary>
    public const double LinkMbit = 200;

    private readonly StringWriter _launcherOutput = new();
    private DistributedLauncher? _launcher;

    /// <summary>Under /tmp with mode 0755 (PostgreSQL runs as postgres); short: QMP socket paths must fit 107 bytes.</summary>
    public string DataDirectory { get; } = Path.Combine("/tmp", $"flab-{Guid.NewGuid().ToString("N")[..8]}");

    /// <summary>Every host's instances directory is one directory (shared storage, seen by each namespace alike).</summary>
    protected virtual bool SharedStorage => false;

    public DistributedLauncher Launcher => _launcher ?? throw new InvalidOperationException("not started");

    public NetnsLab Lab => Launcher.Lab!;

    public NovaClient Admin { get; private set; } = null!;

    public HttpClient Placement { get; private set; } = null!;

    public HttpClient Network { get; private set; } = null!;

    /// <summary>The volume API (Cinder v3, project-less paths, as admin): volumes and their attachments.</summary>
    public HttpClient Volume { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        await RemoveKilledRunsAsync();
        Directory.CreateDirectory(DataDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        await File.WriteAllTextAsync(Path.Combine(DataDirectory, "owner.pid"), Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        var settings = new Dictionary<string, string>
        {
            ["FERRY_AUTH"] = "noauth2",
            ["FERRY_DRIVER"] = "qemu",
            ["FERRY_TESTGUESTKERNEL"] = QemuFerryFixture.BuildTestGuest(),
            ["FERRY_REPORTINTERVAL"] = "1",
            ["FERRY_SHAREDSTORAGE"] = SharedStorage ? "true" : "false",
        };
        var plan = new DistributedPlan(DataDirectory, Hosts: 2, Replicas: 1, PostgresPort: 0, RabbitMqPort: 0, 0, 0, 0, 0, 0, 0, UsesKeystone: false, settings)
        {
            Program = FerryBinary.Given,
            Lab = new LabPlan(LinkBandwidthMbit: LinkMbit),
        };
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(240));
        try
        {
            _launcher = await DistributedLauncher.StartAsync(plan, TextWriter.Synchronized(_launcherOutput), timeout.Token);
        }
        catch (FerryStartException ex)
        {
            throw new InvalidOperationException($"the lab did not start: {ex.Message}\n{_launcherOutput}", ex);
        }
        Admin = new NovaClient(_launcher.ComputeApiUrl[..^"/v2.1".Length], "admin:admin");
        Placement = new HttpClient { BaseAddress = new Uri(_launcher.PlacementUrl + "/"), Timeout = TimeSpan.FromSeconds(30) };
        Placement.DefaultRequestHeaders.Add("X-Auth-Token", "admin:admin");
        Placement.DefaultRequestHeaders.Add("OpenStack-API-Version", "placement 1.39");
        Placement.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        Network = new HttpClient { BaseAddress = new Uri(_launcher.NetworkUrl + "/v2.0/"), Timeout = TimeSpan.FromSeconds(30) };
        Network.DefaultRequestHeaders.Add("X-Auth-Token", "admin:admin");
        Volume = new HttpClient { BaseAddress = new Uri(_launcher.VolumeUrl + "/v3/"), Timeout = TimeSpan.FromSeconds(30) };
        Volume.DefaultRequestHeaders.Add("X-Auth-Token", "admin:admin");
        Volume.DefaultRequestHeaders.Add("OpenStack-API-Version", "volume 3.44");
    }

    /// <summary>
    /// What a killed test run's lab left (its test process gone): every process that names its data directory (roles,
    /// PostgreSQL, RabbitMQ, QEMU), its namespaces and devices, the directory.
    /// </summary>
    private static async Task RemoveKilledRunsAsync()
    {
        foreach (var dir in Directory.EnumerateDirectories("/tmp", "flab-*"))
        {
            var owner = File.Exists(Path.Combine(dir, "owner.pid")) ? File.ReadAllText(Path.Combine(dir, "owner.pid")).Trim() : "0";
            if (Directory.Exists($"/proc/{owner}"))
            {
                continue;
            }
            foreach (var proc in Directory.EnumerateDirectories("/proc").Where(p => int.TryParse(Path.GetFileName(p), out _)))
            {
                try
                {
                    if (File.ReadAllText(Path.Combine(proc, "cmdline")).Contains(dir, StringComparison.Ordinal)
                        || File.ReadAllText(Path.Combine(proc, "environ")).Contains($"FERRY_DATADIR={dir}\0", StringComparison.Ordinal))
                    {
                        Process.GetProcessById(int.Parse(Path.GetFileName(proc), CultureInfo.InvariantCulture)).Kill();
                    }
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException)
                {
                    // Ended meanwhile, or not ours to read.
                }
            }
            await NetnsLab.RemoveLeftoversAsync(dir, CancellationToken.None);
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>The QEMU processes running the guest, with the namespace of each (its host): exactly one after any move.</summary>
    public IReadOnlyList<(int Pid, string Host)> QemuProcessesOf(string uuid)
    {
        var hostsByNamespace = Enumerable.Range(1, Lab.Hosts).ToDictionary(h => NamespaceInode($"/run/netns/{Lab.Namespace(h)}"), h => $"compute{h}");
        var found = new List<(int, string)>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }
            try
            {
                var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline"));
                if (cmdline.StartsWith("qemu-system", StringComparison.Ordinal) && cmdline.Contains($"-uuid\0{uuid}\0", StringComparison.Ordinal)
                    && !File.ReadAllText(Path.Combine(dir, "stat")).Split(' ')[2].Equals("Z", StringComparison.Ordinal))
                {
                    var inode = NamespaceInode(Path.Combine(dir, "ns", "net"));
                    found.Add((pid, hostsByNamespace.GetValueOrDefault(inode, "root namespace")));
                }
            }
            catch (IOException)
            {
                // The process ended while it was read.
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
        return found;
    }

    private static string NamespaceInode(string path) => new FileInfo(path).ResolveLinkTarget(returnFinalTarget: false)?.Name ?? Stat(path);

    /// <summary>A bind-mounted namespace file is no link: its identity is its device and inode.</summary>
    private static string Stat(string path)
    {
        var info = new ProcessStartInfo("stat", ["-L", "-c", "net:[%i]", path]) { RedirectStandardOutput = true, UseShellExecute = false };
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEnd().Trim();
        process.WaitForExit();
        return output;
    }

    /// <summary>The tap devices in host <paramref name="host"/>'s namespace, with the bridge each is on.</summary>
    public Task<IReadOnlyList<TapDevice>> TapsOfAsync(int host) => LinuxNetwork.ListTapsAsync(CancellationToken.None, Lab.Namespace(host));

    /// <summary>The resource provider uuid of each host.</summary>
    public async Task<Dictionary<string, string>> ProvidersAsync()
    {
        var body = JsonNode.Parse(await Placement.GetStringAsync("resource_providers"))!;
        return body["resource_providers"]!.AsArray().ToDictionary(p => (string)p!["name"]!, p => (string)p!["uuid"]!);
    }

    public async Task<JsonObject> AllocationsAsync(string consumer) =>
        JsonNode.Parse(await Placement.GetStringAsync($"allocations/{consumer}"))!["allocations"]!.AsObject();

    public string LogTail(string name)
    {
        var log = Directory.Exists(Path.Combine(DataDirectory, "log"))
            ? Directory.EnumerateFiles(Path.Combine(DataDirectory, "log"), $"ferry-{name}-*.log").OrderBy(f => f).LastOrDefault()
            : null;
        return log is null ? "(no log)" : string.Join('\n', File.ReadLines(log).TakeLast(30));
    }

    public async Task DisposeAsync()
    {
        Placement?.Dispose();
        Network?.Dispose();
        Volume?.Dispose();
        if (_launcher is not null)
        {
            await _launcher.DisposeAsync();
        }
        // Whatever the lab started must end with it (QEMUs, the volumes' storage daemon): a survivor fails the class.
        // (Given 10 s: the database and the broker may still be on their way out.)
        var survivors = ProcessesNaming(DataDirectory);
        for (var waited = 0; survivors.Count > 0 && waited < 100; waited++)
        {
            await Task.Delay(100);
            survivors = ProcessesNaming(DataDirectory);
        }
        foreach (var (pid, _) in survivors)
        {
            try
            {
                using var process = Process.GetProcessById(pid);
                process.Kill();
            }
            catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
            {
                // Ended meanwhile.
            }
        }
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
        if (survivors.Count > 0)
        {
            throw new InvalidOperationException($"the lab's processes outlived it (killed now): {string.Join("; ", survivors.Select(s => $"{s.Pid} {s.CommandLine}"))}");
        }
    }

    /// <summary>Live processes whose command line names <paramref name="path"/>.</summary>
    private static List<(int Pid, string CommandLine)> ProcessesNaming(string path)
    {
        var found = new List<(int, string)>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), CultureInfo.InvariantCulture, out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }
            try
            {
                var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline"));
                if (cmdline.Contains(path, StringComparison.Ordinal) && !File.ReadAllText(Path.Combine(dir, "stat")).Split(' ')[2].Equals("Z", StringComparison.Ordinal))
                {
                    found.Add((pid, cmdline.Replace('\0', ' ').Trim()));
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Ended while it was read, or not ours to read.
            }
        }
        return found;
    }
}

/// <summary>The same lab with one instances directory for both hosts: a live migration moves memory only.</summary>
public sealed class NetnsLabSharedFixture : NetnsLabFixture
{
    protected override bool SharedStorage => true;
}
