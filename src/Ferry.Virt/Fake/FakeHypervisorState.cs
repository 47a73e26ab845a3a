using System.Collections.Concurrent;

namespace Ferry.Virt.Fake;

/// <summary>
/// What a fake hypervisor keeps across restarts of the compute agent that drives it: the guest table.
/// Pass the same instance to a new <see cref="FakeDriver"/> to model an agent restart on a host whose
/// guests kept running (as libvirt domains outlive nova-compute).
/// </summary>
public sealed class FakeHypervisorState
{
    internal ConcurrentDictionary<string, FakeGuest> Guests { get; } = new(StringComparer.Ordinal);

    /// <summary>Powered-off source copies kept by migrate_disk_and_power_off until confirm or revert.</summary>
    internal ConcurrentDictionary<string, FakeGuest> ResizeSources { get; } = new(StringComparer.Ordinal);

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
