using System.Diagnostics;
using Ferry.Tests.Shared;

namespace Ferry.Tests.Virt.Qemu;

/// <summary>
/// Builds the test guest once per test run (tools/test-guest/build.sh; a no-op when up to date) and hands out
/// short temporary instance paths (QMP socket paths must fit 107 bytes).
/// </summary>
public sealed class TestGuestFixture : IAsyncLifetime
{
    public string KernelPath { get; private set; } = "";

    public string RepoRoot { get; } = TestRepository.Root();

    public async Task InitializeAsync()
    {
        var script = Path.Combine(RepoRoot, "tools", "test-guest", "build.sh");
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(script);
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"build.sh failed: {await stderr}");
        }
        KernelPath = (await stdout).Trim().Split('\n')[^1];
        Assert.True(File.Exists(KernelPath), $"build.sh did not produce {KernelPath}");
    }

    public Task DisposeAsync() => Task.CompletedTask;

    /// <summary>A fresh directory like /tmp/fq-1a2b3c4d, owned by this test process (a later run removes it if this one is killed).</summary>
    public static string NewTempRoot() => QemuTestDirectories.Create("fq");
}
