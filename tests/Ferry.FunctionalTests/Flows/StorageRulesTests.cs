using System.Net;
using Ferry.Core.Domain;

namespace Ferry.FunctionalTests.Flows;

/// <summary>Block vs shared-storage live migration rules (a server booted from a volume: Volumes/BootFromVolumeTests).</summary>
public sealed class StorageRulesTests(FerryFixture fixture) : FlowTest<FerryFixture>(fixture)
{
    [Fact]
    public async Task ImageBackedOnLocalStorage_BlockMigrationFalse_InvalidSharedStorage()
    {
        var id = await BootAsync("compute1");

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2", blockMigration: false));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal((MigrationStatus.Error, "compute1"), (migration.Status, instance.Host));
    }
}
