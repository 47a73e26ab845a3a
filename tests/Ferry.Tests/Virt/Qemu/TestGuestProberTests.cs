using System.Net;
using System.Net.Sockets;
using System.Text;
using Ferry.Virt.Qemu;

namespace Ferry.Tests.Virt.Qemu;

public sealed class TestGuestProberTests
{
    [Fact]
    public void Parse_GuestAnswer_AllFields()
    {
        var reply = TestGuestProber.Parse("ferry-guest counter=412 checksum_counter=400 checksum=5f0e7a1c probe=p17", TimeSpan.FromSeconds(2));

        Assert.Equal(new ProbeReply(17, TimeSpan.FromSeconds(2), 412, 400, 0x5f0e7a1c), reply);
    }

    [Theory]
    [InlineData("ferry-guest counter=412 checksum_counter=400 checksum=5f0e7a1c probe=x17")]
    [InlineData("ferry-guest counter=412 checksum=5f0e7a1c probe=p17")]
    [InlineData("ferry-guest counter=412 checksum_counter=400 checksum=5F0E7A1C probe=p17")]
    [InlineData("")]
    public void Parse_AnythingElse_Null(string payload) => Assert.Null(TestGuestProber.Parse(payload, TimeSpan.Zero));

    /// <summary>A stand-in guest on loopback answers every other probe: the prober counts what it sent and measures the gaps.</summary>
    [Fact]
    public async Task Start_AnswersOnLoopback_RecordedWithTheirGaps()
    {
        using var guest = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var port = ((IPEndPoint)guest.Client.LocalEndPoint!).Port;
        using var stop = new CancellationTokenSource();
        var answering = Task.Run(async () =>
        {
            var counter = 0;
            while (!stop.IsCancellationRequested)
            {
                var probe = await guest.ReceiveAsync(stop.Token);
                if (counter++ % 2 == 0)
                {
                    var text = $"ferry-guest counter={counter} checksum_counter=0 checksum=43548100 probe={Encoding.ASCII.GetString(probe.Buffer)}";
                    await guest.SendAsync(Encoding.ASCII.GetBytes(text), probe.RemoteEndPoint, stop.Token);
                }
            }
        });

        var prober = TestGuestProber.Start(IPAddress.Loopback, TimeSpan.FromMilliseconds(5), TimeSpan.FromSeconds(30), port);
        await using (prober)
        {
            await prober.WaitForReplyAsync(TimeSpan.Zero, TimeSpan.FromSeconds(10), CancellationToken.None);
            await Task.Delay(300);
        }
        var replies = prober.Replies;
        Assert.True(replies.Count >= 5, $"{replies.Count} answers");
        Assert.All(replies, r => Assert.Equal(1, r.Sequence % 2));
        Assert.True(prober.Sent >= 2 * replies.Count - 2, $"{prober.Sent} sent for {replies.Count} answers");
        // No bound in time (a starved CI machine once held this process 5.4 s): the longest gap must be one that
        // happened, from one answer to the next, with no two answers in a row further apart.
        var (gap, at) = prober.LongestGap();
        var times = replies.Select(r => r.ReceivedAt).ToList();
        Assert.True(gap >= TimeSpan.FromMilliseconds(1), $"longest gap {gap}");
        Assert.Contains(at, times);
        Assert.Contains(at + gap, times);
        Assert.All(times.Zip(times.Skip(1)), pair => Assert.True(pair.Second - pair.First <= gap));
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => answering);
    }
}
