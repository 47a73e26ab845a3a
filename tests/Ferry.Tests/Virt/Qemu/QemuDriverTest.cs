using System.Diagnostics;
using Ferry.Virt.Qemu;

namespace Ferry.Tests.Virt.Qemu;

/// <summary>
/// Base of the driver-level QEMU tests: a short temporary root (QMP socket paths must fit 107 bytes), a time limit
/// for the whole test, and the guarantee that no QEMU a test started outlives it.
/// </summary>
public abstract class QemuDriverTest(TimeSpan limit) : IAsyncLifetime
{
    private readonly CancellationTokenSource _timeout = new(limit);

    protected string Root { get; } = TestGuestFixture.NewTempRoot();

    /// <summary>Drivers the test created; disposed (killing their guests) at the end.</summary>
    protected List<QemuDriver> Drivers { get; } = [];

    /// <summary>QEMU processes the test started, checked dead at the end.</summary>
    protected List<(int Pid, string Uuid)> Pids { get; } = [];

    protected CancellationToken Ct => _timeout.Token;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var driver in Drivers)
        {
            await driver.DisposeAsync();
        }
        // Belt and braces: nothing a test started may outlive it.
        foreach (var (pid, uuid) in Pids.Where(p => QemuProcess.IsAlive(p.Pid, p.Uuid)))
        {
            using var p = Process.GetProcessById(pid);
            p.Kill();
            Assert.Fail($"QEMU pid {pid} of {uuid} survived the driver's disposal");
        }
        _timeout.Dispose();
        Directory.Delete(Root, recursive: true);
    }
}
