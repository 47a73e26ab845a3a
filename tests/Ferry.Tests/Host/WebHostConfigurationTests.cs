using Ferry.Host;
using Ferry.Tests.Shared;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Json;
using Microsoft.Extensions.Logging;

namespace Ferry.Tests.Host;

/// <summary>
/// The web hosts read no appsettings.json on change: its reload watched the whole working directory (where <c>var/</c>
/// and its instance directories usually are) with an inotify watch per subdirectory, 36,000 of them in a repository
/// checkout before any instance, one more for each instance directory.
/// </summary>
public sealed class WebHostConfigurationTests : IDisposable
{
    private readonly string _directory = TestTempNames.Directory("webhost");

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task Build_AllInOne_NoConfigurationFileReloadsOnChange()
    {
        var options = new FerryHostOptions
        {
            DataDirectory = _directory,
            ComputeApiPort = 0,
            PlacementPort = 0,
            IdentityPort = 0,
            ImagePort = 0,
            NetworkPort = 0,
            VolumePort = 0,
        };
        await using var ferry = AllInOne.Build(options, logging => logging.SetMinimumLevel(LogLevel.None));

        var providers = ((IConfigurationRoot)ferry.App.Configuration).Providers.OfType<FileConfigurationProvider>().ToList();

        Assert.DoesNotContain(providers, p => p.Source.ReloadOnChange);
    }
}
