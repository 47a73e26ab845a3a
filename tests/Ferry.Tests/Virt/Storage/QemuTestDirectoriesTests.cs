using System.Diagnostics;
using System.Globalization;
using Ferry.Tests.Shared;
using Ferry.Tests.Virt.Qemu;
using Ferry.Virt.Qemu;
using Ferry.Virt.Storage;
using Xunit.Abstractions;

namespace Ferry.Tests.Virt.Storage;

/// <summary>
/// What a test run killed with SIGKILL leaves behind, removed by the next run: the qemu-storage-daemon of its directory
/// (it runs in a session of its own, so it outlives the test process) and the directory. Daemons of live runs, of
/// directories the sweep cannot prove abandoned and of a deployment's data directory keep running. The directories
/// live under a root of this test, so the sweep it runs sees nothing of other runs.
/// </summary>
[Trait("Requires", "qemu")]
public sealed class QemuTestDirectoriesTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly string _root = Path.Combine("/tmp", "fsw-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly List<string> _dataDirectories = [];
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(90));

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(_root);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        try
        {
            foreach (var directory in _dataDirectories.Where(Directory.Exists))
            {
                await using var backend = Backend(directory);
                await backend.StopDaemonAsync(CancellationToken.None);
            }
            Survivors.KillAndFail(DaemonsUnder(_root), "qemu-storage-daemon");
        }
        finally
        {
            _timeout.Dispose();
            Directory.Delete(_root, recursive: true);
        }
    }

    [Fact]
    public async Task RemoveKilledRuns_DaemonOfADeadOwner_KillsItAndRemovesTheDirectoryOnly()
    {
        var killedRun = DataDirectory("fq-0000dead", owner: DeadPid());
        var liveRun = DataDirectory("fqf-0000a11e", owner: Environment.ProcessId);
        var unowned = DataDirectory("fgl-00000000", owner: null);
        var deployment = DataDirectory("var", owner: DeadPid());
        var orphan = await StartDaemonAsync(killedRun);
        var kept = new[] { await StartDaemonAsync(liveRun), await StartDaemonAsync(unowned), await StartDaemonAsync(deployment) };

        var removed = QemuTestDirectories.RemoveKilledRuns(_root);

        Assert.Equal(1, removed);
        Assert.False(QemuProcess.IsAlive(orphan, killedRun + "/"), $"the daemon of the killed run ({orphan}) still runs");
        Assert.False(Directory.Exists(killedRun), $"{killedRun} is still there");
        Assert.Equal(kept.Order(), DaemonsUnder(_root).Order());
        Assert.All((string[])[liveRun, unowned, deployment], directory => Assert.True(Directory.Exists(directory), $"{directory} was removed"));
    }

    [Fact]
    public void Create_UnknownPrefix_IsRefused()
    {
        var ex = Assert.Throws<ArgumentException>(() => QemuTestDirectories.Create("fzz"));

        Assert.Contains("fqf", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>A data directory as a fixture makes it: its owner file names <paramref name="owner"/> (none when null).</summary>
    private string DataDirectory(string name, int? owner)
    {
        var directory = Path.Combine(_root, name);
        Directory.CreateDirectory(directory);
        if (owner is { } pid)
        {
            File.WriteAllText(Path.Combine(directory, QemuTestDirectories.OwnerFile), pid.ToString(CultureInfo.InvariantCulture));
        }
        _dataDirectories.Add(directory);
        return directory;
    }

    /// <summary>Starts the daemon of the directory as Ferry's volume service does, then lets go of it as a killed process would.</summary>
    private async Task<int> StartDaemonAsync(string dataDirectory)
    {
        await using var backend = Backend(dataDirectory);
        await backend.StartAsync(_timeout.Token);
        return backend.DaemonPid!.Value;
    }

    private QemuStorageDaemonBackend Backend(string dataDirectory) =>
        new(new QemuStorageDaemonOptions
        {
            VolumesDirectory = Path.Combine(dataDirectory, "volumes"),
            RunDirectory = Path.Combine(dataDirectory, "run", "volumes"),
        }, new TestOutputLogger<QemuStorageDaemonBackend>(output, Path.GetFileName(dataDirectory)));

    /// <summary>The pid of a process that has ended (and been reaped).</summary>
    private static int DeadPid()
    {
        using var process = Process.Start("true");
        process.WaitForExit();
        return process.Id;
    }

    /// <summary>The live qemu-storage-daemon processes whose QMP socket lies under <paramref name="root"/>.</summary>
    private static List<int> DaemonsUnder(string root) =>
        [.. Directory.GetDirectories("/proc")
            .Select(d => int.TryParse(Path.GetFileName(d), CultureInfo.InvariantCulture, out var pid) ? pid : 0)
            .Where(pid => pid > 0 && QemuProcess.IsAlive(pid, "path=" + root + "/") && QemuProcess.IsAlive(pid, "qemu-storage-daemon"))];
}
