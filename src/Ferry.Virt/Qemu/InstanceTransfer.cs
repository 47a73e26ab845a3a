using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Ferry.Core.Errors;

namespace Ferry.Virt.Qemu;

/// <summary>One file an <see cref="InstanceTransfer"/> serves: its name in the instance directory, its size and sha256 (lower-case hex).</summary>
internal sealed record InstanceTransferFile(string Name, long Size, string Sha256);

/// <summary>
/// The agent-to-agent copy of an instance directory for cold migration and resize: what Nova does with
/// ssh and rsync between compute hosts, without SSH keys. The source serves its kept files on a random port
/// behind a random one-time token; the destination learns both only through the resize RPC (the disk info)
/// and checks every file against the sha256 the source computed after power-off.
/// </summary>
/// <remarks>
/// Wire protocol, one TCP connection:
/// <list type="number">
/// <item>client: <c>FERRY-TRANSFER/1 &lt;token&gt;\n</c></item>
/// <item>server: <c>OK\n</c>, or <c>DENIED\n</c> and close</item>
/// <item>server, per file in manifest order: its length (8 bytes, big-endian), then its bytes</item>
/// <item>client: <c>ACK\n</c> once every file is verified and in place; the server then stops (one-shot)</item>
/// </list>
/// A failed or refused attempt does not end the server (the destination may retry); <see cref="MaxFailedAttempts"/>,
/// the lifetime and <see cref="DisposeAsync"/> do. The copy is authenticated and verified but not encrypted.
/// </remarks>
internal sealed class InstanceTransfer : IAsyncDisposable
{
    public const string AddressKey = "transfer_address";
    public const string PortKey = "transfer_port";
    public const string TokenKey = "transfer_token";
    public const string FilesKey = "transfer_files";

    public const int MaxFailedAttempts = 5;

    private const string Greeting = "FERRY-TRANSFER/1 ";
    private const int MaxLineBytes = 256;
    private const int BufferBytes = 1 << 20;
    private static readonly TimeSpan s_handshakeTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan s_connectTimeout = TimeSpan.FromSeconds(30);

    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly string _directory;
    private readonly byte[] _token;
    private Task _serving = Task.CompletedTask;
    private int _failedAttempts;
    private int _disposed;

    private InstanceTransfer(TcpListener listener, string directory, IReadOnlyList<InstanceTransferFile> files, byte[] token)
    {
        _listener = listener;
        _directory = directory;
        _token = token;
        Files = files;
    }

    public IReadOnlyList<InstanceTransferFile> Files { get; }

    public string Address => ((IPEndPoint)_listener.LocalEndpoint).Address.ToString();

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public string Token => Convert.ToHexStringLower(_token);

    /// <summary>True once a destination acknowledged a complete, verified copy.</summary>
    public bool Transferred { get; private set; }

    /// <summary>Ends when the server stops: after a verified copy, too many failed attempts, the lifetime, or disposal.</summary>
    public Task Completion => _serving;

    /// <summary>Hashes <paramref name="fileNames"/> in <paramref name="directory"/> and starts serving them on <paramref name="address"/>:0.</summary>
    public static async Task<InstanceTransfer> StartAsync(string address, string directory, IReadOnlyList<string> fileNames, TimeSpan lifetime,
        CancellationToken cancellationToken)
    {
        var files = new List<InstanceTransferFile>(fileNames.Count);
        foreach (var name in fileNames)
        {
            var path = Path.Combine(directory, ValidName(name));
            await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, BufferBytes, useAsync: true);
            var hash = await SHA256.HashDataAsync(stream, cancellationToken);
            files.Add(new InstanceTransferFile(name, stream.Length, Convert.ToHexStringLower(hash)));
        }
        var listener = new TcpListener(IPAddress.Parse(address), 0);
        listener.Start();
        var transfer = new InstanceTransfer(listener, directory, files, RandomNumberGenerator.GetBytes(32));
        transfer._stop.CancelAfter(lifetime);
        transfer._serving = Task.Run(transfer.ServeAsync, CancellationToken.None);
        return transfer;
    }

    /// <summary>What the destination needs to pull the files, as disk info entries.</summary>
    public void AddTo(Dictionary<string, string> diskInfo)
    {
        ArgumentNullException.ThrowIfNull(diskInfo);
        diskInfo[AddressKey] = Address;
        diskInfo[PortKey] = Port.ToString(CultureInfo.InvariantCulture);
        diskInfo[TokenKey] = Token;
        diskInfo[FilesKey] = string.Join(',', Files.Select(f => string.Create(CultureInfo.InvariantCulture, $"{f.Name}:{f.Size}:{f.Sha256}")));
    }

    /// <summary>
    /// Destination side: pulls every file the disk info names into <paramref name="targetDirectory"/> (temporary names,
    /// sha256 checked, then renamed). Throws <see cref="FerryException"/> when the source refuses or a file does not verify;
    /// the caller removes the directory.
    /// </summary>
    public static async Task<IReadOnlyList<InstanceTransferFile>> ReceiveAsync(IReadOnlyDictionary<string, string> diskInfo, string targetDirectory,
        CancellationToken cancellationToken)
    {
        var (address, port, token, files) = Parse(diskInfo);
        using var client = new TcpClient(AddressFamily.InterNetwork) { NoDelay = true };
        using (var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            connectTimeout.CancelAfter(s_connectTimeout);
            try
            {
                await client.ConnectAsync(IPAddress.Parse(address), port, connectTimeout.Token);
            }
            catch (Exception ex) when (ex is SocketException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                throw new FerryException($"Cannot reach the instance transfer at {address}:{port}: {ex.Message}");
            }
        }
        await using var stream = client.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(Greeting + token + "\n"), cancellationToken);
        var answer = await ReadLineAsync(stream, cancellationToken);
        if (answer != "OK")
        {
            throw new FerryException($"The instance transfer at {address}:{port} refused the token ({answer ?? "closed"}).");
        }
        var parts = new List<string>();
        try
        {
            var buffer = new byte[BufferBytes];
            foreach (var file in files)
            {
                var lengthBytes = new byte[8];
                await stream.ReadExactlyAsync(lengthBytes, cancellationToken);
                var length = BinaryPrimitives.ReadInt64BigEndian(lengthBytes);
                if (length != file.Size)
                {
                    throw new FerryException($"The instance transfer sent {length} bytes of {file.Name}, not the {file.Size} announced.");
                }
                var part = Path.Combine(targetDirectory, file.Name + ".part");
                parts.Add(part);
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                await using (var output = new FileStream(part, FileMode.Create, FileAccess.Write, FileShare.None, BufferBytes, useAsync: true))
                {
                    for (var left = length; left > 0;)
                    {
                        var read = await stream.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, left)), cancellationToken);
                        if (read == 0)
                        {
                            throw new FerryException($"The instance transfer ended {left} bytes before the end of {file.Name}.");
                        }
                        hash.AppendData(buffer, 0, read);
                        await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                        left -= read;
                    }
                    await output.FlushAsync(cancellationToken);
                    output.Flush(flushToDisk: true);
                }
                var actual = Convert.ToHexStringLower(hash.GetHashAndReset());
                if (!string.Equals(actual, file.Sha256, StringComparison.Ordinal))
                {
                    throw new FerryException($"{file.Name} failed its sha256 check: received {actual}, expected {file.Sha256}.");
                }
            }
            foreach (var file in files)
            {
                File.Move(Path.Combine(targetDirectory, file.Name + ".part"), Path.Combine(targetDirectory, file.Name), overwrite: true);
            }
            parts.Clear();
            await stream.WriteAsync("ACK\n"u8.ToArray(), cancellationToken);
            await stream.FlushAsync(cancellationToken);
            return files;
        }
        catch (EndOfStreamException ex)
        {
            throw new FerryException($"The instance transfer from {address}:{port} ended early: {ex.Message}");
        }
        catch (IOException ex)
        {
            throw new FerryException($"The instance transfer from {address}:{port} failed: {ex.Message}");
        }
        finally
        {
            foreach (var part in parts.Where(File.Exists))
            {
                File.Delete(part);
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
        _listener.Stop();
        try
        {
            await _serving;
        }
        catch (OperationCanceledException)
        {
        }
        _stop.Dispose();
    }

    private async Task ServeAsync()
    {
        var ct = _stop.Token;
        try
        {
            while (!ct.IsCancellationRequested && !Transferred && _failedAttempts < MaxFailedAttempts)
            {
                using var client = await _listener.AcceptTcpClientAsync(ct);
                client.NoDelay = true;
                if (await ServeOneAsync(client, ct))
                {
                    Transferred = true;
                }
                else
                {
                    _failedAttempts++;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Stopped: lifetime over, confirm, revert or disposal.
        }
        finally
        {
            _listener.Stop();
        }
    }

    /// <summary>Serves one connection; true when the client acknowledged every file.</summary>
    private async Task<bool> ServeOneAsync(TcpClient client, CancellationToken ct)
    {
        try
        {
            await using var stream = client.GetStream();
            string? greeting;
            using (var handshake = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                handshake.CancelAfter(s_handshakeTimeout);
                greeting = await ReadLineAsync(stream, handshake.Token);
            }
            if (!Authorized(greeting))
            {
                await stream.WriteAsync("DENIED\n"u8.ToArray(), ct);
                return false;
            }
            await stream.WriteAsync("OK\n"u8.ToArray(), ct);
            var lengthBytes = new byte[8];
            foreach (var file in Files)
            {
                await using var input = new FileStream(Path.Combine(_directory, file.Name), FileMode.Open, FileAccess.Read, FileShare.Read, BufferBytes, useAsync: true);
                // A file that changed size since it was hashed is sent as it is now; the client's check refuses it.
                BinaryPrimitives.WriteInt64BigEndian(lengthBytes, input.Length);
                await stream.WriteAsync(lengthBytes, ct);
                await input.CopyToAsync(stream, BufferBytes, ct);
            }
            await stream.FlushAsync(ct);
            return await ReadLineAsync(stream, ct) == "ACK";
        }
        catch (Exception ex) when (ex is IOException or SocketException
            || (ex is OperationCanceledException && !ct.IsCancellationRequested))
        {
            return false;
        }
    }

    private bool Authorized(string? greeting)
    {
        if (greeting is null || !greeting.StartsWith(Greeting, StringComparison.Ordinal))
        {
            return false;
        }
        byte[] offered;
        try
        {
            offered = Convert.FromHexString(greeting.AsSpan(Greeting.Length));
        }
        catch (FormatException)
        {
            return false;
        }
        return CryptographicOperations.FixedTimeEquals(offered, _token);
    }

    private static (string Address, int Port, string Token, IReadOnlyList<InstanceTransferFile> Files) Parse(IReadOnlyDictionary<string, string> diskInfo)
    {
        string Get(string key) => diskInfo.TryGetValue(key, out var value) && !string.IsNullOrWhiteSpace(value)
            ? value
            : throw new BadRequestException($"The disk info has no '{key}'.");
        var address = Get(AddressKey);
        if (!IPAddress.TryParse(address, out _)
            || !int.TryParse(Get(PortKey), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            throw new BadRequestException($"The disk info names no valid transfer endpoint ({address}).");
        }
        var files = new List<InstanceTransferFile>();
        foreach (var entry in (diskInfo.TryGetValue(FilesKey, out var list) ? list : "").Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            var fields = entry.Split(':');
            if (fields.Length != 3 || !long.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out var size) || fields[2].Length != 64)
            {
                throw new BadRequestException($"Invalid transfer file entry '{entry}'.");
            }
            files.Add(new InstanceTransferFile(ValidName(fields[0]), size, fields[2].ToLowerInvariant()));
        }
        return (address, port, Get(TokenKey), files);
    }

    private static string ValidName(string name) =>
        name is "disk" or "disk.config" ? name : throw new BadRequestException($"The instance transfer does not carry '{name}'.");

    /// <summary>Reads one ASCII line (without the newline); null when the peer closed first.</summary>
    private static async Task<string?> ReadLineAsync(Stream stream, CancellationToken ct)
    {
        var line = new byte[MaxLineBytes];
        var one = new byte[1];
        for (var length = 0; length < MaxLineBytes; length++)
        {
            if (await stream.ReadAsync(one, ct) == 0)
            {
                return null;
            }
            if (one[0] == (byte)'\n')
            {
                return Encoding.ASCII.GetString(line, 0, length);
            }
            line[length] = one[0];
        }
        return null;
    }
}
