using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Ferry.FunctionalTests;

/// <summary>Keeps every formatted log line (with its event id) so a test can read what an operator would.</summary>
public sealed class LogCapture : ILoggerProvider
{
    public ConcurrentQueue<(int EventId, LogLevel Level, string Message)> Lines { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this);

    public void Dispose()
    {
    }

    private sealed class Logger(LogCapture capture) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                capture.Lines.Enqueue((eventId.Id, logLevel, formatter(state, exception)));
            }
        }
    }
}

/// <summary>A Ferry whose log lines (Information and up) are captured.</summary>
public sealed class LoggingFerryFixture : FerryFixture
{
    public LogCapture Logs { get; } = new();

    protected override void ConfigureLogging(ILoggingBuilder logging) =>
        logging.AddProvider(Logs).SetMinimumLevel(LogLevel.Information);
}
