using System.Net;
using Ferry.Core.Domain;
using Ferry.Host;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Flows;

public sealed class NoRetryFixture : FerryFixture
{
    protected override void Configure(AllInOne ferry)
    {
        ferry.ConfigureDriver = d => d.CpuFeatures = d.HostName == "compute1" ? ["avx2"] : [];
        ferry.Services.GetRequiredService<ControlPlane.ControlPlaneOptions>().MigrateMaxRetries = 1;
    }
}

public sealed class RetryTests(NoRetryFixture fixture) : FlowTest<NoRetryFixture>(fixture)
{
    [Fact]
    public async Task LiveMigrate_EveryHostFailsChecks_MaxRetriesExceededAndRollback()
    {
        var id = await BootAsync("compute1");

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal((MigrationStatus.Error, "compute1", VmState.Active), (migration.Status, instance.Host, instance.VmState));
        Assert.Contains("Exceeded max scheduling retries 1", LastFault(id));
    }
}
