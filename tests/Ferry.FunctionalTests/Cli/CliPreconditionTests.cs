using Ferry.Tests.Shared;
using Xunit.Sdk;

namespace Ferry.FunctionalTests.Cli;

/// <summary>A CLI test whose client is missing fails, naming the package; it never passes without running.</summary>
public sealed class CliPreconditionTests
{
    [Fact]
    public void RequireTool_ClientNotOnPath_FailsNamingThePackage()
    {
        var empty = TestTempNames.Directory("empty-path");
        try
        {
            var missing = CliFixture.FindOnPath("openstack", empty);

            Assert.Null(missing);
            var failure = Assert.Throws<FailException>(() => CliFixture.RequireTool(missing, "openstack", "python3-openstackclient"));
            Assert.Contains("install python3-openstackclient", failure.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(empty);
        }
    }

    [Fact]
    public void RequireTool_ClientOnPath_Passes()
    {
        var bin = TestTempNames.Directory("path");
        try
        {
            File.WriteAllText(Path.Combine(bin, "nova"), "");

            CliFixture.RequireTool(CliFixture.FindOnPath("nova", bin), "nova", "python3-novaclient");
        }
        finally
        {
            Directory.Delete(bin, recursive: true);
        }
    }

    [Fact]
    public void TestPackages_ListEveryClientTheCliTestsRun()
    {
        var packages = File.ReadAllLines(Path.Combine(TestRepository.Root(), "tests", "debian-packages.txt")).Select(l => l.Split('#')[0].Trim());

        Assert.Contains("python3-openstackclient", packages);
        Assert.Contains("python3-novaclient", packages);
        Assert.Contains("python3-osc-placement", packages);
    }
}
