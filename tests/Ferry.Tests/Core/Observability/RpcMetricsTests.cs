using Ferry.Core.Errors;
using Ferry.Core.Observability;

namespace Ferry.Tests.Core.Observability;

public sealed class RpcMetricsTests
{
    private readonly string _method = "probe_" + Guid.NewGuid().ToString("N");

    [Theory]
    [InlineData("compute.compute7", "compute")]
    [InlineData("conductor", "conductor")]
    public void TopicService_HostTopic_ServiceOnly(string topic, string expected) => Assert.Equal(expected, RpcMetrics.TopicService(topic));

    [Fact]
    public async Task TimeCallAsync_Reply_Ok()
    {
        using var recorder = new FerryMeterRecorder();

        await RpcMetrics.TimeCallAsync("compute.h1", _method, () => Task.FromResult(Array.Empty<byte>()));

        Assert.Single(recorder.ValuesOf("ferry.rpc.client.call.duration", ("method", _method), ("topic", "compute"), ("outcome", RpcMetrics.Ok)));
    }

    [Fact]
    public async Task TimeCallAsync_NoReplyInTime_Timeout()
    {
        using var recorder = new FerryMeterRecorder();

        await Assert.ThrowsAsync<RpcTimeoutException>(() => RpcMetrics.TimeCallAsync("conductor", _method, () => throw new RpcTimeoutException("no reply")));

        Assert.Single(recorder.ValuesOf("ferry.rpc.client.call.duration", ("method", _method), ("outcome", RpcMetrics.Timeout)));
    }

    [Fact]
    public async Task TimeCallAsync_RemoteFault_Error()
    {
        using var recorder = new FerryMeterRecorder();

        await Assert.ThrowsAsync<NoValidHostException>(() => RpcMetrics.TimeCallAsync("scheduler", _method, () => throw new NoValidHostException("none")));

        Assert.Single(recorder.ValuesOf("ferry.rpc.client.call.duration", ("method", _method), ("outcome", RpcMetrics.Error)));
    }

    [Fact]
    public async Task TimeHandlerAsync_HandlerThrows_ErrorAndRethrown()
    {
        using var recorder = new FerryMeterRecorder();

        await Assert.ThrowsAsync<InvalidOperationException>(() => RpcMetrics.TimeHandlerAsync(_method, () => throw new InvalidOperationException("boom")));

        Assert.Single(recorder.ValuesOf("ferry.rpc.server.duration", ("method", _method), ("outcome", RpcMetrics.Error)));
    }
}
