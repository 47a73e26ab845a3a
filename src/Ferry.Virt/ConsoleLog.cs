using System.Text;

namespace Ferry.Virt;

/// <summary>Reading a guest's serial console log file the way Nova's libvirt driver serves it.</summary>
public static class ConsoleLog
{
    /// <summary>Nova's MAX_CONSOLE_BYTES: only the last 100 KiB of a log are served.</summary>
    public const int MaxBytes = 100 * 1024;

    /// <summary>The last <see cref="MaxBytes"/> of the file as text; empty when the guest has written nothing yet.</summary>
    public static async Task<string> ReadTailAsync(string path, CancellationToken cancellationToken)
    {
        if (!File.Exists(path))
        {
            return "";
        }
        // QEMU keeps the file open for writing; share it so reading never blocks the guest.
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var start = Math.Max(0, file.Length - MaxBytes);
        file.Seek(start, SeekOrigin.Begin);
        var buffer = new byte[file.Length - start];
        var read = await file.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellationToken);
        return Encoding.UTF8.GetString(buffer, 0, read);
    }

    /// <summary>
    /// The last <paramref name="lines"/> lines (Nova's tail_length); null or negative = everything, 0 = nothing.
    /// A trailing newline does not count as an empty last line.
    /// </summary>
    public static string Tail(string output, int? lines)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (lines is not { } n || n < 0)
        {
            return output;
        }
        if (n == 0)
        {
            return "";
        }
        var end = output.EndsWith('\n') ? output.Length - 1 : output.Length;
        var start = end;
        for (var seen = 0; start > 0; start--)
        {
            if (output[start - 1] == '\n' && ++seen == n)
            {
                break;
            }
        }
        return output[start..];
    }
}
