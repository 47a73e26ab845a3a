using System.Net;
using System.Text.Json.Nodes;
using Ferry.Core.Domain;

namespace Ferry.FunctionalTests.Flows;

/// <summary>Block vs shared-storage live migration rules, including the config-drive case of seed 004.</summary>
public sealed class StorageRulesTests(FerryFixture fixture) : FlowTest<FerryFixture>(fixture)
{
    private async Task<string> BootFromVolumeAsync(bool configDrive)
    {
        var server = JsonNode.Parse($$$"""
            {"server": {"name": "bfv", "flavorRef": "m1.tiny", "networks": "none", "availability_zone": "nova:compute1",
              "config_drive": {{{(configDrive ? "true" : "false")}}},
              "block_device_mapping_v2": [{"boot_index": 0, "uuid": "{{{Guid.NewGuid()}}}", "source_type": "volume", "destination_type": "volume"}]}}
            """)!;
        var (status, body) = await Admin.PostAsync("servers", server);
        Assert.True(status == HttpStatusCode.Accepted, body?.ToJsonString());
        var id = body!["server"]!["id"]!.GetValue<string>();
        await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE");
        Assert.True(Instances.Get(id).VolumeBacked);
        return id;
    }

    [Fact]
    public async Task VolumeBackedWithConfigDrive_AutoBlockMigration_CopiesConfigDriveAndCompletes()
    {
        var id = await BootFromVolumeAsync(configDrive: true);

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal((MigrationStatus.Completed, "compute2"), (migration.Status, instance.Host));
        Assert.True(migration.DiskTotal > 0, "the config drive was block-migrated");
    }

    [Fact]
    public async Task VolumeBackedWithConfigDrive_BlockMigrationFalse_InvalidSharedStorage()
    {
        var id = await BootFromVolumeAsync(configDrive: true);

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2", blockMigration: false));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal((MigrationStatus.Error, "compute1"), (migration.Status, instance.Host));
        Assert.Contains("Shared storage live-migration requires", LastFault(id));
    }

    [Fact]
    public async Task VolumeBackedWithoutLocalDisks_Auto_MigratesWithoutCopyingDisks()
    {
        var id = await BootFromVolumeAsync(configDrive: false);

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal((MigrationStatus.Completed, "compute2"), (migration.Status, instance.Host));
        Assert.True(migration.DiskTotal is null or 0);
    }

    [Fact]
    public async Task ImageBackedOnLocalStorage_BlockMigrationFalse_InvalidSharedStorage()
    {
        var id = await BootAsync("compute1");

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2", blockMigration: false));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal((MigrationStatus.Error, "compute1"), (migration.Status, instance.Host));
    }
}
