using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Ferry.Tests.Virt.Qemu;

/// <summary>The driver's log in the test's output, so a failed QEMU test shows what the monitor did and when.</summary>
internal sealed class TestOutputLogger<T>(ITestOutputHelper output, string name) : ILogger<T>
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        try
        {
            output.WriteLine($"{_clock.Elapsed.TotalSeconds,7:F2} {name} {logLevel}: {formatter(state, exception)}{(exception is null ? "" : " " + exception.Message)}");
        }
        catch (InvalidOperationException)
        {
            // Written after the test ended (a background step): nobody reads it any more.
        }
    }
}
