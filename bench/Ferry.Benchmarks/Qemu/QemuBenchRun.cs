using System.Diagnostics;

namespace Ferry.Benchmarks.Qemu;

/// <summary>
/// What every QEMU bench mode starts with: Ctrl-C cancels the run (the drivers then end their guests), the clock and the
/// load average at the start, the test guest built, this process's work directory and the directory where the guests'
/// consoles are kept.
/// </summary>
internal sealed class QemuBenchRun : IDisposable
{
    private readonly CancellationTokenSource _cancel = new();

    /// <param name="workPrefix">Names the mode's work directory under /tmp (with this process's id).</param>
    public QemuBenchRun(string workPrefix)
    {
        Console.CancelKeyPress += OnCancelKeyPress;
        Root = QemuMigrationBench.RepositoryRoot();
        Kernel = QemuMigrationBench.BuildTestGuest(Root);
        Work = Path.Combine(Path.GetTempPath(), $"{workPrefix}{Environment.ProcessId}");
        Logs = Path.Combine(Path.GetTempPath(), "ferry-bench-qemu-logs");
        Directory.CreateDirectory(Logs);
    }

    public CancellationToken Token => _cancel.Token;

    public Stopwatch Clock { get; } = Stopwatch.StartNew();

    public string LoadAtStart { get; } = Results.LoadAverage();

    public string Root { get; }

    public string Kernel { get; }

    public string Work { get; }

    public string Logs { get; }

    private void OnCancelKeyPress(object? sender, ConsoleCancelEventArgs e)
    {
        e.Cancel = true;
        _cancel.Cancel();
    }

    public void Dispose()
    {
        Console.CancelKeyPress -= OnCancelKeyPress;
        _cancel.Dispose();
    }
}
