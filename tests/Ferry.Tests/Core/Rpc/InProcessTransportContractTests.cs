using Ferry.Core.Rpc;
using Microsoft.Extensions.Logging;

namespace Ferry.Tests.Core.Rpc;

public sealed class InProcessTransportContractTests : RpcTransportContractTests
{
    private InProcessTransport? _transport;

    // One process, one bus: every "connection" is the same transport.
    protected override Task<IRpcTransport> ConnectAsync() =>
        Task.FromResult<IRpcTransport>(_transport ??= new InProcessTransport(LoggerFactory.CreateLogger<InProcessTransport>()));
}
