namespace Ferry.Virt.Fake;

/// <summary>
/// What a fake hypervisor keeps across restarts of the compute agent that drives it: the guest table.
/// A <see cref="FakeDriver"/> attaches it to its host's runtime directory
/// (<c>&lt;InstancesPath&gt;/_run/&lt;host&gt;/</c>: <c>&lt;uuid&gt;.json</c> per guest, <c>&lt;uuid&gt;_resize.json</c> per kept
/// resize source), so the guests outlive the process as libvirt domains outlive nova-compute. Passing the same
/// instance to a new driver models an agent restart in the same process.
/// </summary>
public sealed class FakeHypervisorState
{
    internal FakeGuestTable Guests { get; } = new(".json");

    /// <summary>Powered-off source copies kept by migrate_disk_and_power_off until confirm or revert.</summary>
    internal FakeGuestTable ResizeSources { get; } = new("_resize.json");

    /// <summary>Writes every later change under <paramref name="directory"/>, first loading what an earlier process left there.</summary>
    internal void Attach(string directory)
    {
        Guests.Attach(directory);
        ResizeSources.Attach(directory);
    }

    /// <summary>Replaces a guest record atomically; false when the guest is absent.</summary>
    internal bool TryUpdate(string uuid, Func<FakeGuest, FakeGuest> update)
    {
        while (Guests.TryGetValue(uuid, out var current))
        {
            if (Guests.TryUpdate(uuid, update(current), current))
            {
                return true;
            }
        }
        return false;
    }
}
