using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;

namespace Ferry.Virt.Qemu.Qmp;

/// <summary>
/// A QEMU Machine Protocol client over a unix socket: line-delimited JSON, one reader loop that matches
/// replies to commands by <c>id</c> and pushes events into <see cref="Events"/>
/// (https://www.qemu.org/docs/master/interop/qmp-spec.html).
/// </summary>
public sealed class QmpClient : IAsyncDisposable
{
    private static readonly TimeSpan s_defaultTimeout = TimeSpan.FromSeconds(20);

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly StreamReader _reader;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ConcurrentDictionary<long, TaskCompletionSource<JsonElement>> _pending = new();
    private readonly Channel<QmpEvent> _events = Channel.CreateUnbounded<QmpEvent>(new UnboundedChannelOptions { SingleReader = false, SingleWriter = true });
    private readonly CancellationTokenSource _stop = new();
    private Task _readLoop = Task.CompletedTask;
    private long _nextId;
    private int _disposed;

    private QmpClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: false);
        _reader = new StreamReader(_stream, new UTF8Encoding(false), detectEncodingFromByteOrderMarks: false);
    }

    /// <summary>Events in arrival order. Completes when the connection closes.</summary>
    public ChannelReader<QmpEvent> Events => _events.Reader;

    /// <summary>Completes when the reader loop ends (QEMU closed the socket or the client was disposed).</summary>
    public Task Completion => _readLoop;

    /// <summary>The QEMU version from the greeting, e.g. 7002022 for 7.2.22.</summary>
    public long QemuVersion { get; private set; }

    /// <summary>Connects, reads the greeting and negotiates capabilities.</summary>
    public static async Task<QmpClient> ConnectAsync(string socketPath, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        QmpClient? client = null;
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken);
            client = new QmpClient(socket);
            await client.HandshakeAsync(cancellationToken);
            return client;
        }
        catch
        {
            if (client is not null)
            {
                await client.DisposeAsync();
            }
            socket.Dispose();
            throw;
        }
    }

    private async Task HandshakeAsync(CancellationToken cancellationToken)
    {
        var line = await _reader.ReadLineAsync(cancellationToken)
            ?? throw new QmpException(QmpException.ConnectionClosedClass, "The monitor closed before its greeting.");
        using (var greeting = JsonDocument.Parse(line))
        {
            if (!greeting.RootElement.TryGetProperty("QMP", out var qmp))
            {
                throw new QmpException("ProtocolError", $"Unexpected greeting: {line}");
            }
            if (qmp.TryGetProperty("version", out var version) && version.TryGetProperty("qemu", out var q))
            {
                QemuVersion = q.GetProperty("major").GetInt64() * 1_000_000 + q.GetProperty("minor").GetInt64() * 1_000 + q.GetProperty("micro").GetInt64();
            }
        }
        _readLoop = Task.Run(() => ReadLoopAsync(_stop.Token), CancellationToken.None);
        await ExecuteAsync("qmp_capabilities", null, cancellationToken);
    }

    /// <summary>Runs a command and returns its <c>return</c> value, or throws <see cref="QmpException"/>.</summary>
    public async Task<JsonElement> ExecuteAsync(string command, JsonObject? arguments, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(command);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var id = Interlocked.Increment(ref _nextId);
        var reply = new TaskCompletionSource<JsonElement>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = reply;
        try
        {
            var payload = Serialize(command, arguments, id);
            await _writeLock.WaitAsync(cancellationToken);
            try
            {
                await _stream.WriteAsync(payload, cancellationToken);
            }
            finally
            {
                _writeLock.Release();
            }
            if (_readLoop.IsCompleted)
            {
                FailPending();
            }
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(s_defaultTimeout);
            try
            {
                return await reply.Task.WaitAsync(timeout.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new QmpException(QmpException.TimeoutClass, $"No reply to '{command}' within {s_defaultTimeout.TotalSeconds:F0} s.");
            }
        }
        catch (IOException ex)
        {
            throw new QmpException(QmpException.ConnectionClosedClass, $"'{command}': {ex.Message}");
        }
        catch (SocketException ex)
        {
            throw new QmpException(QmpException.ConnectionClosedClass, $"'{command}': {ex.Message}");
        }
        finally
        {
            _pending.TryRemove(id, out _);
        }
    }

    private static byte[] Serialize(string command, JsonObject? arguments, long id)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("execute", command);
            if (arguments is not null)
            {
                writer.WritePropertyName("arguments");
                arguments.WriteTo(writer);
            }
            writer.WriteNumber("id", id);
            writer.WriteEndObject();
        }
        buffer.WriteByte((byte)'\n');
        return buffer.ToArray();
    }

    private async Task ReadLoopAsync(CancellationToken cancellationToken)
    {
        try
        {
            while (await _reader.ReadLineAsync(cancellationToken) is { } line)
            {
                if (line.Length == 0)
                {
                    continue;
                }
                Dispatch(line);
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (IOException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
        finally
        {
            _events.Writer.TryComplete();
            FailPending();
        }
    }

    private void Dispatch(string line)
    {
        using var doc = JsonDocument.Parse(line);
        var root = doc.RootElement;
        if (root.TryGetProperty("event", out var name))
        {
            var data = root.TryGetProperty("data", out var d) ? d.Clone() : default;
            var timestamp = DateTimeOffset.UtcNow;
            if (root.TryGetProperty("timestamp", out var ts)
                && ts.TryGetProperty("seconds", out var s) && ts.TryGetProperty("microseconds", out var us))
            {
                timestamp = DateTimeOffset.FromUnixTimeMilliseconds(s.GetInt64() * 1000 + us.GetInt64() / 1000);
            }
            _events.Writer.TryWrite(new QmpEvent(name.GetString() ?? "", data, timestamp));
            return;
        }
        if (!root.TryGetProperty("id", out var idElement) || idElement.ValueKind != JsonValueKind.Number
            || !_pending.TryGetValue(idElement.GetInt64(), out var reply))
        {
            return; // a reply nobody waits for any more (timed out or cancelled)
        }
        if (root.TryGetProperty("error", out var error))
        {
            var errorClass = error.TryGetProperty("class", out var c) ? c.GetString() ?? "" : "";
            var desc = error.TryGetProperty("desc", out var ds) ? ds.GetString() ?? "" : "";
            reply.TrySetException(new QmpException(errorClass, desc));
        }
        else
        {
            reply.TrySetResult(root.TryGetProperty("return", out var ret) ? ret.Clone() : default);
        }
    }

    private void FailPending()
    {
        foreach (var id in _pending.Keys)
        {
            if (_pending.TryRemove(id, out var reply))
            {
                reply.TrySetException(new QmpException(QmpException.ConnectionClosedClass, "The monitor connection closed."));
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        await _stop.CancelAsync();
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }
        _socket.Dispose();
        try
        {
            await _readLoop;
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ObjectDisposedException)
        {
        }
        _reader.Dispose();
        await _stream.DisposeAsync();
        _stop.Dispose();
        _writeLock.Dispose();
        FailPending();
    }
}
