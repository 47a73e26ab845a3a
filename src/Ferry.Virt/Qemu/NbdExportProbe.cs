using System.Buffers.Binary;
using System.Globalization;
using System.Net.Sockets;

namespace Ferry.Virt.Qemu;

/// <summary>
/// Whether a volume's NBD server answers from this host, asked before a QEMU is given the volume. QEMU opens an NBD node
/// with one blocking connect and a blocking read of the server's greeting: at start-up before its monitor answers, or in
/// <c>blockdev-add</c> while it holds its main loop. Across a path that drops packets the connect waits until the kernel
/// gives up (<c>tcp_syn_retries</c>: about two minutes), and a server that accepts but never speaks holds it for ever. The
/// probe connects with a deadline, reads the greeting and leaves with <c>NBD_OPT_ABORT</c>, as the protocol asks of a
/// client that goes before it chose an export (a bare close makes qemu-storage-daemon log a failed negotiation each time).
/// https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md#newstyle-negotiation
/// </summary>
internal static class NbdExportProbe
{
    private const ulong NbdMagic = 0x4e42444d41474943;            // "NBDMAGIC"
    private const ulong OptionMagic = 0x49484156454f5054;         // "IHAVEOPT"
    private const ushort FlagFixedNewstyle = 1;
    private const ushort FlagNoZeroes = 2;
    private const uint OptionAbort = 2;
    private const int GreetingBytes = 18;                         // both magics and the server's handshake flags
    private const int OptionReplyBytes = 20;                      // magic, option, reply type, length

    /// <summary>Null when the NBD server at <paramref name="host"/>:<paramref name="port"/> greeted within <paramref name="timeout"/>; else why not.</summary>
    public static async Task<string?> ProbeAsync(string host, int port, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(host, port, deadline.Token);
            await using var stream = new NetworkStream(socket, ownsSocket: false);
            var greeting = new byte[GreetingBytes];
            await stream.ReadExactlyAsync(greeting, deadline.Token);
            if (BinaryPrimitives.ReadUInt64BigEndian(greeting) != NbdMagic || BinaryPrimitives.ReadUInt64BigEndian(greeting.AsSpan(8)) != OptionMagic)
            {
                return "the server there does not speak (newstyle) NBD";
            }
            var abort = new byte[4 + 16];
            var serverFlags = BinaryPrimitives.ReadUInt16BigEndian(greeting.AsSpan(16));
            BinaryPrimitives.WriteUInt32BigEndian(abort, (uint)(serverFlags & (FlagFixedNewstyle | FlagNoZeroes)));
            BinaryPrimitives.WriteUInt64BigEndian(abort.AsSpan(4), OptionMagic);
            BinaryPrimitives.WriteUInt32BigEndian(abort.AsSpan(12), OptionAbort);
            await stream.WriteAsync(abort, deadline.Token);
            try
            {
                // The server acknowledges and closes; waiting for that keeps its side of the close clean.
                await stream.ReadExactlyAsync(new byte[OptionReplyBytes], deadline.Token);
            }
            catch (Exception ex) when (ex is EndOfStreamException or IOException)
            {
                // It may close without a reply (the protocol allows both): it greeted, which is what was asked.
            }
            return null;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return string.Create(CultureInfo.InvariantCulture, $"no answer within {timeout.TotalSeconds:0.#} s");
        }
        catch (SocketException ex)
        {
            return ex.Message;
        }
        catch (Exception ex) when (ex is EndOfStreamException or IOException)
        {
            return "the connection closed before the NBD greeting";
        }
    }
}
