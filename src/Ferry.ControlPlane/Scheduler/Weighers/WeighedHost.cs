namespace Ferry.ControlPlane.Scheduler.Weighers;

/// <summary>A host and its total weight for one request (nova/scheduler/weights WeighedHost).</summary>
public struct WeighedHost(HostState host)
{
    public HostState Host { get; } = host;

    public double Weight { get; set; }

    public override readonly string ToString() => $"{Host}: {Weight}";
}
