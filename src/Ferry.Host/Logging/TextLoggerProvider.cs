using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;

namespace Ferry.Host.Logging;

/// <summary>
/// Writes one line per log entry to a text writer (the console, or the run's log file):
/// time, level, category, message. An exception follows on its own indented lines, stack trace
/// included, so that it reads as .NET prints it rather than squeezed onto one line.
/// </summary>
internal sealed class TextLoggerProvider(TextWriter writer, bool ownsWriter, bool fullDate, TimeProvider time) : ILoggerProvider
{
    private readonly Lock _lock = new();
    private bool _disposed;

    public ILogger CreateLogger(string categoryName) => new TextLogger(this, categoryName);

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            if (ownsWriter)
            {
                writer.Dispose();
            }
            else
            {
                writer.Flush();
            }
        }
    }

    /// <summary>The text of one entry, its last line ended.</summary>
    internal static string Format(DateTimeOffset at, bool fullDate, LogLevel level, string category, string message, Exception? exception)
    {
        var text = new StringBuilder();
        text.Append(at.UtcDateTime.ToString(fullDate ? "yyyy-MM-dd'T'HH:mm:ss.fff'Z'" : "HH:mm:ss.fff", CultureInfo.InvariantCulture))
            .Append(' ').Append(LevelName(level)).Append(' ').Append(category).Append(": ").Append(message).Append('\n');
        if (exception is not null)
        {
            foreach (var line in exception.ToString().Split('\n'))
            {
                text.Append("    ").Append(line.TrimEnd('\r')).Append('\n');
            }
        }
        return text.ToString();
    }

    private static string LevelName(LogLevel level) => level switch
    {
        LogLevel.Trace => "trce",
        LogLevel.Debug => "dbug",
        LogLevel.Information => "info",
        LogLevel.Warning => "warn",
        LogLevel.Error => "fail",
        LogLevel.Critical => "crit",
        _ => "none",
    };

    private void Write(LogLevel level, string category, string message, Exception? exception)
    {
        var text = Format(time.GetUtcNow(), fullDate, level, category, message, exception);
        lock (_lock)
        {
            if (!_disposed)
            {
                writer.Write(text);
                writer.Flush();
            }
        }
    }

    private sealed class TextLogger(TextLoggerProvider provider, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                provider.Write(logLevel, category, formatter(state, exception), exception);
            }
        }
    }
}
