using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace Ferry.FunctionalTests;

/// <summary>
/// `ferry all-in-one` in a child process (fake driver, noauth2, every port 0 read back from its ready line, the caller's data directory), so a test
/// can have the whole Ferry killed with SIGKILL mid-move (<c>FERRY_FAKE_CRASH_AT</c>) and start another on its data.
/// </summary>
public sealed class FerryChildProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private FerryChildProcess(Process process)
    {
        _process = process;
    }

    /// <summary>The compute API at the port the child bound (known once it is ready).</summary>
    public NovaClient Admin { get; private set; } = null!;

    /// <summary>The compute API's URL, with the port the child bound.</summary>
    public string ComputeUrl { get; private set; } = "";

    public string PlacementUrl { get; private set; } = "";

    public string ImageUrl { get; private set; } = "";

    public bool HasExited => _process.HasExited;

    /// <summary>The child's process id (its /proc entry).</summary>
    public int Pid => _process.Id;

    /// <summary>What the child wrote so far (stderr and stdout), for failure messages.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <param name="program">The ferry executable (a native one); null: the JIT build's apphost beside the tests.</param>
    public static async Task<FerryChildProcess> StartAsync(string dataDirectory, IReadOnlyDictionary<string, string> environment, int hosts = 3, bool sharedStorage = false, string? program = null)
    {
        var start = new ProcessStartInfo(program ?? Path.Combine(AppContext.BaseDirectory, "ferry"))
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
        {
            "all-in-one", "--auth", "noauth2", "--data-dir", dataDirectory, "--hosts", hosts.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--time-scale", "0", "--compute-port", "0", "--placement-port", "0", "--image-port", "0", "--network-port", "0", "--volume-port", "0", "--identity-port", "0",
        })
        {
            start.ArgumentList.Add(arg);
        }
        if (sharedStorage)
        {
            start.ArgumentList.Add("--shared-storage");
        }
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }
        var process = Process.Start(start) ?? throw new InvalidOperationException("ferry all-in-one did not start");
        var child = new FerryChildProcess(process);
        process.ErrorDataReceived += (_, e) => child.Append(e.Data);
        process.OutputDataReceived += (_, e) => child.Append(e.Data);
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"ferry all-in-one exited with {process.ExitCode} before it was ready: {child.Output}");
            }
            // Printed once every agent has started (registered with placement, recovered its guests), with the ports bound.
            if (FerryReadyLine.Find(child.Output) is { } urls)
            {
                child.ComputeUrl = urls.ComputeUrl;
                child.PlacementUrl = urls.PlacementUrl;
                child.ImageUrl = urls.ImageUrl;
                child.Admin = new NovaClient(urls.ComputeUrl, "admin:admin");
                return child;
            }
            if (DateTime.UtcNow > deadline)
            {
                await child.DisposeAsync();
                throw new TimeoutException($"ferry all-in-one not ready after 60 s: {child.Output}");
            }
            await Task.Delay(50);
        }
    }

    /// <summary>Waits until the process ends by itself; false when it still runs after <paramref name="timeout"/>.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Polls the server until <paramref name="condition"/> holds (or the child died: a crash point was reached).</summary>
    public async Task<JsonNode?> WaitForServerAsync(string id, Func<JsonNode, bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        JsonNode? server = null;
        while (!_process.HasExited)
        {
            try
            {
                var (status, body) = await Admin.GetAsync($"servers/{id}");
                server = status == HttpStatusCode.OK ? body!["server"] : null;
                if (server is not null && condition(server))
                {
                    return server;
                }
            }
            catch (HttpRequestException)
            {
            }
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Waiting for {what}: server {id} is {server?.ToJsonString()}");
            }
            await Task.Delay(20);
        }
        return null;
    }

    public async ValueTask DisposeAsync()
    {
        Admin?.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (_output)
        {
            _output.AppendLine(line);
        }
    }
}
