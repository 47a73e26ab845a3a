using Ferry.ControlPlane.Persistence;
using Ferry.Core.Volumes;
using Ferry.Tests.Shared;

namespace Ferry.Tests.Persistence;

public sealed class SqliteVolumeStoreTests() : VolumeStoreTests(DatabaseEngine.Sqlite);

[Collection(PostgresServer.Collection)]
public sealed class PostgresVolumeStoreTests() : VolumeStoreTests(DatabaseEngine.PostgreSql)
{
    [Fact]
    public async Task CreateAttachment_TwoProcessesReserveOneVolumeAtOnce_OnlyOneInstanceGetsIt()
    {
        var other = new VolumeStore(Files.Open());
        for (var round = 0; round < 5; round++)
        {
            var volume = await NewVolumeAsync();
            var attempts = Enumerable.Range(0, 8).Select(i => Attempt((i % 2 == 0 ? Store : other).CreateAttachmentAsync(Reservation(volume.Id, $"server-{i}"), Now, Ct)));

            var outcomes = await Task.WhenAll(attempts);

            Assert.Single(outcomes, o => o is null);
            Assert.All(outcomes.OfType<CinderException>(), e => Assert.Equal(400, e.HttpStatus));
            Assert.Single(await Store.ListAttachmentsAsync(new AttachmentQuery { VolumeIds = [volume.Id] }, Ct));
            Assert.Equal(VolumeStatus.Reserved, (await Store.GetVolumeAsync(volume.Id, Ct))!.Status);
        }
    }

    private static async Task<CinderException?> Attempt(Task task)
    {
        try
        {
            await task;
            return null;
        }
        catch (CinderException e)
        {
            return e;
        }
    }
}

/// <summary>The volume service's state over each engine: Cinder's status rules for reserve, connect, complete, detach and delete.</summary>
public abstract class VolumeStoreTests : IDisposable
{
    protected static readonly DateTimeOffset Now = new(2026, 12, 1, 10, 0, 0, TimeSpan.Zero);

    protected VolumeStoreTests(DatabaseEngine engine)
    {
        Files = new TestDatabase(engine);
        var db = Files.Open();
        DatabaseSchema.Sync(db);
        Store = new VolumeStore(db);
    }

    internal TestDatabase Files { get; }

    internal VolumeStore Store { get; }

    public void Dispose() => Files.Dispose();

    protected static CancellationToken Ct => CancellationToken.None;

    protected async Task<Volume> NewVolumeAsync(bool multiattach = false, string project = "p1", string status = VolumeStatus.Available)
    {
        var volume = new Volume
        {
            Id = Guid.NewGuid().ToString(), ProjectId = project, Name = "v", SizeGb = 1, Status = status, Multiattach = multiattach, CreatedAt = Now, UpdatedAt = Now,
        };
        await Store.CreateVolumeAsync(volume, Ct);
        return volume;
    }

    protected static VolumeAttachment Reservation(string volumeId, string instance) =>
        new() { Id = Guid.NewGuid().ToString(), VolumeId = volumeId, InstanceUuid = instance, AttachStatus = VolumeAttachStatus.Reserved };

    private static VolumeConnector Connector(string host) => new() { Host = host, Ip = "127.0.0.1", Mountpoint = "/dev/vdb" };

    private static VolumeConnectionInfo Info(string volumeId) => new() { Host = "127.0.0.1", Port = 0, Export = volumeId };

    private async Task<string> StatusAsync(string id) => (await Store.GetVolumeAsync(id, Ct))!.Status;

    [Fact]
    public async Task Attachment_ReserveConnectCompleteDelete_VolumeGoesReservedAttachingInUseAvailable()
    {
        var volume = await NewVolumeAsync();
        var attachment = await Store.CreateAttachmentAsync(Reservation(volume.Id, "server-1"), Now, Ct);
        var reserved = await StatusAsync(volume.Id);

        var connected = await Store.ConnectAttachmentAsync(attachment.Id, Connector("host-a"), Info(volume.Id), Now, Ct);
        var attaching = await StatusAsync(volume.Id);
        var attached = await Store.CompleteAttachmentAsync(attachment.Id, Now, Ct);
        var inUse = (await Store.GetVolumeAsync(volume.Id, Ct))!;
        var remaining = await Store.DeleteAttachmentAsync(attachment.Id, Now, Ct);

        Assert.Equal(VolumeStatus.Reserved, reserved);
        Assert.Equal((VolumeAttachStatus.Attaching, "host-a", "/dev/vdb", "rw"), (connected.AttachStatus, connected.AttachedHost, connected.Mountpoint, connected.AttachMode));
        Assert.Equal(VolumeStatus.Attaching, attaching);
        Assert.Equal((VolumeAttachStatus.Attached, Now), (attached.AttachStatus, attached.AttachedAt));
        Assert.Equal((VolumeStatus.InUse, VolumeAttachStatus.Attached), (inUse.Status, inUse.AttachStatus));
        Assert.Empty(remaining);
        var after = (await Store.GetVolumeAsync(volume.Id, Ct))!;
        Assert.Equal((VolumeStatus.Available, VolumeAttachStatus.Detached), (after.Status, after.AttachStatus));
        Assert.Null(await Store.GetAttachmentAsync(attachment.Id, Ct));
    }

    [Fact]
    public async Task CreateAttachment_AnotherInstanceHoldsIt_RefusedWithCindersMessageAndNothingChanges()
    {
        var volume = await NewVolumeAsync();
        await Store.CreateAttachmentAsync(Reservation(volume.Id, "server-1"), Now, Ct);

        var refused = await Assert.ThrowsAsync<CinderException>(() => Store.CreateAttachmentAsync(Reservation(volume.Id, "server-2"), Now, Ct));

        Assert.Equal(400, refused.HttpStatus);
        Assert.Equal($"Invalid volume: Volume {volume.Id} status must be available or downloading to reserve, but the current status is reserved.", refused.Message);
        Assert.Single(await Store.ListAttachmentsAsync(new AttachmentQuery { VolumeIds = [volume.Id] }, Ct));
        Assert.Equal(VolumeStatus.Reserved, await StatusAsync(volume.Id));
    }

    [Fact]
    public async Task CreateAttachment_SameInstanceAgain_AllowedAsForALiveMigrationAndTheVolumeStaysInUse()
    {
        var volume = await NewVolumeAsync();
        var first = await Store.CreateAttachmentAsync(Reservation(volume.Id, "server-1"), Now, Ct);
        await Store.ConnectAttachmentAsync(first.Id, Connector("host-a"), Info(volume.Id), Now, Ct);
        await Store.CompleteAttachmentAsync(first.Id, Now, Ct);

        var second = await Store.CreateAttachmentAsync(Reservation(volume.Id, "server-1"), Now, Ct);
        var sameHost = await Assert.ThrowsAsync<CinderException>(() => Store.ConnectAttachmentAsync(second.Id, Connector("host-a"), Info(volume.Id), Now, Ct));
        await Store.ConnectAttachmentAsync(second.Id, Connector("host-b"), Info(volume.Id), Now, Ct);
        var during = await StatusAsync(volume.Id);
        var left = await Store.DeleteAttachmentAsync(first.Id, Now, Ct);

        Assert.Equal(409, sameHost.HttpStatus);
        Assert.Equal(VolumeStatus.InUse, during);
        Assert.Equal(second.Id, Assert.Single(left).Id);
        Assert.Equal(VolumeStatus.Attaching, await StatusAsync(volume.Id));
    }

    [Fact]
    public async Task CreateAttachment_Multiattach_TwoInstancesAtOnce()
    {
        var volume = await NewVolumeAsync(multiattach: true);
        var first = await Store.CreateAttachmentAsync(Reservation(volume.Id, "server-1"), Now, Ct);
        await Store.ConnectAttachmentAsync(first.Id, Connector("host-a"), Info(volume.Id), Now, Ct);
        await Store.CompleteAttachmentAsync(first.Id, Now, Ct);

        await Store.CreateAttachmentAsync(Reservation(volume.Id, "server-2"), Now, Ct);

        Assert.Equal(2, (await Store.ListAttachmentsAsync(new AttachmentQuery { VolumeIds = [volume.Id] }, Ct)).Count);
        Assert.Equal(VolumeStatus.InUse, await StatusAsync(volume.Id));
    }

    [Fact]
    public async Task CreateAttachment_VolumeInError_RefusedWithCindersMessage()
    {
        var volume = await NewVolumeAsync(status: VolumeStatus.Error);

        var refused = await Assert.ThrowsAsync<CinderException>(() => Store.CreateAttachmentAsync(Reservation(volume.Id, "server-1"), Now, Ct));
        var missing = await Assert.ThrowsAsync<CinderException>(() => Store.CreateAttachmentAsync(Reservation("nope", "server-1"), Now, Ct));

        Assert.Equal($"Invalid volume: Volume attachments can not be created if the volume is in an error state. The Volume {volume.Id} currently has a status of: error ",
            refused.Message);
        Assert.Equal((404, "Volume nope could not be found."), (missing.HttpStatus, missing.Message));
        Assert.Empty(await Store.ListAttachmentsAsync(new AttachmentQuery(), Ct));
    }

    [Fact]
    public async Task CompleteAttachment_NoConnectorYet_Refused()
    {
        var volume = await NewVolumeAsync();
        var attachment = await Store.CreateAttachmentAsync(Reservation(volume.Id, "server-1"), Now, Ct);

        var refused = await Assert.ThrowsAsync<CinderException>(() => Store.CompleteAttachmentAsync(attachment.Id, Now, Ct));

        Assert.Equal(400, refused.HttpStatus);
        Assert.Equal(VolumeAttachStatus.Reserved, (await Store.GetAttachmentAsync(attachment.Id, Ct))!.AttachStatus);
    }

    [Fact]
    public async Task BeginDelete_WithAnAttachmentOrBusy_RefusedUntilIdle()
    {
        var volume = await NewVolumeAsync();
        var attachment = await Store.CreateAttachmentAsync(Reservation(volume.Id, "server-1"), Now, Ct);

        var refused = await Assert.ThrowsAsync<CinderException>(() => Store.BeginDeleteAsync(volume.Id, force: false, Now, Ct));
        var forced = await Assert.ThrowsAsync<CinderException>(() => Store.BeginDeleteAsync(volume.Id, force: true, Now, Ct));
        await Store.DeleteAttachmentAsync(attachment.Id, Now, Ct);
        var deleting = await Store.BeginDeleteAsync(volume.Id, force: false, Now, Ct);
        var twice = await Assert.ThrowsAsync<CinderException>(() => Store.BeginDeleteAsync(volume.Id, force: true, Now, Ct));
        var removed = await Store.RemoveVolumeAsync(volume.Id, Ct);

        Assert.StartsWith("Invalid volume: Volume status must be available or error or error_restoring", refused.Message);
        Assert.Equal(400, forced.HttpStatus);
        Assert.Equal(VolumeStatus.Deleting, deleting.Status);
        Assert.Equal(400, twice.HttpStatus);
        Assert.True(removed);
        Assert.Null(await Store.GetVolumeAsync(volume.Id, Ct));
    }

    [Fact]
    public async Task UpdateVolume_ChangeRefuses_NothingWritten()
    {
        var volume = await NewVolumeAsync();

        await Assert.ThrowsAsync<CinderException>(() => Store.UpdateVolumeAsync(volume.Id, _ => throw CinderException.BadRequest("no"), Ct));
        var grown = await Store.UpdateVolumeAsync(volume.Id, v => v with { SizeGb = 3 }, Ct);
        var missing = await Assert.ThrowsAsync<CinderException>(() => Store.UpdateVolumeAsync("nope", v => v, Ct));

        Assert.Equal(3, grown.SizeGb);
        Assert.Equal(3, (await Store.GetVolumeAsync(volume.Id, Ct))!.SizeGb);
        Assert.Equal(404, missing.HttpStatus);
    }

    [Fact]
    public async Task ListVolumes_ByProject_NewestFirst()
    {
        var a = await NewVolumeAsync(project: "p1");
        await NewVolumeAsync(project: "p2");
        var later = new Volume { Id = Guid.NewGuid().ToString(), ProjectId = "p1", SizeGb = 1, Status = VolumeStatus.Available, CreatedAt = Now.AddMinutes(1) };
        await Store.CreateVolumeAsync(later, Ct);

        var mine = await Store.ListVolumesAsync("p1", Ct);
        var all = await Store.ListVolumesAsync(null, Ct);

        Assert.Equal([later.Id, a.Id], mine.Select(v => v.Id));
        Assert.Equal(3, all.Count);
    }

    [Fact]
    public async Task ListAttachments_ByInstanceAndVolume_FilterOnTheIndexedColumns()
    {
        var v1 = await NewVolumeAsync(multiattach: true);
        var v2 = await NewVolumeAsync();
        await Store.CreateAttachmentAsync(Reservation(v1.Id, "server-1"), Now, Ct);
        await Store.CreateAttachmentAsync(Reservation(v1.Id, "server-2"), Now, Ct);
        await Store.CreateAttachmentAsync(Reservation(v2.Id, "server-1"), Now, Ct);

        Assert.Equal(2, (await Store.ListAttachmentsAsync(new AttachmentQuery { InstanceUuid = "server-1" }, Ct)).Count);
        Assert.Equal(2, (await Store.ListAttachmentsAsync(new AttachmentQuery { VolumeIds = [v1.Id] }, Ct)).Count);
        Assert.Empty(await Store.ListAttachmentsAsync(new AttachmentQuery { VolumeIds = [] }, Ct));
        Assert.Equal(3, (await Store.ListAttachmentsAsync(new AttachmentQuery { ProjectId = "p1" }, Ct)).Count);
    }
}
