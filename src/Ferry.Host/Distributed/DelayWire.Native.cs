using System.Runtime.InteropServices;

namespace Ferry.Host.Distributed;

/// <summary>The libc calls and constants of <see cref="DelayWire"/> (Linux, x86-64 and arm64 values; linux/if_tun.h).</summary>
internal sealed partial class DelayWire
{
    private const int ORdwr = 0x2;
    private const int ONonBlock = 0x800;
    private const int ECloexec = 0x80000;
    private const int EfdNonBlock = ONonBlock;

    private const nuint TunSetIff = 0x400454ca;
    private const nuint TunSetOffload = 0x400454d0;
    private const short IffTap = 0x0002;
    private const short IffNoPi = 0x1000;
    private const short IffVnetHdr = 0x4000;
    private const nuint TunFCsum = 0x01;
    private const nuint TunFTso4 = 0x02;
    private const nuint TunFTso6 = 0x04;

    private const short PollIn = 0x001;
    private const short PollErr = 0x008;
    private const short PollHup = 0x010;
    private const short PollNval = 0x020;
    private const int EIntr = 4;

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [StructLayout(LayoutKind.Sequential)]
    private readonly struct Timespec(long seconds, long nanoseconds)
    {
        public readonly long Seconds = seconds;
        public readonly long Nanoseconds = nanoseconds;

        /// <summary>A day: the wait of a direction with nothing queued, ended by a frame or by the stop.</summary>
        public static Timespec Forever => new(86_400, 0);

        public static Timespec FromTicks(long ticks)
        {
            if (ticks <= 0)
            {
                return default;
            }
            var nanoseconds = (long)((double)ticks * 1_000_000_000 / System.Diagnostics.Stopwatch.Frequency);
            return new Timespec(nanoseconds / 1_000_000_000, nanoseconds % 1_000_000_000);
        }
    }

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int IoctlRequest(int fd, nuint request, Span<byte> argument);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int IoctlValue(int fd, nuint request, nuint argument);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    private static partial int EventFd(uint initial, int flags);

    [LibraryImport("libc", EntryPoint = "ppoll", SetLastError = true)]
    private static partial int PPoll(Span<PollFd> fds, nuint count, in Timespec timeout, nint signalMask);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static partial nint Read(int fd, Span<byte> buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static partial nint Write(int fd, ReadOnlySpan<byte> buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
