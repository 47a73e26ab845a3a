using System.Net;
using System.Text.Json.Nodes;
using Ferry.Core.Domain;

namespace Ferry.FunctionalTests.Qemu;

/// <summary>Moves of real QEMU guests between two hosts, each with its own local instances directory.</summary>
[Collection("qemu")]
[Trait("Requires", "qemu")]
public sealed class QemuLocalDiskTests(QemuFerryFixture fixture) : QemuFlowTest<QemuFerryFixture>(fixture)
{
    [Fact]
    public async Task Evacuate_LocalDisks_RebuildsFromTheImageAndTheOldHostDestroysItsCopy()
    {
        var id = await BootGuestAsync("compute1");
        await WaitForCounterAsync(id, 0);
        var oldDirectory = Qemu("compute1").InstanceDirectory(id);
        var serviceId = await CrashHostAsync("compute1");
        try
        {
            Assert.Equal(HttpStatusCode.OK, (await Admin.ActionAsync(id, JsonNode.Parse("""{"evacuate": {}}""")!)).Status);
            var (instance, migration) = await WaitForMoveEndAsync(id);
            Assert.Equal((MigrationStatus.Done, "compute2", VmState.Active), (migration.Status, instance.Host, instance.VmState));
            Assert.True(Directory.Exists(oldDirectory), "the dead host's files stay until it comes back");

            await Fixture.Ferry.StartComputeAsync("compute1", CancellationToken.None);

            Assert.Equal(MigrationStatus.Completed, Migrations.Get(migration.Uuid).Status);
            Assert.Null(Qemu("compute1").GetGuest(id));
            Assert.False(Directory.Exists(oldDirectory), "the returning host destroyed its stale copy");
            await WaitForCounterAsync(id, 0);
            AssertRunsOnlyOn(id, "compute2");
        }
        finally
        {
            await RecoverHostAsync("compute1", serviceId);
        }
    }
}
