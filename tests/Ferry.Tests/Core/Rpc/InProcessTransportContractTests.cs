using Ferry.Core.Rpc;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ferry.Tests.Core.Rpc;

public sealed class InProcessTransportContractTests : RpcTransportContractTests
{
    private readonly InProcessTransport _transport = new(NullLogger<InProcessTransport>.Instance);

    // One process, one bus: every "connection" is the same transport.
    protected override Task<IRpcTransport> ConnectAsync() => Task.FromResult<IRpcTransport>(_transport);
}
