using Ferry.Host;
using Ferry.Host.Logging;
using Ferry.Tests.Shared;

namespace Ferry.FunctionalTests.Host;

/// <summary>The all-in-one's own logging (what `./ferry up` sets up when no test replaces it).</summary>
public sealed class HostLoggingTests
{
    [Fact]
    public async Task Build_DefaultLogging_RunLogFileHasFerryStepsAndNoRequestNoise()
    {
        var dataDirectory = TestTempNames.Directory("log-run");
        try
        {
            var options = new FerryHostOptions
            {
                DataDirectory = dataDirectory,
                ComputeApiPort = 0,
                PlacementPort = 0,
                ImagePort = 0,
                NetworkPort = 0,
                VolumePort = 0,
                Hosts = 1,
                FakeTimeScale = 0,
                LogFilePath = FerryLogging.LogFilePath(dataDirectory, DateTimeOffset.UtcNow),
            };
            await using (var ferry = AllInOne.Build(options))
            {
                await ferry.StartAsync(CancellationToken.None);
                using var http = new HttpClient();
                using var response = await http.GetAsync($"{options.ComputeApiUrl}/v2.1/os-hypervisors");
            }

            var log = await File.ReadAllTextAsync(options.LogFilePath);
            Assert.Contains(" info Ferry.", log, StringComparison.Ordinal);
            Assert.Contains("compute1", log, StringComparison.Ordinal);
            Assert.DoesNotContain("Request starting", log, StringComparison.Ordinal);
            Assert.DoesNotContain("Microsoft.AspNetCore.Hosting", log, StringComparison.Ordinal);
            Assert.DoesNotContain("Microsoft.Hosting.Lifetime", log, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dataDirectory, recursive: true);
        }
    }
}
