using Ferry.Core.Errors;

namespace Ferry.Virt.Fake;

/// <summary>Pause and suspend: the guest record keeps the power state (a suspended guest is saved, not running).</summary>
public sealed partial class FakeDriver
{
    public Task PauseAsync(string uuid, CancellationToken cancellationToken) =>
        ChangePowerAsync(uuid, GuestPowerState.Running, GuestPowerState.Paused, "paused", cancellationToken);

    public Task UnpauseAsync(string uuid, CancellationToken cancellationToken) =>
        ChangePowerAsync(uuid, GuestPowerState.Paused, GuestPowerState.Running, "unpaused", cancellationToken);

    public Task SuspendAsync(string uuid, CancellationToken cancellationToken) =>
        ChangePowerAsync(uuid, GuestPowerState.Running, GuestPowerState.Suspended, "suspended", cancellationToken);

    public Task ResumeAsync(string uuid, CancellationToken cancellationToken) =>
        ChangePowerAsync(uuid, GuestPowerState.Suspended, GuestPowerState.Running, "resumed", cancellationToken);

    /// <summary>
    /// The guest stops by itself (it powers off inside, its process dies, or it panics with <see cref="GuestPowerState.Crashed"/>),
    /// as no API call makes it: a hypervisor's unexpected stop, for tests. Raises <see cref="GuestStopped"/> as the QEMU driver does.
    /// </summary>
    public void StopByItself(string uuid, GuestPowerState state = GuestPowerState.Shutdown)
    {
        SetPowerState(uuid, state);
        GuestStopped?.Invoke(uuid);
    }

    /// <summary>Moves the guest from <paramref name="from"/> to <paramref name="to"/>; any other state is refused, as libvirt refuses it.</summary>
    private async Task ChangePowerAsync(string uuid, GuestPowerState from, GuestPowerState to, string what, CancellationToken cancellationToken)
    {
        GuestPowerState? refused = null;
        var found = State.Guests.TryGetValue(uuid, out var guest) && !guest.Incoming
            && State.TryUpdate(uuid, g =>
            {
                refused = g.PowerState == from ? null : g.PowerState;
                return refused is null ? g with { PowerState = to } : g;
            });
        if (!found)
        {
            throw new InstanceNotFoundException(uuid);
        }
        if (refused is { } actual)
        {
            throw new ConflictException($"Guest {uuid} on {_options.HostName} is {actual}, not {from}: it cannot be {what}.");
        }
        await AppendConsoleAsync(InstanceDirectory(uuid), $"{what} on {_options.HostName}", cancellationToken);
    }
}
