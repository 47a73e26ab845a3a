using System.Net;
using System.Text.Json.Nodes;
using Ferry.Virt.Qemu;
using Xunit.Abstractions;

namespace Ferry.FunctionalTests.Lab;

/// <summary>Live migration between namespace hosts that share the instances directory: only memory crosses the link.</summary>
[Collection("qemu")]
[Trait("Requires", "qemu")]
public sealed class NetnsLabSharedStorageTests(NetnsLabSharedFixture fixture, ITestOutputHelper output) : IClassFixture<NetnsLabSharedFixture>
{
    [Fact]
    public async Task LiveMigrate_SharedStorageAcrossTheLink_GuestAnswersFromTheDestination()
    {
        var lab = new LabSession(fixture);
        try
        {
            var (id, address) = await lab.BootAsync("compute1");
            await using var prober = TestGuestProber.Start(address, TimeSpan.FromMilliseconds(10), TimeSpan.FromMinutes(4));
            var first = await prober.WaitForReplyAsync(TimeSpan.Zero, TimeSpan.FromSeconds(60), CancellationToken.None);

            var movedAt = prober.Elapsed;
            var migration = await lab.MoveAsync(id, new JsonObject { ["os-migrateLive"] = new JsonObject { ["host"] = "compute2", ["block_migration"] = "auto" } });
            Assert.Equal("completed", (string?)migration["status"]);
            var after = await prober.WaitForReplyAsync(prober.Elapsed, TimeSpan.FromSeconds(20), CancellationToken.None);

            Assert.True(after.Counter > first.Counter, $"the counter went on: {first.Counter} → {after.Counter}");
            await lab.WaitForIntactConsoleAsync(id, after.Counter);
            await lab.AssertRunsOnlyOnAsync(id, "compute2");
            var (gap, at) = prober.LongestGap(movedAt);
            output.WriteLine($"shared-storage live migration: {prober.Replies.Count}/{prober.Sent} answers, longest gap {gap.TotalMilliseconds:0} ms at {at.TotalSeconds:0.00} s");
            Assert.True(gap < TimeSpan.FromSeconds(10), $"the guest went unheard for {gap.TotalMilliseconds:0} ms");
        }
        finally
        {
            await lab.DisposeAsync();
        }
    }
}
