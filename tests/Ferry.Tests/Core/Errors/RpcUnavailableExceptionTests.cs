using Ferry.Core.Errors;
using Ferry.Core.Rpc;

namespace Ferry.Tests.Core.Errors;

public sealed class RpcUnavailableExceptionTests
{
    [Fact]
    public void RoundTrip_ThroughRpcError_KeepsTypeStatusAndTransience()
    {
        var sent = new RpcUnavailableException("The message broker at rabbitmq://guest@mq:5672/ is unavailable");

        var rebuilt = RpcError.Deserialize(RpcError.From(sent).Serialize()).ToException();

        var unavailable = Assert.IsType<RpcUnavailableException>(rebuilt);
        Assert.True(unavailable.IsTransient);
        Assert.Equal(503, unavailable.HttpStatus);
        Assert.Equal("serviceUnavailable", unavailable.FaultName);
        Assert.Equal(sent.Message, unavailable.Message);
    }

    [Fact]
    public void IsTransient_RequestFaults_AreNotTransient()
    {
        Assert.False(new ConflictException("busy").IsTransient);
        Assert.False(new RpcTimeoutException("no reply").IsTransient);
    }
}
