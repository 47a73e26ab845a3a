using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Ferry.FunctionalTests.Fuzz;

/// <summary>Keeps the host's error log lines (type and message of each exception) for the fuzz report.</summary>
internal sealed class ErrorLogCollector : ILoggerProvider
{
    public ConcurrentQueue<string> Errors { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(ErrorLogCollector owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Error;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                var where = exception?.StackTrace?.Split('\n').FirstOrDefault()?.Trim() ?? "";
                owner.Errors.Enqueue($"{category}: {formatter(state, exception)} {exception?.GetType().Name}: {exception?.Message} {where}");
            }
        }
    }
}
