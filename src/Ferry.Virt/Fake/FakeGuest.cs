namespace Ferry.Virt.Fake;

/// <summary>One guest as the fake hypervisor holds it. Immutable; the table swaps whole records.</summary>
internal sealed record FakeGuest(string Uuid, GuestPowerState PowerState, int MemoryMb, GuestSpec Spec)
{
    /// <summary>Defined by pre_live_migration and not yet made the running copy.</summary>
    public bool Incoming { get; init; }

    /// <summary>How often this host listened again for the guest's broken post-copy stream.</summary>
    public int PostCopyRecoveries { get; init; }

    public GuestInfo ToInfo() => new(Uuid, PowerState, MemoryMb);
}

/// <summary>
/// A fake host's tap device: its name (<c>tap</c> + the port id's first 11 characters), the port, its MAC, the guest, and the
/// model of the guest's NIC on it (<see cref="VifModels"/>: what a QEMU host would start the guest with).
/// </summary>
public sealed record FakeTap(string Name, string PortId, string MacAddress, string GuestUuid, string Model = VifModels.Virtio);

/// <summary>A volume a fake host has connected for a guest (<see cref="FakeDriver.VolumeConnections"/>).</summary>
public sealed record FakeVolumeConnection(string GuestUuid, string VolumeId, string DeviceName, string Export);
