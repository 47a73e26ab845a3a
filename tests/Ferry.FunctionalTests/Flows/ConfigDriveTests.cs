using System.Net;
using Ferry.Core.Domain;
using Ferry.Host;

namespace Ferry.FunctionalTests.Flows;

/// <summary>Every host forces config drives (Nova's force_config_drive).</summary>
public sealed class ForceConfigDriveFixture : FerryFixture
{
    protected override void Configure(AllInOne ferry) => ferry.ConfigureCompute = c => c.ForceConfigDrive = true;
}

public sealed class ForceConfigDriveTests(ForceConfigDriveFixture fixture) : FlowTest<ForceConfigDriveFixture>(fixture)
{
    [Fact]
    public async Task Boot_WithoutAskingForOne_GetsAConfigDriveThatFollowsALiveMigration()
    {
        var id = await BootAsync("compute1", configDrive: false);

        Assert.True(Instances.Find(id)!.ConfigDrive, "the instance records its forced config drive");
        Assert.Equal("True", (await Admin.GetServerAsync(id))["config_drive"]!.GetValue<string>());
        Assert.True(File.Exists(Path.Combine(Driver("compute1").InstanceDirectory(id), "disk.config")), "the guest has a config drive");

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2", blockMigration: true));
        var (instance, migration) = await WaitForMoveEndAsync(id);

        Assert.Equal((MigrationStatus.Completed, "compute2"), (migration.Status, instance.Host));
        Assert.True(File.Exists(Path.Combine(Driver("compute2").InstanceDirectory(id), "disk.config")), "the destination wrote the config drive again");
    }
}

public sealed class ImageConfigDriveTests(FerryFixture fixture) : FlowTest<FerryFixture>(fixture)
{
    [Fact]
    public async Task Boot_ImageMakesConfigDriveMandatory_GetsOneUnasked()
    {
        var image = await ImageWithAsync("mandatory-config-drive", new() { ["img_config_drive"] = "mandatory" });

        var id = await BootAsync("compute1", image: image, configDrive: false);

        Assert.True(Instances.Find(id)!.ConfigDrive, "the instance records the config drive its image demands");
        Assert.True(File.Exists(Path.Combine(Driver("compute1").InstanceDirectory(id), "disk.config")), "the guest has a config drive");
    }

    [Fact]
    public async Task Boot_ImageLeavesConfigDriveOptional_GetsNoneUnasked()
    {
        var image = await ImageWithAsync("optional-config-drive", new() { ["img_config_drive"] = "optional" });

        var id = await BootAsync("compute1", image: image, configDrive: false);

        Assert.False(Instances.Find(id)!.ConfigDrive);
        Assert.False(File.Exists(Path.Combine(Driver("compute1").InstanceDirectory(id), "disk.config")), "a config drive nobody asked for");
    }
}
