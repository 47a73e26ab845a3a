using System.Diagnostics;
using Ferry.Core.Errors;

namespace Ferry.Virt;

/// <summary>One run of a host tool (qemu-img, xorriso, ip…): its exit code and its whole output; killed when cancelled.</summary>
public static class HostCommand
{
    /// <param name="package">The Debian package that brings <paramref name="binary"/>, named when it cannot be started.</param>
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string binary, IReadOnlyList<string> args, string package,
        CancellationToken cancellationToken, IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo(binary) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            psi.Environment[name] = value;
        }
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }
        Process? started;
        try
        {
            started = Process.Start(psi);
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new FerryException($"Could not start {binary}: {ex.Message} (is {package} installed?)");
        }
        using var process = started ?? throw new FerryException($"Could not start {binary}.");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            await process.WaitForExitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        return (process.ExitCode, await stdout, await stderr);
    }
}
