using Ferry.ControlPlane.Persistence;
using Ferry.Host.Roles;
using Ferry.Tests.Core.Rpc;
using Ferry.Tests.Persistence;

namespace Ferry.Tests.Host;

public sealed class ControlServiceHeartbeatTests
{
    [Fact]
    public async Task RunAsync_DatabaseGone_SkipsTheHeartbeatsAndKeepsRunning()
    {
        // An outage longer than the database's wait throws from a heartbeat: that must not end the conductor or scheduler
        // (a background service that throws stops its whole host).
        using var files = new TestDatabase();
        var database = files.Open();
        DatabaseSchema.Sync(database);
        var services = new ServiceStore(database, TimeProvider.System);
        database.Dispose();
        using var logs = new ScopeCapturingLoggerProvider();
        using var stop = new CancellationTokenSource();

        var heartbeats = ControlServiceHeartbeat.RunAsync(services, "controller", "nova-conductor", "conductor", TimeSpan.FromMilliseconds(10),
            logs.CreateLogger("test"), stop.Token);
        while (logs.Lines.Count(l => l.Message.Contains("Heartbeat of nova-conductor on controller failed", StringComparison.Ordinal)) < 3)
        {
            Assert.False(heartbeats.IsCompleted, "the heartbeat loop ended on a failed heartbeat");
            await Task.Delay(10);
        }
        await stop.CancelAsync();

        await heartbeats.WaitAsync(TimeSpan.FromSeconds(30)); // ends by the token, without an exception
    }
}
