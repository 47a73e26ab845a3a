using System.Diagnostics;
using Ferry.Tests.Shared;

namespace Ferry.Tests.Host.Messaging;

/// <summary>The broker fixture cleans up after a test run that was killed.</summary>
public sealed class RabbitMqServerTests
{
    [Fact]
    public async Task CleanStaleNodes_DirOfDeadRun_RemovedAndLiveRunsKept()
    {
        // A pid that has surely exited: a process we started and waited for.
        using var gone = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        await gone.WaitForExitAsync();
        var stale = Path.Combine(Path.GetTempPath(), $"ferry-rabbit-{gone.Id}-{Guid.NewGuid():N}");
        var live = Path.Combine(Path.GetTempPath(), $"ferry-rabbit-{Environment.ProcessId}-{Guid.NewGuid():N}");
        foreach (var (dir, owner) in new[] { (stale, gone.Id), (live, Environment.ProcessId) })
        {
            // Whole at once: the broker fixture's own clean-up may run meanwhile, and take the stale one already.
            RabbitMqServer.CreateWhole(dir, new Dictionary<string, string>
            {
                ["owner.pid"] = owner.ToString(System.Globalization.CultureInfo.InvariantCulture),
                // The node's pid file names a live process that is not a node of that dir: it must not be killed.
                ["pid"] = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture),
            });
        }
        try
        {
            RabbitMqServer.CleanStaleNodes();

            Assert.False(Directory.Exists(stale));
            Assert.True(Directory.Exists(live));
        }
        finally
        {
            Directory.Delete(live, recursive: true);
            if (Directory.Exists(stale))
            {
                Directory.Delete(stale, recursive: true);
            }
        }
    }

    [Fact]
    public async Task WatchOwner_OwnerProcessEnds_NodeOfTheDirKilledAndDirRemoved()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"ferry-rabbit-watch-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path.Combine(dir, "mnesia"));
        // Stand-ins: the owner for a test host, the "node" for a beam whose command line names its dir.
        using var owner = Process.Start(new ProcessStartInfo("sleep", "600") { UseShellExecute = false })!;
        using var node = Process.Start(new ProcessStartInfo("sh", ["-c", "while :; do sleep 1; done", dir]) { UseShellExecute = false })!;
        await File.WriteAllTextAsync(Path.Combine(dir, "pid"), node.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        try
        {
            RabbitMqServer.WatchOwner(dir, owner.Id);
            Assert.False(node.HasExited);

            owner.Kill();
            await node.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120));
            var waited = Stopwatch.StartNew();
            while (Directory.Exists(dir))
            {
                Assert.True(waited.Elapsed < TimeSpan.FromSeconds(60), $"{dir} still there {waited.Elapsed.TotalSeconds:F0} s after its node died");
                await Task.Delay(50);
            }
        }
        finally
        {
            owner.Kill();
            node.Kill();
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }
}
