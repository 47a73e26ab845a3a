using System.Buffers;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Ferry.Host.Distributed;

/// <summary>
/// A cable with a delay, for `--link-latency` in the netns lab: two TAP devices whose frames this process carries across,
/// each no earlier than its arrival plus the delay. It stands in for a veth pair with tc netem on both ends on kernels
/// without netem (this machine's has none, nor fq or tbf; tun is built in everywhere QEMU runs guests).
/// <para>
/// The taps are made with a virtio-net header and checksum/TSO offloads (as QEMU's own taps are), so the kernel hands over
/// GSO super-frames of up to 64 KiB rather than 1500-byte segments: a frame's header is carried verbatim to the other tap,
/// which segments or checksums it where a veth would have. Frames wait in a FIFO (one delay for all, so arrival order is
/// release order) of at most <see cref="MaxFrames"/> frames or <see cref="MaxBytes"/> bytes each way; beyond it they are
/// dropped, as netem drops beyond its limit. A write to a tap that is down fails and its frame is lost, as on a cut cable.
/// </para>
/// The taps are not persistent: they vanish when their descriptors close, on <see cref="Dispose"/> or when the process
/// ends however it ends. A tap may be moved to another namespace (<c>ip link set … netns</c>); its descriptor keeps working.
/// See https://docs.kernel.org/networking/tuntap.html.
/// </summary>
internal sealed partial class DelayWire : IDisposable
{
    /// <summary>Frames waiting each way at most (the limit the lab gave netem).</summary>
    public const int MaxFrames = 100_000;

    /// <summary>Bytes waiting each way at most: 1 Gbit/s for 250 ms.</summary>
    public const long MaxBytes = 32L << 20;

    private readonly int _first;
    private readonly int _second;
    private readonly int _stop;
    private readonly Direction[] _directions;
    private int _disposed;

    private DelayWire(int first, int second, int stop, TimeSpan delay, string name)
    {
        _first = first;
        _second = second;
        _stop = stop;
        var ticks = (long)(delay.TotalSeconds * Stopwatch.Frequency);
        _directions = [new Direction(first, second, stop, ticks, $"{name} >"), new Direction(second, first, stop, ticks, $"{name} <")];
    }

    /// <summary>Frames dropped so far because a direction's queue was full.</summary>
    public long Dropped => _directions.Sum(d => Volatile.Read(ref d.Dropped));

    /// <summary>Frames the receiving tap refused so far (it was down: a cut cable).</summary>
    public long Lost => _directions.Sum(d => Volatile.Read(ref d.Lost));

    /// <summary>
    /// Makes taps <paramref name="first"/> and <paramref name="second"/> in this process's namespace (down, without
    /// addresses) and starts carrying frames between them, <paramref name="delay"/> late each way.
    /// </summary>
    public static DelayWire Open(string first, string second, TimeSpan delay)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(delay, TimeSpan.Zero);
        var opened = new List<int>();
        try
        {
            opened.Add(OpenTap(first));
            opened.Add(OpenTap(second));
            var stop = EventFd(0, EfdNonBlock | ECloexec);
            if (stop < 0)
            {
                throw Failure("eventfd", "");
            }
            opened.Add(stop);
            var wire = new DelayWire(opened[0], opened[1], stop, delay, $"{first}-{second}");
            foreach (var direction in wire._directions)
            {
                direction.Start();
            }
            return wire;
        }
        catch
        {
            foreach (var fd in opened)
            {
                _ = Close(fd);
            }
            throw;
        }
    }

    private static int OpenTap(string name)
    {
        var fd = Open("/dev/net/tun", ORdwr | ONonBlock | ECloexec);
        if (fd < 0)
        {
            throw Failure("open /dev/net/tun", $" (the kernel needs CONFIG_TUN for --link-latency; making tap {name})");
        }
        // struct ifreq: the name (16 bytes, NUL-terminated), then the flags (a short).
        Span<byte> request = stackalloc byte[40];
        request.Clear();
        System.Text.Encoding.ASCII.GetBytes(name, request[..15]);
        BitConverter.TryWriteBytes(request[16..], (short)(IffTap | IffNoPi | IffVnetHdr));
        if (IoctlRequest(fd, TunSetIff, request) < 0 || IoctlValue(fd, TunSetOffload, TunFCsum | TunFTso4 | TunFTso6) < 0)
        {
            var failure = Failure("making tap", $" {name}");
            _ = Close(fd);
            throw failure;
        }
        return fd;
    }

    private static FerryStartException Failure(string what, string detail)
    {
        var errno = Marshal.GetLastPInvokeError();
        return new FerryStartException($"lab: {what}{detail} failed: {Marshal.GetPInvokeErrorMessage(errno)}");
    }

    /// <summary>Stops both directions, drops what is still queued and closes the taps (they vanish).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        ReadOnlySpan<byte> one = BitConverter.GetBytes(1UL);
        _ = Write(_stop, one, (nuint)one.Length);
        foreach (var direction in _directions)
        {
            direction.Join();
        }
        _ = Close(_first);
        _ = Close(_second);
        _ = Close(_stop);
    }

    /// <summary>One way of the wire: a thread reading one tap, holding each frame until it is due, writing it to the other.</summary>
    private sealed class Direction(int from, int to, int stop, long delayTicks, string name)
    {
        /// <summary>A GSO frame is at most 64 KiB plus its headers; a read into a smaller buffer would truncate it.</summary>
        private const int FrameBuffer = 128 * 1024;

        /// <summary>Reads at most this many frames before writing what is due: a steady stream in cannot hold frames back.</summary>
        private const int ReadBatch = 64;

        private readonly Queue<(long Due, byte[] Frame, int Length)> _queue = new();
        private Thread? _running;
        private long _queuedBytes;

        public long Dropped;
        public long Lost;

        public void Start()
        {
            _running = new Thread(Run) { IsBackground = true, Name = $"wire {name}" };
            _running.Start();
        }

        public void Join() => _running?.Join();

        private void Run()
        {
            var buffer = new byte[FrameBuffer];
            Span<PollFd> fds = stackalloc PollFd[2];
            try
            {
                while (true)
                {
                    fds[0] = new PollFd { Fd = from, Events = PollIn };
                    fds[1] = new PollFd { Fd = stop, Events = PollIn };
                    var timeout = _queue.Count == 0 ? Timespec.Forever : Timespec.FromTicks(_queue.Peek().Due - Stopwatch.GetTimestamp());
                    if (PPoll(fds, 2, in timeout, 0) < 0)
                    {
                        if (Marshal.GetLastPInvokeError() == EIntr)
                        {
                            continue;
                        }
                        return;
                    }
                    if (fds[1].Revents != 0 || (fds[0].Revents & (PollErr | PollHup | PollNval)) != 0)
                    {
                        // Stopped, or the tap is gone (its namespace was deleted under it).
                        return;
                    }
                    if ((fds[0].Revents & PollIn) != 0)
                    {
                        ReadArrived(buffer);
                    }
                    WriteDue();
                }
            }
            finally
            {
                while (_queue.TryDequeue(out var queued))
                {
                    ArrayPool<byte>.Shared.Return(queued.Frame);
                }
            }
        }

        private void ReadArrived(byte[] buffer)
        {
            for (var i = 0; i < ReadBatch; i++)
            {
                var read = (int)Read(from, buffer, (nuint)buffer.Length);
                if (read <= 0)
                {
                    return;
                }
                if (_queue.Count >= MaxFrames || _queuedBytes + read > MaxBytes)
                {
                    Interlocked.Increment(ref Dropped);
                    continue;
                }
                var frame = ArrayPool<byte>.Shared.Rent(read);
                buffer.AsSpan(0, read).CopyTo(frame);
                _queue.Enqueue((Stopwatch.GetTimestamp() + delayTicks, frame, read));
                _queuedBytes += read;
            }
        }

        private void WriteDue()
        {
            var now = Stopwatch.GetTimestamp();
            while (_queue.TryPeek(out var head) && head.Due <= now)
            {
                _queue.Dequeue();
                _queuedBytes -= head.Length;
                if (Write(to, head.Frame, (nuint)head.Length) < 0)
                {
                    // EIO: the tap is down (SetLinkAsync's cut cable); the frame is lost, as it would be on the wire.
                    Interlocked.Increment(ref Lost);
                }
                ArrayPool<byte>.Shared.Return(head.Frame);
            }
        }
    }
}
