using Ferry.Core.Errors;
using Ferry.Core.Rpc;

namespace Ferry.Tests.Core.Errors;

public sealed class RpcErrorTests
{
    [Fact]
    public void RoundTrip_FailureWithDetailsUnderAWrapper_RebuiltWithTheDetails()
    {
        var qemu = new FerryException("QEMU for x exited during start-up (exit code 1): unable to find CPU model 'nope'")
        {
            Details = "Last lines of /i/x/qemu.log:\nunable to find CPU model 'nope'",
        };
        var wrapped = new LiveMigrationFailedException("pre_live_migration failed");
        var sent = RpcError.From(new AggregateException(qemu));
        var rebuilt = RpcError.Deserialize(RpcError.From(qemu).Serialize()).ToException();

        Assert.Equal(qemu.Details, rebuilt.Details);
        Assert.Null(sent.Details); // not a FerryException: carried as text only
        Assert.Null(RpcError.Deserialize(RpcError.From(wrapped).Serialize()).ToException().Details);
        Assert.Contains("qemu.log", FaultDetails.Describe(rebuilt));
    }
}
