namespace Ferry.Virt.Qemu;

/// <summary>The driver's record of one guest defined on this host: its spec, its QEMU process while it runs, its last known power state.</summary>
internal sealed class QemuGuest(GuestSpec spec)
{
    private volatile QemuProcess? _process;
    private int _powerState = (int)GuestPowerState.Shutdown;

    public GuestSpec Spec { get; set; } = spec;

    /// <summary>Serializes operations on this guest.</summary>
    public SemaphoreSlim Lock { get; } = new(1, 1);

    public QemuProcess? Process
    {
        get => _process;
        set => _process = value;
    }

    /// <summary>Where the incoming QEMU listens after migrate-recover, until the source resumes (QEMU takes one recover per pause).</summary>
    public string? PostCopyRecoveryUri { get; set; }

    public GuestPowerState PowerState
    {
        get => (GuestPowerState)Volatile.Read(ref _powerState);
        set => Volatile.Write(ref _powerState, (int)value);
    }

    public GuestInfo ToInfo() => new(Spec.Uuid, PowerState, Spec.MemoryMb);
}
