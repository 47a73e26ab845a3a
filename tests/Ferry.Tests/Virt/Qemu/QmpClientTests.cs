using Ferry.Virt.Qemu;
using Ferry.Virt.Qemu.Qmp;

namespace Ferry.Tests.Virt.Qemu;

[Trait("Requires", "qemu")]
public sealed class QmpClientTests(TestGuestFixture fixture) : IClassFixture<TestGuestFixture>, IAsyncLifetime
{
    private readonly string _root = TestGuestFixture.NewTempRoot();
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(30));
    private QemuProcess? _process;

    private CancellationToken Ct => _timeout.Token;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_process is not null)
        {
            await _process.DisposeAsync();
            Assert.False(QemuProcess.IsAlive(_process.Pid, _process.Uuid), "QEMU still runs after dispose");
        }
        _timeout.Dispose();
        Directory.Delete(_root, recursive: true);
    }

    private async Task<QemuProcess> StartPausedAsync()
    {
        var spec = new QemuLaunchSpec
        {
            Uuid = Guid.NewGuid().ToString(),
            Name = "qmp-test",
            MemoryMb = 32,
            Vcpus = 1,
            KernelPath = fixture.KernelPath,
            KernelAppend = "region_mib=1 dirty_kib_per_tick=0",
            SerialLogPath = Path.Combine(_root, "console.log"),
            QmpSocketPath = Path.Combine(_root, "qmp.sock"),
            StartPaused = true,
        };
        _process = await QemuProcess.StartAsync("qemu-system-x86_64", spec, TimeSpan.FromSeconds(15), Ct);
        return _process;
    }

    [Fact]
    public async Task ExecuteAsync_QueryStatus_ReturnsPrelaunchThenRunningAfterCont()
    {
        var process = await StartPausedAsync();

        var before = await process.Qmp.ExecuteAsync("query-status", null, Ct);
        await process.Qmp.ExecuteAsync("cont", null, Ct);
        var after = await process.Qmp.ExecuteAsync("query-status", null, Ct);

        Assert.Equal("prelaunch", before.GetProperty("status").GetString());
        Assert.Equal("running", after.GetProperty("status").GetString());
        Assert.True(process.Qmp.QemuVersion >= 7_000_000, $"version {process.Qmp.QemuVersion}");
    }

    [Fact]
    public async Task Events_Cont_DeliversResumeEvent()
    {
        var process = await StartPausedAsync();

        await process.Qmp.ExecuteAsync("cont", null, Ct);
        var e = await process.Qmp.Events.ReadAsync(Ct);

        Assert.Equal("RESUME", e.Name);
    }

    [Fact]
    public async Task ExecuteAsync_UnknownCommand_ThrowsQmpExceptionWithClass()
    {
        var process = await StartPausedAsync();

        var ex = await Assert.ThrowsAsync<QmpException>(() => process.Qmp.ExecuteAsync("no-such-command", null, Ct));

        Assert.Equal("CommandNotFound", ex.ErrorClass);
        Assert.Contains("no-such-command", ex.Description);
    }

    [Fact]
    public async Task ExecuteAsync_ConcurrentCommands_RepliesMatchedById()
    {
        var process = await StartPausedAsync();

        var tasks = Enumerable.Range(0, 20).Select(i => i % 2 == 0
            ? process.Qmp.ExecuteAsync("query-status", null, Ct)
            : process.Qmp.ExecuteAsync("query-name", null, Ct)).ToList();
        var replies = await Task.WhenAll(tasks);

        for (var i = 0; i < replies.Length; i++)
        {
            Assert.True(replies[i].TryGetProperty(i % 2 == 0 ? "status" : "name", out _), $"reply {i}: {replies[i]}");
        }
    }

    [Fact]
    public async Task Quit_ProcessExitsAndLaterCommandsFailAsConnectionClosed()
    {
        var process = await StartPausedAsync();

        await process.Qmp.ExecuteAsync("quit", null, Ct);
        Assert.True(await process.WaitForExitAsync(TimeSpan.FromSeconds(10), Ct));
        await process.Qmp.Completion.WaitAsync(Ct);
        var ex = await Assert.ThrowsAsync<QmpException>(() => process.Qmp.ExecuteAsync("query-status", null, Ct));

        Assert.Equal(QmpException.ConnectionClosedClass, ex.ErrorClass);
    }
}
