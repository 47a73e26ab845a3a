using Ferry.Core.Errors;

namespace Ferry.Tests.Core.Errors;

public sealed class FaultDetailsTests
{
    [Fact]
    public void Describe_ThrownNestedFailure_CausesAndDetailsWithoutStackTrace()
    {
        Exception thrown;
        try
        {
            try
            {
                throw new FerryException("QEMU for x exited during start-up (exit code 1): unable to find CPU model 'nope'") { Details = "Last lines of /i/x/qemu.log:\nunable to find CPU model 'nope'" };
            }
            catch (FerryException inner)
            {
                throw new InvalidOperationException("Spawn failed", inner);
            }
        }
        catch (InvalidOperationException ex)
        {
            thrown = ex;
        }

        var details = FaultDetails.Describe(thrown);

        Assert.Equal(
            "InvalidOperationException: Spawn failed\n" +
            "caused by FerryException: QEMU for x exited during start-up (exit code 1): unable to find CPU model 'nope'\n" +
            "Last lines of /i/x/qemu.log:\nunable to find CPU model 'nope'", details);
        Assert.DoesNotContain(" at ", details);
    }
}
