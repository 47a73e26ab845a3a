namespace Ferry.Core.Rpc.Scheduler;

public sealed class SchedulerClient(IRpcTransport transport, RpcOptions options) : RpcClient(transport, options)
{
    /// <exception cref="Errors.NoValidHostException">No host passes the filters or can be claimed.</exception>
    public async Task<SelectDestinationsReply> SelectDestinationsAsync(SelectDestinationsRequest request, CancellationToken ct) =>
        await CallAsync<SelectDestinationsRequest, SelectDestinationsReply>(Topics.Scheduler, "select_destinations", request, ct);
}
