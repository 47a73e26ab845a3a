using System.Net;
using System.Net.Sockets;
using Ferry.Tests.Shared;

namespace Ferry.FunctionalTests.Host;

/// <summary>A `ferry all-in-one` child binds port 0 itself and tells its ports in the ready line: no port is probed, released and bound later.</summary>
[Collection(ProcessRestartCollection.Name)]
public sealed class ChildPortTests
{
    [Fact]
    public async Task Start_PortZeroOnTheSameDataDirectoryTwice_EachChildAnswersOnThePortsItReports()
    {
        var dataDirectory = TestTempNames.Directory("child-ports");
        try
        {
            int firstPort;
            await using (var first = await FerryChildProcess.StartAsync(dataDirectory, new Dictionary<string, string>(), hosts: 1))
            {
                firstPort = new Uri(first.ComputeUrl).Port;
                Assert.NotEqual(0, firstPort);
                Assert.Equal(HttpStatusCode.OK, (await first.Admin.GetAsync("os-services")).Status);
            }

            // The first child's port taken by someone else meanwhile: the restarted child binds another and says which.
            using var squatter = new TcpListener(IPAddress.Loopback, firstPort);
            squatter.Start();
            await using var second = await FerryChildProcess.StartAsync(dataDirectory, new Dictionary<string, string>(), hosts: 1);

            var secondPort = new Uri(second.ComputeUrl).Port;
            Assert.NotEqual(firstPort, secondPort);
            Assert.Equal(HttpStatusCode.OK, (await second.Admin.GetAsync("os-services")).Status);
        }
        finally
        {
            Directory.Delete(dataDirectory, recursive: true);
        }
    }
}
