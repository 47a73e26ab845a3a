using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Ferry.Tests.Shared;
using Npgsql;

namespace Ferry.Tests.Persistence;

/// <summary>The tests' PostgreSQL server goes away with the process that started it, however that process ends.</summary>
public sealed class PostgresServerTests
{
    [Fact]
    public async Task StartOwnedBy_OwnerProcessEnds_ServerStoppedAndDirRemoved()
    {
        // The owner stands in for a test host: a plain `dotnet test` whose host exits, or is killed by the runner.
        using var owner = Process.Start(new ProcessStartInfo("sleep", "600") { UseShellExecute = false })!;
        PostgresServer server;
        try
        {
            server = PostgresServer.StartOwnedBy(owner.Id);
        }
        catch
        {
            owner.Kill();
            throw;
        }
        await using (var connection = new NpgsqlConnection(server.AdminConnectionString))
        {
            await connection.OpenAsync();
        }
        Assert.True(Directory.Exists(server.Root));

        owner.Kill();
        await owner.WaitForExitAsync();

        // A condition wait with a bound: the watcher notices the owner within a second, the stop is immediate.
        var waited = Stopwatch.StartNew();
        while (Directory.Exists(server.Root) || await AcceptsAsync(server.Port))
        {
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(120),
                $"after {waited.Elapsed.TotalSeconds:F0} s the server of a gone owner still {(await AcceptsAsync(server.Port) ? "accepts connections" : "has its dir")}: {server.Root}");
            await Task.Delay(100);
        }
    }

    private static async Task<bool> AcceptsAsync(int port)
    {
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync(IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
