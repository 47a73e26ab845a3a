using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;

namespace Ferry.Virt.Qemu;

/// <summary>
/// Watches a test guest over the network (tools/test-guest/README.md, "Network"): sends a numbered probe to its UDP
/// endpoint at a fixed rate and records every answer, so a test or benchmark sees how long the guest went unheard
/// (the network blackout of a migration) and that its counter and checksum went on. Stops by itself after
/// <c>maxDuration</c>; never sends faster than asked.
/// </summary>
public sealed partial class TestGuestProber : IAsyncDisposable
{
    public const int GuestUdpPort = 7777;

    private readonly UdpClient _udp;
    private readonly IPEndPoint _guest;
    private readonly TimeSpan _interval;
    private readonly CancellationTokenSource _stop;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<ProbeReply> _replies = [];
    private readonly Lock _lock = new();
    private readonly Thread _sender;
    private readonly Task _receiver;
    private long _sent;

    private TestGuestProber(IPAddress guest, int port, TimeSpan interval, TimeSpan maxDuration)
    {
        _guest = new IPEndPoint(guest, port);
        _interval = interval;
        _udp = new UdpClient(AddressFamily.InterNetwork);
        _udp.Client.Bind(new IPEndPoint(IPAddress.Any, 0));
        _stop = new CancellationTokenSource(maxDuration);
        _receiver = Task.Run(ReceiveAsync);
        // A thread of its own: a 1 ms cadence does not survive the thread pool's scheduling on a loaded machine.
        _sender = new Thread(Send) { IsBackground = true, Name = "guest-prober" };
        _sender.Start();
    }

    /// <summary>Starts probing <paramref name="guest"/> every <paramref name="interval"/> for at most <paramref name="maxDuration"/>.</summary>
    public static TestGuestProber Start(IPAddress guest, TimeSpan interval, TimeSpan maxDuration, int port = GuestUdpPort)
    {
        ArgumentNullException.ThrowIfNull(guest);
        ArgumentOutOfRangeException.ThrowIfLessThan(interval, TimeSpan.FromMilliseconds(0.1));
        return new TestGuestProber(guest, port, interval, maxDuration);
    }

    /// <summary>Time since the prober started.</summary>
    public TimeSpan Elapsed => _clock.Elapsed;

    public long Sent => Interlocked.Read(ref _sent);

    /// <summary>The answers so far, in the order they came.</summary>
    public IReadOnlyList<ProbeReply> Replies
    {
        get
        {
            lock (_lock)
            {
                return [.. _replies];
            }
        }
    }

    /// <summary>Waits until an answer comes after <paramref name="after"/> (prober time), or throws on timeout.</summary>
    public async Task<ProbeReply> WaitForReplyAsync(TimeSpan after, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = _clock.Elapsed + timeout;
        while (_clock.Elapsed < deadline)
        {
            lock (_lock)
            {
                if (_replies.Count > 0 && _replies[^1].ReceivedAt > after)
                {
                    return _replies[^1];
                }
            }
            await Task.Delay(10, cancellationToken);
        }
        throw new TimeoutException($"The guest at {_guest} did not answer within {timeout.TotalSeconds:0.#} s ({Sent} probes sent, {Replies.Count} answers).");
    }

    /// <summary>
    /// The longest time between two answers in a row from <paramref name="from"/> on (prober time), and when it began:
    /// with probes every <c>interval</c>, a gap much longer than it is time the guest could not be reached.
    /// </summary>
    public (TimeSpan Gap, TimeSpan At) LongestGap(TimeSpan from = default)
    {
        var times = Replies.Where(r => r.ReceivedAt >= from).Select(r => r.ReceivedAt).ToList();
        var longest = (Gap: TimeSpan.Zero, At: from);
        for (var i = 1; i < times.Count; i++)
        {
            if (times[i] - times[i - 1] > longest.Gap)
            {
                longest = (times[i] - times[i - 1], times[i - 1]);
            }
        }
        return longest;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _udp.Dispose();
        _sender.Join();
        try
        {
            await _receiver;
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
        _stop.Dispose();
    }

    private void Send()
    {
        var next = _clock.Elapsed;
        while (!_stop.IsCancellationRequested)
        {
            var sequence = Interlocked.Increment(ref _sent);
            try
            {
                _udp.Send(Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"p{sequence}")), _guest);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                // No route or no neighbour yet (ARP): the probe is lost, as on any network.
            }
            next += _interval;
            var wait = next - _clock.Elapsed;
            if (wait > TimeSpan.Zero)
            {
                Thread.Sleep(wait);
            }
            else
            {
                next = _clock.Elapsed; // behind (descheduled): go on from now instead of bursting
            }
        }
    }

    private async Task ReceiveAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            UdpReceiveResult result;
            try
            {
                result = await _udp.ReceiveAsync(_stop.Token);
            }
            catch (SocketException)
            {
                continue; // ICMP unreachable from an earlier probe
            }
            if (Parse(Encoding.ASCII.GetString(result.Buffer), _clock.Elapsed) is { } reply)
            {
                lock (_lock)
                {
                    _replies.Add(reply);
                }
            }
        }
    }

    /// <summary>A guest's answer: <c>ferry-guest counter=N checksum_counter=M checksum=X probe=pS</c>; null for anything else.</summary>
    public static ProbeReply? Parse(string payload, TimeSpan receivedAt)
    {
        var m = ReplyPattern().Match(payload ?? "");
        if (!m.Success)
        {
            return null;
        }
        return new ProbeReply(
            long.Parse(m.Groups["seq"].ValueSpan, CultureInfo.InvariantCulture),
            receivedAt,
            long.Parse(m.Groups["counter"].ValueSpan, CultureInfo.InvariantCulture),
            long.Parse(m.Groups["ccounter"].ValueSpan, CultureInfo.InvariantCulture),
            uint.Parse(m.Groups["checksum"].ValueSpan, NumberStyles.HexNumber, CultureInfo.InvariantCulture));
    }

    [GeneratedRegex(@"^ferry-guest counter=(?<counter>\d+) checksum_counter=(?<ccounter>\d+) checksum=(?<checksum>[0-9a-f]{8}) probe=p(?<seq>\d+)$")]
    private static partial Regex ReplyPattern();
}

/// <summary>One answer: which probe, when it came (prober time), the guest's tick counter and its last checksum with the counter it was taken at.</summary>
public sealed record ProbeReply(long Sequence, TimeSpan ReceivedAt, long Counter, long ChecksumCounter, uint Checksum);
