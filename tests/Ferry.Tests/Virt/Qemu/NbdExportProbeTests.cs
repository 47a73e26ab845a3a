using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Ferry.Core.Volumes;
using Ferry.Virt.Qemu;
using Ferry.Virt.Storage;

namespace Ferry.Tests.Virt.Qemu;

/// <summary>
/// The check of a volume's NBD server before QEMU is given the volume (<see cref="NbdExportProbe"/>): a server that greets
/// passes and is left with NBD_OPT_ABORT; one that never greets, none at all, or one that speaks something else, each
/// come back as the reason, within the deadline.
/// </summary>
public sealed class NbdExportProbeTests : IDisposable
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(10);
    private readonly CancellationTokenSource _limit = new(TimeSpan.FromSeconds(60));

    private CancellationToken Ct => _limit.Token;

    public void Dispose() => _limit.Dispose();

    [Fact]
    public async Task ProbeAsync_ServerGreets_NullAndTheClientLeavesWithAbort()
    {
        using var listener = Listen();
        var server = ServeOnceAsync(listener, async stream =>
        {
            await stream.WriteAsync(Greeting(flags: 3), Ct);
            var request = new byte[20];
            await stream.ReadExactlyAsync(request, Ct);
            await stream.WriteAsync(AbortReply(), Ct);
            return request;
        });

        var reason = await NbdExportProbe.ProbeAsync("127.0.0.1", PortOf(listener), s_timeout, Ct);

        Assert.Null(reason);
        var request = await server;
        Assert.Equal(3u, BinaryPrimitives.ReadUInt32BigEndian(request));                 // fixed newstyle, no zeroes: as offered
        Assert.Equal("IHAVEOPT", Encoding.ASCII.GetString(request, 4, 8));
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32BigEndian(request.AsSpan(12)));      // NBD_OPT_ABORT
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32BigEndian(request.AsSpan(16)));      // no data
    }

    [Fact]
    public async Task ProbeAsync_ServerClosesWithoutAcknowledging_StillNull()
    {
        using var listener = Listen();
        var server = ServeOnceAsync(listener, async stream =>
        {
            await stream.WriteAsync(Greeting(flags: 1), Ct);
            var request = new byte[20];
            await stream.ReadExactlyAsync(request, Ct);
            return request;
        });

        Assert.Null(await NbdExportProbe.ProbeAsync("127.0.0.1", PortOf(listener), s_timeout, Ct));
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32BigEndian(await server));
    }

    [Fact]
    public async Task ProbeAsync_ServerAcceptsButNeverGreets_NoAnswerWithinTheTimeout()
    {
        using var listener = Listen();
        using var held = new CancellationTokenSource();
        var server = ServeOnceAsync(listener, async stream =>
        {
            await Task.Delay(Timeout.Infinite, held.Token).ContinueWith(_ => { }, TaskScheduler.Default);
            return Array.Empty<byte>();
        });

        var reason = await NbdExportProbe.ProbeAsync("127.0.0.1", PortOf(listener), TimeSpan.FromMilliseconds(300), Ct);

        await held.CancelAsync();
        await server;
        Assert.Equal("no answer within 0.3 s", reason);
    }

    [Fact]
    public async Task ProbeAsync_NothingListens_TheConnectError()
    {
        int port;
        using (var listener = Listen())
        {
            port = PortOf(listener);
        }

        var reason = await NbdExportProbe.ProbeAsync("127.0.0.1", port, s_timeout, Ct);

        Assert.Equal("Connection refused", reason);
    }

    [Fact]
    public async Task ProbeAsync_ServerSpeaksAnotherProtocol_SaysItIsNotNbd()
    {
        using var listener = Listen();
        var server = ServeOnceAsync(listener, async stream =>
        {
            await stream.WriteAsync("HTTP/1.1 400 Bad Request\r\n\r\n"u8.ToArray(), Ct);
            return Array.Empty<byte>();
        });

        var reason = await NbdExportProbe.ProbeAsync("127.0.0.1", PortOf(listener), s_timeout, Ct);

        await server;
        Assert.Equal("the server there does not speak (newstyle) NBD", reason);
    }

    /// <summary>The volume service's own server: it greets, and the probe's leaving is no failed negotiation in its log.</summary>
    [Fact]
    [Trait("Requires", "qemu")]
    public async Task ProbeAsync_QemuStorageDaemonExport_NullAndNothingInTheDaemonsLog()
    {
        var root = TestGuestFixture.NewTempRoot();
        await using var backend = new QemuStorageDaemonBackend(new QemuStorageDaemonOptions
        {
            VolumesDirectory = Path.Combine(root, "volumes"),
            RunDirectory = Path.Combine(root, "run"),
        });
        try
        {
            var id = Guid.NewGuid().ToString();
            await backend.CreateAsync(id, 1, null, Ct);
            var connection = await backend.ConnectionInfoAsync(id, new VolumeConnector { Host = "test-host", Ip = "127.0.0.1" }, Ct);

            var reason = await NbdExportProbe.ProbeAsync(connection.Host, connection.Port, s_timeout, Ct);

            Assert.Null(reason);
            await Task.Delay(200, Ct);   // what the daemon would log of the closed connection, it logs at once
            Assert.DoesNotContain("negotiation failed", await File.ReadAllTextAsync(backend.LogPath, Ct), StringComparison.Ordinal);
        }
        finally
        {
            await backend.StopDaemonAsync(CancellationToken.None);
            Directory.Delete(root, recursive: true);
        }
    }

    private static TcpListener Listen()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return listener;
    }

    private static int PortOf(TcpListener listener) => ((IPEndPoint)listener.LocalEndpoint).Port;

    private async Task<byte[]> ServeOnceAsync(TcpListener listener, Func<NetworkStream, Task<byte[]>> serve)
    {
        using var client = await listener.AcceptTcpClientAsync(Ct);
        await using var stream = client.GetStream();
        return await serve(stream);
    }

    private static byte[] Greeting(ushort flags)
    {
        var greeting = new byte[18];
        Encoding.ASCII.GetBytes("NBDMAGICIHAVEOPT").CopyTo(greeting, 0);
        BinaryPrimitives.WriteUInt16BigEndian(greeting.AsSpan(16), flags);
        return greeting;
    }

    /// <summary>NBD_REP_ACK to NBD_OPT_ABORT: the option reply magic, the option, the reply type, no data.</summary>
    private static byte[] AbortReply()
    {
        var reply = new byte[20];
        BinaryPrimitives.WriteUInt64BigEndian(reply, 0x3e889045565a9);
        BinaryPrimitives.WriteUInt32BigEndian(reply.AsSpan(8), 2);
        BinaryPrimitives.WriteUInt32BigEndian(reply.AsSpan(12), 1);
        return reply;
    }
}
