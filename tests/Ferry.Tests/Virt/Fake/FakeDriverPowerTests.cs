using Ferry.Core.Errors;
using Ferry.Tests.Shared;
using Ferry.Virt;
using Ferry.Virt.Fake;

namespace Ferry.Tests.Virt.Fake;

public sealed class FakeDriverPowerTests : IDisposable
{
    private readonly string _root = TestTempNames.Path("fake-power");
    private readonly FakeDriver _driver;
    private readonly GuestSpec _guest = new()
    {
        Uuid = Guid.NewGuid().ToString(), Name = "instance-00000001", Vcpus = 1, MemoryMb = 512, RootGb = 1, ImageRef = "image-1",
    };

    public FakeDriverPowerTests() =>
        _driver = new FakeDriver(new FakeDriverOptions { HostName = "host1", InstancesPath = Path.Combine(_root, "host1"), TimeScale = 0 });

    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(30));

    private CancellationToken Ct => _timeout.Token;

    public void Dispose()
    {
        _timeout.Dispose();
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Fact]
    public async Task PauseUnpauseSuspendResume_RunningGuest_PowerStateFollowsAndConsoleSaysSo()
    {
        await _driver.SpawnAsync(_guest, reuseDisks: false, Ct);

        await _driver.PauseAsync(_guest.Uuid, Ct);
        Assert.Equal(GuestPowerState.Paused, _driver.GetGuest(_guest.Uuid)!.PowerState);
        await _driver.UnpauseAsync(_guest.Uuid, Ct);
        Assert.Equal(GuestPowerState.Running, _driver.GetGuest(_guest.Uuid)!.PowerState);
        await _driver.SuspendAsync(_guest.Uuid, Ct);
        Assert.Equal(GuestPowerState.Suspended, _driver.GetGuest(_guest.Uuid)!.PowerState);
        await _driver.ResumeAsync(_guest.Uuid, Ct);
        Assert.Equal(GuestPowerState.Running, _driver.GetGuest(_guest.Uuid)!.PowerState);
        var console = await _driver.GetConsoleOutputAsync(_guest.Uuid, Ct);
        Assert.Contains("suspended on host1", console);
        Assert.Contains("resumed on host1", console);
    }

    [Fact]
    public async Task PowerChanges_FromTheWrongState_ConflictAndStateKept()
    {
        await _driver.SpawnAsync(_guest, reuseDisks: false, Ct);
        await Assert.ThrowsAsync<ConflictException>(() => _driver.UnpauseAsync(_guest.Uuid, Ct));
        await Assert.ThrowsAsync<ConflictException>(() => _driver.ResumeAsync(_guest.Uuid, Ct));
        await _driver.PauseAsync(_guest.Uuid, Ct);
        await Assert.ThrowsAsync<ConflictException>(() => _driver.PauseAsync(_guest.Uuid, Ct));
        await Assert.ThrowsAsync<ConflictException>(() => _driver.SuspendAsync(_guest.Uuid, Ct));
        Assert.Equal(GuestPowerState.Paused, _driver.GetGuest(_guest.Uuid)!.PowerState);
        await Assert.ThrowsAsync<InstanceNotFoundException>(() => _driver.PauseAsync(Guid.NewGuid().ToString(), Ct));
    }
}
