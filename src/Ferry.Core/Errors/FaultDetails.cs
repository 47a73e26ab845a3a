namespace Ferry.Core.Errors;

/// <summary>
/// The <c>details</c> of an instance fault. Nova stores the traceback there (shown to admins only); a .NET
/// stack trace tells an operator nothing they can act on, so Ferry stores the chain of causes and whatever
/// the failing layer knew (<see cref="FerryException.Details"/>: QEMU's own last words, say). Stack traces
/// stay in the log, beside the step's log line.
/// </summary>
public static class FaultDetails
{
    private const int MaxChars = 4096;

    public static string Describe(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        var lines = new List<string>();
        string? details = null;
        for (Exception? ex = exception; ex is not null; ex = ex.InnerException)
        {
            var name = ex is FerryException f ? f.Kind : ex.GetType().Name;
            var line = $"{name}: {ex.Message}";
            if (lines.Count == 0 || !lines[^1].EndsWith(ex.Message, StringComparison.Ordinal))
            {
                lines.Add(lines.Count == 0 ? line : "caused by " + line);
            }
            details ??= (ex as FerryException)?.Details;
        }
        if (details is not null)
        {
            lines.Add(details);
        }
        var text = string.Join('\n', lines);
        return text.Length <= MaxChars ? text : text[..MaxChars] + "…";
    }
}
