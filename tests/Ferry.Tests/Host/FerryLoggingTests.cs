using Ferry.Host.Logging;
using Ferry.Tests.Shared;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Ferry.Tests.Host;

public sealed class FerryLoggingTests : IDisposable
{
    private readonly string _directory = TestTempNames.Directory("log");

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private (string Console, string File) Log(LogLevel level, Action<ILoggerFactory> write)
    {
        var file = FerryLogging.LogFilePath(_directory, new DateTimeOffset(2026, 12, 4, 20, 30, 1, TimeSpan.Zero));
        var console = new StringWriter();
        using (var services = new ServiceCollection().AddLogging(logging => logging.AddFerryLogging(level, file, console)).BuildServiceProvider())
        {
            write(services.GetRequiredService<ILoggerFactory>());
        }
        return (console.ToString(), File.ReadAllText(file));
    }

    [Fact]
    public void LogFilePath_OnePerRun_UnderLogWithItsUtcStart()
    {
        var path = FerryLogging.LogFilePath("var", new DateTimeOffset(2026, 12, 4, 21, 30, 1, TimeSpan.FromHours(1)));

        Assert.Equal(Path.Combine("var", "log", "ferry-20261204T203001Z.log"), path);
    }

    [Fact]
    public void AddFerryLogging_InformationLevel_FerryLinesKeptFrameworkNoiseDropped()
    {
        var (console, file) = Log(LogLevel.Information, factory =>
        {
            factory.CreateLogger("Ferry.Compute.ComputeManager").LogInformation("live migration of 1234 to compute2 started");
            factory.CreateLogger("Ferry.Compute.ComputeManager").LogDebug("a debug detail");
            factory.CreateLogger("Microsoft.AspNetCore.Hosting.Diagnostics").LogInformation("Request starting HTTP/1.1 GET /v2.1/servers");
            factory.CreateLogger("Microsoft.AspNetCore.Server.Kestrel").LogWarning("connection reset");
            factory.CreateLogger("System.Net.Http.HttpClient.Default").LogInformation("Sending HTTP request");
        });

        foreach (var text in new[] { console, file })
        {
            Assert.Contains("info Ferry.Compute.ComputeManager: live migration of 1234 to compute2 started", text, StringComparison.Ordinal);
            Assert.Contains("warn Microsoft.AspNetCore.Server.Kestrel: connection reset", text, StringComparison.Ordinal);
            Assert.DoesNotContain("a debug detail", text, StringComparison.Ordinal);
            Assert.DoesNotContain("Request starting", text, StringComparison.Ordinal);
            Assert.DoesNotContain("Sending HTTP request", text, StringComparison.Ordinal);
        }
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info ", file);
    }

    [Fact]
    public void AddFerryLogging_DebugLevel_FerryDebugShownFrameworkStillAtWarnings()
    {
        var (console, _) = Log(LogLevel.Debug, factory =>
        {
            factory.CreateLogger("Ferry.Virt.Qemu.QemuDriver").LogDebug("qmp query-migrate");
            factory.CreateLogger("Microsoft.AspNetCore.Routing").LogInformation("Request matched endpoint");
        });

        Assert.Contains("dbug Ferry.Virt.Qemu.QemuDriver: qmp query-migrate", console, StringComparison.Ordinal);
        Assert.DoesNotContain("Request matched endpoint", console, StringComparison.Ordinal);
    }

    [Fact]
    public void AddFerryLogging_Exception_StackTraceOnItsOwnLines()
    {
        Exception caught;
        try
        {
            throw new InvalidOperationException("QEMU exited with status 1", new IOException("qmp.sock: connection refused"));
        }
        catch (InvalidOperationException ex)
        {
            caught = ex;
        }

        var (console, file) = Log(LogLevel.Information, factory => factory.CreateLogger("Ferry.Compute.LiveMigrationSource").LogError(caught, "live migration failed"));

        foreach (var text in new[] { console, file })
        {
            var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.EndsWith("fail Ferry.Compute.LiveMigrationSource: live migration failed", lines[0], StringComparison.Ordinal);
            Assert.Equal("    System.InvalidOperationException: QEMU exited with status 1", lines[1]);
            Assert.Contains(lines, l => l.StartsWith("     ---> System.IO.IOException: qmp.sock: connection refused", StringComparison.Ordinal));
            Assert.Contains(lines, l => l.StartsWith("       at Ferry.Tests.Host.FerryLoggingTests.", StringComparison.Ordinal));
        }
    }
}
