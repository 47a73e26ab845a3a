using System.Diagnostics;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Identity;
using Ferry.FunctionalTests.Distributed;
using Ferry.Host;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Ferry.FunctionalTests.Cli;

/// <summary>
/// A Ferry with Keystone auth (and its Glance v2 subset, through which the CLI resolves image names)
/// on free loopback ports, plus a runner for the real <c>openstack</c> binary with the
/// environment of <c>var/admin-openrc.sh</c> or <c>var/demo-openrc.sh</c>. When a client is missing the
/// tests that need it fail (<see cref="RequireOpenStack"/>) and say which package to install:
/// <c>./ferry test</c> installs them (tests/debian-packages.txt), so a missing client is a broken setup, never a pass.
/// With <c>FERRY_TEST_SHAPE=distributed</c> (a pass of <c>./ferry test</c>) the same clients talk to `ferry distributed`
/// instead: every role its own processes (two replicas of each control-plane role, one compute process per host) over a
/// database of its own on the run's PostgreSQL server and an exchange of its own on the run's RabbitMQ node.
/// </summary>
public class CliFixture : IAsyncLifetime
{
    private static readonly TimeSpan s_callTimeout = TimeSpan.FromSeconds(45);
    private string _dataDirectory = "";
    private AllInOne? _ferry;

    /// <summary>True in the pass of <c>./ferry test</c> that runs the CLI suite against `ferry distributed`.</summary>
    public static bool DistributedShape => Environment.GetEnvironmentVariable("FERRY_TEST_SHAPE") == "distributed";

    /// <summary>The all-in-one under test (not in the distributed shape, whose roles are other processes: the script's filter leaves those tests out).</summary>
    public AllInOne Ferry => _ferry ?? throw new InvalidOperationException("this test reaches into the all-in-one's process, which the distributed shape does not have");

    /// <summary>`ferry distributed` under test (<see cref="DistributedShape"/>), else null.</summary>
    public DistributedFerry? Distributed { get; private set; }
    public IReadOnlyList<KeyValuePair<string, string>> AdminEnv { get; private set; } = [];
    public IReadOnlyList<KeyValuePair<string, string>> DemoEnv { get; private set; } = [];
    public string? OpenStack { get; } = FindOnPath("openstack");
    public string? Nova { get; } = FindOnPath("nova");
    public string DataDirectory => _dataDirectory;
    /// <summary>Keystone's root, e.g. http://127.0.0.1:5000.</summary>
    public string IdentityUrl { get; private set; } = "";
    public string AdminPassword { get; private set; } = "";

    /// <summary>Fails the test, naming the package, when <c>openstack</c> is not on the PATH.</summary>
    public void RequireOpenStack() => RequireTool(OpenStack, "openstack", "python3-openstackclient");

    /// <summary>Fails the test, naming the packages, when <c>openstack</c> or novaclient's <c>nova</c> is not on the PATH.</summary>
    public void RequireOpenStackAndNova()
    {
        RequireOpenStack();
        RequireTool(Nova, "nova", "python3-novaclient");
    }

    internal static void RequireTool(string? path, string name, string package)
    {
        if (path is null)
        {
            Assert.Fail($"`{name}` is not on the PATH, so this test cannot run: install {package} (./ferry test installs tests/debian-packages.txt).");
        }
    }

    public async Task InitializeAsync()
    {
        _dataDirectory = Directory.CreateTempSubdirectory("ferry-cli-").FullName;
        var options = new FerryHostOptions
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
        };
        Configure(options);
        if (DistributedShape)
        {
            await StartDistributedAsync(options);
            return;
        }
        _ferry = AllInOne.Build(options, logging => logging.SetMinimumLevel(LogLevel.None));
        Configure(_ferry);
        await _ferry.StartAsync(CancellationToken.None);
        // Flow tests keep many servers in one project: lift Nova's default quotas (10 instances, 20 cores) for them.
        await _ferry.Services.GetRequiredService<Ferry.ControlPlane.Persistence.QuotaStore>().SetClassLimitsAsync(
            "default", new Dictionary<string, long> { ["instances"] = 1000, ["cores"] = 10000, ["ram"] = 10_000_000 }, CancellationToken.None);
        var identity = AllInOne.IdentityOptionsOf(options);
        IdentityUrl = options.IdentityUrl;
        AdminPassword = identity.AdminPassword;
        AdminEnv = OpenRc.Variables($"{options.IdentityUrl}/v3", "admin", identity.AdminPassword, "admin", identity.Region);
        DemoEnv = OpenRc.Variables($"{options.IdentityUrl}/v3", "demo", identity.DemoPassword, "demo", identity.Region);
    }

    /// <summary>
    /// The same Ferry as the all-in-one's options describe, as `ferry distributed` runs it: its settings as flags, the run's
    /// PostgreSQL and RabbitMQ instead of servers of its own.
    /// </summary>
    private async Task StartDistributedAsync(FerryHostOptions options)
    {
        // If this test process is killed, the next `./ferry test` ends this launcher and its roles (the script's clean_test_servers).
        await File.WriteAllTextAsync(Path.Combine(_dataDirectory, "owner.pid"), Invariant(Environment.ProcessId));
        var broker = await FerryFixture.SharedBrokerAsync();
        Distributed = await DistributedFerry.StartAsync(_dataDirectory,
            "--hosts", Invariant(options.Hosts), "--replicas", "2", "--time-scale", Invariant(options.FakeTimeScale),
            "--lm-completion-timeout", Invariant(options.LiveMigrationCompletionTimeoutSecondsPerGiB),
            "--compute-port", "0", "--placement-port", "0", "--identity-port", "0", "--image-port", "0", "--network-port", "0", "--volume-port", "0",
            "--database", Tests.Shared.PostgresServer.Shared.CreateDatabase("cli"), "--transport", broker.Url,
            "--control-exchange", $"ferry-cli-{Guid.NewGuid():N}");
        AdminEnv = Distributed.AdminEnv;
        DemoEnv = Distributed.DemoEnv;
        AdminPassword = DistributedFerry.Variable(AdminEnv, "OS_PASSWORD");
        IdentityUrl = DistributedFerry.Variable(AdminEnv, "OS_AUTH_URL")[..^"/v3".Length];
        // As for the all-in-one: Nova's default quotas (10 instances, 20 cores) are too few for the suite.
        await AdminRunAsync("2.latest", "quota", "set", "--class", "--instances", "1000", "--cores", "10000", "--ram", "10000000", "default");
    }

    private static string Invariant(IFormattable value) => value.ToString(null, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Tunes the options before the Ferry is built.</summary>
    protected virtual void Configure(FerryHostOptions options)
    {
    }

    /// <summary>Tunes the Ferry before it starts (e.g. <see cref="AllInOne.ConfigureCompute"/>).</summary>
    protected virtual void Configure(AllInOne ferry)
    {
    }

    /// <summary>Stops a host's compute agent as a crash would: the agent of the all-in-one, or kill -9 of its `ferry compute` process.</summary>
    public async Task StopComputeAsync(string host)
    {
        if (Distributed is { } distributed)
        {
            await distributed.KillAsync(host);
            return;
        }
        await Ferry.Computes[host].StopAsync();
    }

    /// <summary>Starts a host's compute agent again after <see cref="StopComputeAsync"/>; it finds the guests its host kept.</summary>
    public async Task StartComputeAsync(string host)
    {
        if (Distributed is { } distributed)
        {
            await distributed.StartAgainAsync(host);
            return;
        }
        await Ferry.StartComputeAsync(host, CancellationToken.None);
    }

    /// <summary>Runs <c>openstack args…</c>; returns its exit code and output.</summary>
    public Task<CliResult> RunAsync(IReadOnlyList<KeyValuePair<string, string>> env, params string[] args) =>
        RunToolAsync(OpenStack!, env, _dataDirectory, s_callTimeout, args);

    /// <summary>Runs novaclient's <c>nova args…</c>; returns its exit code and output.</summary>
    public Task<CliResult> NovaAsync(IReadOnlyList<KeyValuePair<string, string>> env, params string[] args) =>
        RunToolAsync(Nova!, env, _dataDirectory, s_callTimeout, args);

    /// <summary>Runs a client with exactly the <c>OS_*</c> variables of <paramref name="env"/> and its own HOME (no stray clouds.yaml).</summary>
    internal static async Task<CliResult> RunToolAsync(string binary, IReadOnlyList<KeyValuePair<string, string>> env, string home, TimeSpan callTimeout,
        string[] args)
    {
        var start = new ProcessStartInfo(binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("OS_", StringComparison.Ordinal)).ToList())
        {
            start.Environment.Remove(name);
        }
        foreach (var (name, value) in env)
        {
            start.Environment[name] = value;
        }
        start.Environment["HOME"] = home;
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        using var process = Process.Start(start)!;
        using var timeout = new CancellationTokenSource(callTimeout);
        var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
            return new CliResult(process.ExitCode, await stdout, await stderr, $"{Path.GetFileName(binary)} {string.Join(' ', args)}");
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{Path.GetFileName(binary)} {string.Join(' ', args)} did not finish in {callTimeout.TotalSeconds} s");
        }
    }

    /// <summary>Runs a command that must succeed with <c>-f json</c> output.</summary>
    public async Task<JsonNode> JsonAsync(IReadOnlyList<KeyValuePair<string, string>> env, params string[] args)
    {
        var result = await RunAsync(env, [.. args, "-f", "json"]);
        Assert.True(result.ExitCode == 0, result.ToString());
        return JsonNode.Parse(result.Stdout) ?? throw new InvalidOperationException(result.ToString());
    }

    /// <summary>As admin at a compute microversion: a command that must succeed, its <c>-f json</c> output.</summary>
    public Task<JsonNode> AdminJsonAsync(string computeVersion, params string[] args) =>
        JsonAsync(AdminEnv, ["--os-compute-api-version", computeVersion, .. args]);

    /// <summary>As admin at a compute microversion: a command that must succeed, its raw result.</summary>
    public async Task<CliResult> AdminRunAsync(string computeVersion, params string[] args)
    {
        var result = await RunAsync(AdminEnv, ["--os-compute-api-version", computeVersion, .. args]);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result;
    }

    /// <summary>Boots an m1.tiny server from the test image on a given host and waits until it is ACTIVE.</summary>
    public async Task<string> BootAsync(string name, string host)
    {
        var created = await AdminJsonAsync("2.latest", "server", "create", "--flavor", "m1.tiny", "--image", "ferry-test-guest", "--nic", "none",
            "--availability-zone", $"nova:{host}", "--wait", name);
        Assert.Equal("ACTIVE", (string?)created["status"]);
        return (string)created["id"]!;
    }

    public async Task DisposeAsync()
    {
        if (Distributed is not null)
        {
            await Distributed.DisposeAsync();
        }
        if (_ferry is not null)
        {
            await _ferry.DisposeAsync();
        }
        try
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    internal static string? FindOnPath(string name, string? path = null) =>
        (path ?? Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists);

}

public sealed record CliResult(int ExitCode, string Stdout, string Stderr, string Command)
{
    public override string ToString() => $"{Command} exited {ExitCode}\nstdout: {Stdout}\nstderr: {Stderr}";
}

/// <summary>
/// A <see cref="CliFixture"/> on a simulated clock a hundred times faster than the real one, with a
/// completion timeout long enough that a guest dirtying memory faster than the fake link
/// (<c>ferry:dirty_rate_mibps=4000</c>) keeps its live migration running until aborted or forced.
/// </summary>
public sealed class SlowCliFixture : CliFixture
{
    protected override void Configure(FerryHostOptions options)
    {
        options.FakeTimeScale = 0.01;
        options.LiveMigrationCompletionTimeoutSecondsPerGiB = 100_000;
    }
}
