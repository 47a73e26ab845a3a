using System.Diagnostics;
using System.Text;

namespace Ferry.Tests.Virt.Storage;

/// <summary>
/// An NBD client that stays connected: qemu-io reading commands from its stdin (line-buffered through stdbuf, so each
/// answer arrives when given). Each command's answer ends with its statistics line, or with an error line.
/// </summary>
internal sealed class QemuIoSession : IAsyncDisposable
{
    private readonly Process _process;

    private QemuIoSession(Process process) => _process = process;

    public static QemuIoSession Open(string uri)
    {
        var psi = new ProcessStartInfo("stdbuf")
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in (string[])["-oL", "qemu-io", "-f", "raw", uri])
        {
            psi.ArgumentList.Add(arg);
        }
        return new QemuIoSession(Process.Start(psi)!);
    }

    public bool HasExited => _process.HasExited;

    /// <summary>Runs one qemu-io command (<c>read -P 0xab 0 64k</c>) and returns its answer.</summary>
    public async Task<string> RunAsync(string command, CancellationToken cancellationToken)
    {
        await _process.StandardInput.WriteLineAsync(command.AsMemory(), cancellationToken);
        await _process.StandardInput.FlushAsync(cancellationToken);
        var answer = new StringBuilder();
        while (await _process.StandardOutput.ReadLineAsync(cancellationToken) is { } line)
        {
            answer.AppendLine(line);
            if (line.Contains(" ops; ", StringComparison.Ordinal) || line.Contains("failed:", StringComparison.Ordinal))
            {
                return answer.ToString();
            }
        }
        return answer + await _process.StandardError.ReadToEndAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.StandardInput.Close();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                await _process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        _process.Dispose();
    }
}
