using System.Net;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Host;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Flows;

/// <summary>
/// The image property hw_vif_model: kept on the server at boot (system_metadata image_hw_vif_model), it gives every
/// host the server runs on the same NIC model (a fake host shows it on the guest's tap), and a model no guest can have
/// fails the build with UnsupportedHardware, as Nova's libvirt driver does. Evacuation rebuilds it with the same model.
/// </summary>
public sealed class VifModelTests(FerryFixture fixture) : FlowTest<FerryFixture>(fixture)
{
    private static JsonNode OnPrivate => new JsonArray(new JsonObject { ["uuid"] = Seed.PrivateNetworkId });

    private string ModelOnHost(string host, string id) => Assert.Single(Driver(host).TapDevices(), t => t.GuestUuid == id).Model;

    [Fact]
    public async Task Boot_ImageWithE1000_GuestHasE1000AfterLiveAndColdMigrationWhateverTheImageSaysLater()
    {
        var image = await ImageWithAsync("e1000", new() { ["hw_vif_model"] = "e1000", ["hw_disk_bus"] = "virtio" });

        var id = await BootAsync("compute1", networks: OnPrivate, image: image);

        var booted = Instances.Find(id)!;
        Assert.Equal("e1000", booted.SystemMetadata["image_hw_vif_model"]);
        Assert.Equal("virtio", booted.SystemMetadata["image_hw_disk_bus"]);
        Assert.Equal("e1000", ModelOnHost("compute1", id));
        // What the image says now changes nothing for a server booted from it: its moves go by what it kept (Nova's
        // ImageMeta.from_instance), so neither the model nor an architecture no host has reaches them.
        var catalog = Fixture.Ferry.Services.GetRequiredService<CatalogStore>();
        var changed = (await catalog.FindImageAsync(image, CancellationToken.None))! with { Properties = new() { ["hw_vif_model"] = "bogus", ["hw_architecture"] = "aarch64" } };
        await catalog.SaveImageAsync(changed, CancellationToken.None);

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var (live, liveMigration) = await WaitForMoveEndAsync(id);
        Assert.Equal(("compute2", MigrationStatus.Completed), (live.Host, liveMigration.Status));
        Assert.Equal("e1000", ModelOnHost("compute2", id));

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, new JsonObject { ["migrate"] = null })).Status);
        var (resized, coldMigration) = await WaitForMoveEndAsync(id, liveMigration);
        Assert.Equal(VmState.Resized, resized.VmState);     // the scheduler found a host: x86_64, as the server booted
        Assert.NotEqual("compute2", resized.Host);
        Assert.Equal("e1000", ModelOnHost(resized.Host!, id));

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"revertResize": null}""")!)).Status);
        await WaitForMigrationAsync(id, m => m.Id == coldMigration.Id && m.Status == MigrationStatus.Reverted, "reverted");
        var reverted = await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after revert");
        Assert.Equal("compute2", reverted.Host);
        Assert.Equal("e1000", ModelOnHost("compute2", id));
        Assert.Equal("e1000", reverted.SystemMetadata["image_hw_vif_model"]);
    }

    [Fact]
    public async Task Evacuate_GuestOnE1000_RebuiltElsewhereWithE1000()
    {
        var image = await ImageWithAsync("e1000", new() { ["hw_vif_model"] = "e1000" });
        var id = await BootAsync("compute3", networks: OnPrivate, image: image);
        await Fixture.Ferry.Computes["compute3"].StopAsync();
        await ForceDownAsync("compute3", true);
        try
        {
            var (status, body) = await Admin.ActionAsync(id, JsonNode.Parse("""{"evacuate": {}}""")!);
            Assert.True(status == HttpStatusCode.OK, body?.ToJsonString());
            var (instance, migration) = await WaitForMoveEndAsync(id);

            Assert.Equal((MigrationType.Evacuation, MigrationStatus.Done), (migration.MigrationType, migration.Status));
            Assert.NotEqual("compute3", instance.Host);
            Assert.Equal("e1000", ModelOnHost(instance.Host!, id));
        }
        finally
        {
            await Fixture.Ferry.StartComputeAsync("compute3", CancellationToken.None);
            await ForceDownAsync("compute3", false);
        }
    }

    private async Task<HttpStatusCode> ForceDownAsync(string host, bool down)
    {
        var services = (await Admin.GetAsync($"os-services?host={host}&binary=nova-compute")).Body!["services"]!.AsArray();
        var serviceId = services.Single()!["id"]!.GetValue<string>();
        var (status, _) = await Admin.SendAsync(HttpMethod.Put, $"os-services/{serviceId}", new JsonObject { ["forced_down"] = down });
        return status;
    }

    [Fact]
    public async Task Boot_ImageWithoutVifModel_GuestHasVirtio()
    {
        var id = await BootAsync("compute1", networks: OnPrivate);

        Assert.False(Instances.Find(id)!.SystemMetadata.ContainsKey("image_hw_vif_model"));
        Assert.Equal("virtio", ModelOnHost("compute1", id));
    }

    [Fact]
    public async Task Boot_ImageWithUnknownVifModel_ErrorWithUnsupportedHardwareFault()
    {
        var image = await ImageWithAsync("bogus", new() { ["hw_vif_model"] = "bogus" });

        var (status, body) = await Admin.PostAsync("servers", new JsonObject
        {
            ["server"] = new JsonObject { ["name"] = "vm", ["imageRef"] = image, ["flavorRef"] = "m1.tiny", ["networks"] = "none" },
        });

        Assert.Equal(HttpStatusCode.Accepted, status);
        var id = body!["server"]!["id"]!.GetValue<string>();
        var failed = await WaitForAsync(id, i => i.VmState == VmState.Error, "ERROR after a build with hw_vif_model=bogus");
        Assert.Null(failed.Host);
        var fault = Fixture.Ferry.Services.GetRequiredService<ActionStore>().LatestFault(id);
        Assert.Equal("Requested hardware 'bogus' is not supported by the 'qemu' virt driver", fault?.Message);
        var server = await Admin.GetServerAsync(id);
        Assert.Equal("ERROR", server["status"]!.GetValue<string>());
        Assert.Contains("'bogus'", server["fault"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
    }
}
