using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Ferry.Host;

/// <summary>
/// The API ports of an api role (or all-in-one): one per API it serves. A port of 0 is bound here, at build time, to a free port that the
/// options then name, and Kestrel takes over that very socket: no window in which another process
/// can take the port between choosing it and listening on it, and the token catalog, the agents'
/// placement URL and the tests know the real port before anything starts.
/// </summary>
internal sealed class ListenSockets
{
    private readonly List<(int Port, ulong? Handle)> _ports = [];
    private IPAddress _address = IPAddress.Loopback;
    private bool _reusePort;

    public static ListenSockets Bind(FerryHostOptions options)
    {
        var sockets = new ListenSockets { _address = IPAddress.Parse(options.ListenAddress), _reusePort = options.ReusePort };
        if (options.Serves("compute"))
        {
            options.ComputeApiPort = sockets.Add(options.ComputeApiPort);
        }
        if (options.Serves("placement"))
        {
            options.PlacementPort = sockets.Add(options.PlacementPort);
        }
        if (options.UsesKeystone && options.Serves("identity"))
        {
            options.IdentityPort = sockets.Add(options.IdentityPort);
        }
        if (options.Serves("image"))
        {
            options.ImagePort = sockets.Add(options.ImagePort);
        }
        if (options.Serves("network"))
        {
            options.NetworkPort = sockets.Add(options.NetworkPort);
        }
        if (options.Serves("volume"))
        {
            options.VolumePort = sockets.Add(options.VolumePort);
        }
        return sockets;
    }

    public void Configure(KestrelServerOptions kestrel)
    {
        foreach (var (port, handle) in _ports)
        {
            if (handle is { } fd)
            {
                kestrel.ListenHandle(fd);
            }
            else
            {
                kestrel.Listen(_address, port);
            }
        }
    }

    private int Add(int port)
    {
        if (port != 0 && !_reusePort)
        {
            _ports.Add((port, null));
            return port;
        }
        var socket = new Socket(_address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        if (_reusePort)
        {
            // Linux's SO_REUSEPORT (SOL_SOCKET 1, option 15): every api replica binds the same port and the kernel
            // spreads new connections between them, so a client needs no proxy to reach either.
            socket.SetRawSocketOption(1, 15, BitConverter.GetBytes(1));
        }
        socket.Bind(new IPEndPoint(_address, port));
        var bound = ((IPEndPoint)socket.LocalEndPoint!).Port;
        var handle = (ulong)socket.Handle;
        // Kestrel owns the descriptor from here on (it listens on it and closes it at stop): this Socket
        // object must never close it too, or a later descriptor with the same number would be closed.
        socket.SafeHandle.SetHandleAsInvalid();
        _ports.Add((bound, handle));
        return bound;
    }
}
