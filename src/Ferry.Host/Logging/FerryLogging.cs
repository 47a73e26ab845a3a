using System.Globalization;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Ferry.Host.Logging;

/// <summary>
/// Ferry's logging: its own categories at the chosen level, framework categories (ASP.NET Core's
/// request lines, hosting, HTTP clients) at warnings and above, to the console and to a log file per run.
/// </summary>
public static class FerryLogging
{
    /// <summary>The categories that are framework noise at information level.</summary>
    private static readonly string[] s_frameworkCategories = ["Microsoft", "System"];

    /// <summary>
    /// Where a run's log file goes: &lt;data dir&gt;/log/ferry-&lt;utc&gt;.log, or ferry-&lt;role&gt;-&lt;utc&gt;.log for one role (roles
    /// started together on one data directory must not share a file).
    /// </summary>
    public static string LogFilePath(string dataDirectory, DateTimeOffset startedAt, string? role = null) =>
        Path.Combine(dataDirectory, "log",
            $"ferry-{(role is null ? "" : role + "-")}{startedAt.UtcDateTime.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture)}.log");

    /// <summary>Sends the log to <paramref name="console"/> (if any) and to <paramref name="logFilePath"/> (if any).</summary>
    public static ILoggingBuilder AddFerryLogging(this ILoggingBuilder logging, LogLevel level, string? logFilePath, TextWriter? console, TimeProvider? time = null)
    {
        time ??= TimeProvider.System;
        logging.SetMinimumLevel(level);
        var framework = (LogLevel)Math.Max((int)level, (int)LogLevel.Warning);
        foreach (var category in s_frameworkCategories)
        {
            logging.AddFilter(category, framework);
        }
        // Registered through factories so that the container disposes them (flushes the console, closes the file).
        if (console is not null)
        {
            logging.Services.AddSingleton<ILoggerProvider>(_ => new TextLoggerProvider(console, ownsWriter: false, fullDate: false, time));
        }
        if (logFilePath is not null)
        {
            logging.Services.AddSingleton<ILoggerProvider>(_ =>
            {
                Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(logFilePath))!);
                var file = new StreamWriter(new FileStream(logFilePath, FileMode.Append, FileAccess.Write, FileShare.Read), new UTF8Encoding(false));
                return new TextLoggerProvider(file, ownsWriter: true, fullDate: true, time);
            });
        }
        return logging;
    }
}
