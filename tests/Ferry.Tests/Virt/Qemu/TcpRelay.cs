using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Ferry.Tests.Virt.Qemu;

/// <summary>
/// The network between a migration source and its destination, on loopback: forwards both directions of every
/// connection to the destination, and can be cut (both ends reset, as when a switch reboots) or go silent
/// (connections stay open but nothing crosses, as when packets are dropped: TCP notices only after minutes).
/// </summary>
internal sealed class TcpRelay : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _silenceLifted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ConcurrentBag<Socket> _sockets = [];
    private readonly Task _accepting;
    private long _bytes;
    private volatile bool _silent;

    /// <param name="targetUri">The destination's <c>tcp:HOST:PORT</c> migration address.</param>
    public TcpRelay(string targetUri)
    {
        var parts = targetUri.Split(':');
        _target = new IPEndPoint(IPAddress.Parse(parts[1]), int.Parse(parts[2], CultureInfo.InvariantCulture));
        _listener.Start();
        _accepting = AcceptAsync();
    }

    /// <summary>The address to migrate to instead of the destination's.</summary>
    public string Uri => string.Create(CultureInfo.InvariantCulture, $"tcp:127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}");

    public long BytesForwarded => Interlocked.Read(ref _bytes);

    /// <summary>Resets every connection on both sides.</summary>
    public void Cut()
    {
        foreach (var socket in _sockets)
        {
            try
            {
                socket.LingerState = new LingerOption(true, 0); // close with RST, not FIN
                socket.Close();
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    /// <summary>Stops forwarding without closing anything.</summary>
    public void Silence() => _silent = true;

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptSocketAsync(_stop.Token);
                var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await upstream.ConnectAsync(_target, _stop.Token);
                _sockets.Add(client);
                _sockets.Add(upstream);
                _ = PumpAsync(client, upstream);
                _ = PumpAsync(upstream, client);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task PumpAsync(Socket from, Socket to)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var read = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (_silent)
                {
                    await _silenceLifted.Task.WaitAsync(_stop.Token);
                }
                if (read == 0)
                {
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }
                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, _stop.Token);
                Interlocked.Add(ref _bytes, read);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        Cut();
        await _accepting;
        _stop.Dispose();
    }
}
