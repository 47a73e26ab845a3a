using System.Diagnostics;
using Ferry.Tests.Shared;
using Microsoft.Data.Sqlite;

namespace Ferry.FunctionalTests.Host;

/// <summary>The <c>ferry</c> program as an operator runs it: <c>ferry db sync</c>, and the one-line refusals of a bad start.</summary>
public sealed class FerryProgramTests : IDisposable
{
    private readonly string _dataDirectory = TestTempNames.Directory("program");

    public void Dispose() => Directory.Delete(_dataDirectory, recursive: true);

    [Fact]
    public async Task DbSync_EmptyThenUpToDate_ExitsZeroAndChangesNothingTheSecondTime()
    {
        var first = await RunAsync(["db", "sync", "--data-dir", _dataDirectory]);
        var afterFirst = SchemaVersions();
        var second = await RunAsync(["db", "sync", "--data-dir", _dataDirectory]);

        Assert.True(first.ExitCode == 0, first.Output);
        Assert.Contains($"ferry db sync: the database {Path.Combine(_dataDirectory, "ferry.db")} is up to date.", first.Output, StringComparison.Ordinal);
        Assert.Equal(["compute", "identity", "messaging", "network", "placement", "placement_catalog", "volume"], afterFirst.Keys.Order());
        Assert.All(afterFirst.Values, version => Assert.True(version > 0));
        Assert.True(second.ExitCode == 0, second.Output);
        Assert.Equal(afterFirst, SchemaVersions());
    }

    [Fact]
    public async Task DbSync_DatabaseFromEnvironment_SyncsThatFile()
    {
        var path = Path.Combine(_dataDirectory, "elsewhere", "nova.db");

        var run = await RunAsync(["db", "sync"], new() { ["FERRY_DATABASE"] = path });

        Assert.True(run.ExitCode == 0, run.Output);
        Assert.True(File.Exists(path));
    }

    [Theory]
    [InlineData("all-in-one --data-dir {0}", "FERRY_HOSTS", "abc", "ferry: FERRY_HOSTS (environment variable): 'abc' is not a whole number")]
    [InlineData("compute --host c1 --data-dir {0}", null, null,
        "ferry: ferry compute needs a shared transport: set transport (FERRY_TRANSPORT or --transport) to rabbitmq://…")]
    [InlineData("conductor --data-dir {0}", "FERRY_TRANSPORT", "kafka://ferry:secret@127.0.0.1/",
        "ferry: FERRY_TRANSPORT (environment variable): 'kafka://ferry:***@127.0.0.1/' is neither inprocess nor a rabbitmq://user:pass@host:port/vhost URL")]
    public async Task Start_BadSetting_OneLineAndExitTwo(string commandLine, string? variable, string? value, string expected)
    {
        var environment = variable is null ? new Dictionary<string, string>() : new() { [variable] = value! };

        var run = await RunAsync(string.Format(System.Globalization.CultureInfo.InvariantCulture, commandLine, _dataDirectory).Split(' '), environment);

        Assert.Equal(2, run.ExitCode);
        Assert.Equal(expected, run.Output.Trim());
    }

    [Fact]
    public async Task Start_NoBrokerOrDatabaseWhereTheSettingsSay_OneLineNamingItAndTheSettingExitNonZero()
    {
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var closed = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();

        var noBroker = await RunAsync(["conductor", "--data-dir", _dataDirectory, "--transport", $"rabbitmq://ferry:s3cret@127.0.0.1:{closed}/"]);
        var noDatabase = await RunAsync(["conductor", "--data-dir", _dataDirectory, "--transport", $"rabbitmq://ferry:s3cret@127.0.0.1:{closed}/",
            "--database", $"postgresql://ferry:s3cret@127.0.0.1:{closed}/ferry"]);

        Assert.NotEqual(0, noBroker.ExitCode);
        var broker = Assert.Single(noBroker.Output.Trim().Split('\n'));
        Assert.StartsWith($"ferry: cannot start: Cannot reach the message broker at rabbitmq://ferry@127.0.0.1:{closed}/: ", broker);
        Assert.EndsWith("set transport (FERRY_TRANSPORT or --transport) to a running RabbitMQ", broker);
        Assert.NotEqual(0, noDatabase.ExitCode);
        var database = Assert.Single(noDatabase.Output.Trim().Split('\n'));
        Assert.StartsWith($"ferry: Cannot reach the database postgresql://ferry@127.0.0.1:{closed}/ferry: ", database);
        Assert.DoesNotContain("s3cret", broker + database);
    }

    [Fact]
    public async Task AllInOne_SigtermWhileHostsStart_StopsAndExitsZero()
    {
        var start = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "ferry")) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { "all-in-one", "--hosts", "2000", "--auth", "noauth2", "--data-dir", _dataDirectory,
            "--compute-port", "0", "--placement-port", "0", "--image-port", "0", "--network-port", "0", "--volume-port", "0", "--identity-port", "0" })
        {
            start.ArgumentList.Add(arg);
        }
        using var process = Process.Start(start)!;
        var output = new System.Text.StringBuilder();
        var hostsStarting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void Append(string? line)
        {
            lock (output)
            {
                output.AppendLine(line);
            }
            if (line?.Contains("Fake host compute", StringComparison.Ordinal) == true)
            {
                hostsStarting.TrySetResult();
            }
        }
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            // Stopped while its 2,000 agents start: before the ready line.
            await hostsStarting.Task.WaitAsync(TimeSpan.FromSeconds(60));
            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync();
            }
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await process.WaitForExitAsync(timeout.Token);
            string text;
            lock (output)
            {
                text = output.ToString();
            }

            Assert.True(process.ExitCode == 0, $"exit {process.ExitCode}: {text}");
            Assert.DoesNotContain("Unhandled exception", text, StringComparison.Ordinal);
            Assert.Contains("ferry: stopped before it was ready.", text, StringComparison.Ordinal);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }

    [Fact]
    public async Task Api_PlacementAndImagesAlone_ServesThemAndStopsOnSigterm()
    {
        var start = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "ferry"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "api", "--apis", "placement,image", "--auth", "noauth2", "--placement-port", "0", "--image-port", "0", "--network-port", "0", "--volume-port", "0", "--data-dir", _dataDirectory })
        {
            start.ArgumentList.Add(arg);
        }
        using var process = Process.Start(start)!;
        var output = new System.Text.StringBuilder();
        void Append(string? line)
        {
            lock (output)
            {
                output.AppendLine(line);
            }
        }
        string Output()
        {
            lock (output)
            {
                return output.ToString();
            }
        }
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            System.Text.RegularExpressions.Match ready;
            while (!(ready = System.Text.RegularExpressions.Regex.Match(Output(), @"Ferry api is ready in \d+ ms: placement (?<placement>http://\S+), images (?<image>http://\S+), transport inprocess")).Success)
            {
                Assert.False(process.HasExited, $"ferry api exited with {(process.HasExited ? process.ExitCode : 0)}: {Output()}");
                Assert.True(DateTime.UtcNow < deadline, $"ferry api not ready after 60 s: {Output()}");
                await Task.Delay(50);
            }
            using var http = new HttpClient();
            http.DefaultRequestHeaders.Add("X-Auth-Token", "admin:admin");
            var placement = await http.GetAsync($"{ready.Groups["placement"].Value}/resource_providers");
            var images = await http.GetAsync($"{ready.Groups["image"].Value.TrimEnd(',')}/v2/images");

            Assert.Equal(System.Net.HttpStatusCode.OK, placement.StatusCode);
            Assert.Equal(System.Net.HttpStatusCode.OK, images.StatusCode);
            Assert.DoesNotContain("compute API", Output(), StringComparison.Ordinal);

            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync();
            }
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await process.WaitForExitAsync(timeout.Token);
            Assert.Equal(0, process.ExitCode);
            Assert.Contains("Ferry api stopped.", Output(), StringComparison.Ordinal);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }

    private Dictionary<string, long> SchemaVersions()
    {
        using var connection = new SqliteConnection($"Data Source={Path.Combine(_dataDirectory, "ferry.db")};Pooling=false");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT component, version FROM schema_version";
        using var reader = command.ExecuteReader();
        var versions = new Dictionary<string, long>();
        while (reader.Read())
        {
            versions[reader.GetString(0)] = reader.GetInt64(1);
        }
        return versions;
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string[] args, Dictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "ferry"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        foreach (var (name, value) in environment ?? [])
        {
            start.Environment[name] = value;
        }
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
        return (process.ExitCode, await stdout + await stderr);
    }
}
