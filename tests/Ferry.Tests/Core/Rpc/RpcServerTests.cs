using System.Text.Json;
using Ferry.Core.Rpc;
using Ferry.Core.Rpc.Conductor;

namespace Ferry.Tests.Core.Rpc;

public sealed class RpcServerTests
{
    [Fact]
    public async Task On_IdempotentHandler_DeclaredForThatMethodOnlyAndDispatched()
    {
        var server = new RpcServer()
            .On<InstanceGetRequest, InstanceGetRequest>("instance_get", (r, _) => Task.FromResult(r with { Uuid = "read " + r.Uuid }), idempotent: true)
            .On<InstanceGetRequest>("instance_fault_create", (_, _) => Task.CompletedTask);
        IRpcDispatcher dispatcher = server;

        Assert.True(dispatcher.IsIdempotent("instance_get"));
        Assert.False(dispatcher.IsIdempotent("instance_fault_create"));
        Assert.False(dispatcher.IsIdempotent("no_such_method"));
        var reply = await dispatcher.DispatchAsync("instance_get", JsonSerializer.SerializeToUtf8Bytes(new InstanceGetRequest("i1"), RpcJson.TypeInfo<InstanceGetRequest>()),
            CancellationToken.None);
        Assert.Equal("read i1", JsonSerializer.Deserialize(reply, RpcJson.TypeInfo<InstanceGetRequest>())!.Uuid);
    }

    [Fact]
    public void On_MethodRegisteredAgainWithoutTheFlag_IsNoLongerIdempotent()
    {
        IRpcDispatcher server = new RpcServer()
            .On<InstanceGetRequest>("m", (_, _) => Task.CompletedTask, idempotent: true)
            .On<InstanceGetRequest>("m", (_, _) => Task.CompletedTask);

        Assert.False(server.IsIdempotent("m"));
    }

    [Fact]
    public void IsIdempotent_DispatcherThatDeclaresNothing_False()
    {
        IRpcDispatcher dispatcher = new RecordingDispatcher("plain");

        Assert.False(dispatcher.IsIdempotent("instance_get"));
    }
}
