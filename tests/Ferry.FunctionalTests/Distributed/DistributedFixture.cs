using System.Text.Json.Nodes;
using Ferry.FunctionalTests.Cli;

namespace Ferry.FunctionalTests.Distributed;

/// <summary>
/// `ferry distributed` as an operator starts it (`./ferry up --distributed`), in a child process (<see cref="DistributedFerry"/>):
/// its own PostgreSQL and RabbitMQ under a data directory of its own, two replicas of each control-plane role and two
/// compute hosts, every port 0 read back from its ready line, a metrics listener for each process without an API. The
/// real <c>openstack</c> client talks to it with the admin openrc it wrote. Disposing sends SIGTERM, as Ctrl-C would, and
/// checks that everything it started is gone.
/// </summary>
public class DistributedFixture : IAsyncLifetime
{
    private static readonly TimeSpan s_callTimeout = TimeSpan.FromSeconds(90);

    private DistributedFerry _ferry = null!;

    /// <summary>Under /tmp with mode 0755: PostgreSQL runs as the postgres user, which must reach its directory.</summary>
    public string DataDirectory { get; }

    public DistributedFixture() => DataDirectory = Path.Combine("/tmp", $"ferry-{Name}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}");

    /// <summary>What the data directory's name says the deployment is (the test script cleans <c>/tmp/ferry-dist*</c> a killed run left).</summary>
    protected virtual string Name => "dist";

    /// <summary>The flags of <c>ferry distributed</c> besides the data directory.</summary>
    protected virtual string[] Arguments =>
        ["--hosts", "2", "--replicas", "2", "--time-scale", "0",
         "--compute-port", "0", "--placement-port", "0", "--identity-port", "0", "--image-port", "0", "--network-port", "0", "--volume-port", "0", "--metrics-port", "0"];

    public string? OpenStack { get; } = CliFixture.FindOnPath("openstack");

    public string ReadyLine => _ferry.ReadyLine;

    public IReadOnlyList<KeyValuePair<string, string>> AdminEnv => _ferry.AdminEnv;

    public string Output => _ferry.Output;

    public async Task InitializeAsync() => _ferry = await DistributedFerry.StartAsync(DataDirectory, Arguments);

    /// <summary>The role processes the launcher started, by name (api-1, conductor-2, compute1…), from its pid file.</summary>
    public IReadOnlyDictionary<string, int> Children() => _ferry.Children();

    /// <summary>The <c>/metrics</c> URL of each process without an API (conductor-1, compute2…), from the launcher's metrics line.</summary>
    public IReadOnlyDictionary<string, string> MetricsUrls()
    {
        var line = Output.Split('\n').Single(l => l.StartsWith("Metrics (besides", StringComparison.Ordinal));
        return line[(line.IndexOf(": ", StringComparison.Ordinal) + 2)..].Trim().Split(", ")
            .Select(entry => entry.Split(' '))
            .ToDictionary(parts => parts[0], parts => parts[1]);
    }

    /// <summary>Runs <c>openstack args…</c> as admin and returns its result.</summary>
    public Task<CliResult> OpenStackAsync(params string[] args)
    {
        CliFixture.RequireTool(OpenStack, "openstack", "python3-openstackclient");
        return CliFixture.RunToolAsync(OpenStack!, AdminEnv, DataDirectory, s_callTimeout, args);
    }

    /// <summary>Runs <c>openstack args…</c> as admin; it must succeed.</summary>
    public async Task<CliResult> RunAsync(params string[] args)
    {
        var result = await OpenStackAsync(args);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result;
    }

    /// <summary>A command that must succeed, with its <c>-f json</c> output.</summary>
    public async Task<JsonNode> JsonAsync(params string[] args) => JsonNode.Parse((await RunAsync([.. args, "-f", "json"])).Stdout)!;

    public async Task DisposeAsync()
    {
        if (_ferry is not null)
        {
            await _ferry.DisposeAsync();
        }
    }
}
