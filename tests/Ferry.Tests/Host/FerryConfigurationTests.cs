using System.Collections;
using Ferry.Host;
using Ferry.Host.Configuration;
using Ferry.Tests.Shared;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ferry.Tests.Host;

/// <summary>Settings from the file, the environment and flags: which wins, and what a bad value from each says.</summary>
public sealed class FerryConfigurationTests : IDisposable
{
    private readonly string _directory = TestTempNames.Directory("config");

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string File(string json)
    {
        var path = Path.Combine(_directory, $"ferry-{Guid.NewGuid():N}.json");
        System.IO.File.WriteAllText(path, json);
        return path;
    }

    private static FerryLoadResult Load(string[] args, Dictionary<string, string>? environment = null, string? defaultConfigFile = null)
    {
        var commandLine = FerryCommandLine.ParseProgram(args);
        Assert.Empty(commandLine.Errors);
        return FerryConfiguration.Load(commandLine, new Hashtable(environment ?? []), defaultConfigFile);
    }

    [Fact]
    public void Load_SameSettingEverywhere_FlagBeatsEnvironmentBeatsFile()
    {
        var file = File("""{ "hosts": 4, "api": { "computePort": 1001, "placementPort": 1002 }, "liveMigration": { "permitPostCopy": true } }""");
        var environment = new Dictionary<string, string> { ["FERRY_HOSTS"] = "5", ["FERRY_API__PLACEMENTPORT"] = "2002" };

        var all = Load(["all-in-one", "--config", file, "--hosts", "6"], environment);
        var noFlag = Load(["all-in-one", "--config", file], environment);
        var fileOnly = Load(["all-in-one", "--config", file]);
        var nothing = Load(["all-in-one"]);

        Assert.Empty(all.Errors);
        Assert.Equal(6, all.Options.Hosts);
        Assert.Equal((1001, 2002), (all.Options.ComputeApiPort, all.Options.PlacementPort));
        Assert.True(all.Options.LiveMigrationPermitPostCopy);
        Assert.Equal(5, noFlag.Options.Hosts);
        Assert.Equal((4, 1002), (fileOnly.Options.Hosts, fileOnly.Options.PlacementPort));
        Assert.Equal((3, 8774, "keystone"), (nothing.Options.Hosts, nothing.Options.ComputeApiPort, nothing.Options.Auth));
    }

    [Fact]
    public void Load_DefaultFile_ReadOnlyWhenPresentAndNoOtherNamed()
    {
        var defaultFile = File("""{ "hosts": 7 }""");
        var named = File("""{ "hosts": 8 }""");

        Assert.Equal(7, Load(["all-in-one"], defaultConfigFile: defaultFile).Options.Hosts);
        Assert.Equal(8, Load(["all-in-one", "--config", named], defaultConfigFile: defaultFile).Options.Hosts);
        Assert.Equal(8, Load(["all-in-one"], new() { ["FERRY_CONFIG"] = named }, defaultConfigFile: defaultFile).Options.Hosts);
        Assert.Equal(3, Load(["all-in-one"], defaultConfigFile: Path.Combine(_directory, "absent.json")).Options.Hosts);
    }

    [Fact]
    public void Load_DatabaseAndTransport_PassedThroughAsGiven()
    {
        var loaded = Load(["all-in-one", "--database", "Host=db1;Database=ferry;Username=ferry"],
            new() { ["FERRY_TRANSPORT"] = "rabbitmq://ferry:secret@mq1:5672/ferry" });

        Assert.Empty(loaded.Errors);
        Assert.Equal("Host=db1;Database=ferry;Username=ferry", loaded.Options.DatabaseSetting);
        Assert.Equal("rabbitmq://ferry:secret@mq1:5672/ferry", loaded.Options.Transport);
        Assert.Equal(Path.Combine("var", "ferry.db"), Load(["all-in-one"]).Options.DatabaseSetting);
    }

    [Theory]
    [InlineData("FERRY_HOSTS", "abc", "FERRY_HOSTS (environment variable): 'abc' is not a whole number")]
    [InlineData("FERRY_HOSTS", "0", "FERRY_HOSTS (environment variable): 0 is out of range (1..10000)")]
    [InlineData("FERRY_DRIVER", "xen", "FERRY_DRIVER (environment variable): 'xen' is not one of fake, qemu")]
    [InlineData("FERRY_API__COMPUTEPORT", "70000", "FERRY_API__COMPUTEPORT (environment variable): 70000 is out of range (0..65535)")]
    [InlineData("FERRY_TIMESCALE", "-1", "FERRY_TIMESCALE (environment variable): -1 is below 0")]
    [InlineData("FERRY_SHAREDSTORAGE", "yes", "FERRY_SHAREDSTORAGE (environment variable): 'yes' is not true or false")]
    [InlineData("FERRY_TRANSPORT", "kafka://x", "FERRY_TRANSPORT (environment variable): 'kafka://x' is neither inprocess nor a rabbitmq://user:pass@host:port/vhost URL")]
    [InlineData("FERRY_LISTEN", "localhost", "FERRY_LISTEN (environment variable): 'localhost' is not an IP address")]
    [InlineData("FERRY_API__PLACEMENTURL", "placement:8778", "FERRY_API__PLACEMENTURL (environment variable): 'placement:8778' is not an http:// or https:// URL")]
    [InlineData("FERRY_LOGLEVEL", "loud", "FERRY_LOGLEVEL (environment variable): 'loud' is not one of trace, debug, information, warning, error, critical, none")]
    [InlineData("FERRY_METRICSPORT", "abc", "FERRY_METRICSPORT (environment variable): 'abc' is not a whole number")]
    [InlineData("FERRY_METRICSPORT", "65536", "FERRY_METRICSPORT (environment variable): 65536 is out of range (0..65535)")]
    public void Load_BadEnvironmentValue_OneLineNamingTheVariable(string variable, string value, string expected)
    {
        var loaded = Load(["all-in-one"], new() { [variable] = value });

        Assert.Equal(expected, Assert.Single(loaded.Errors));
    }

    [Theory]
    [InlineData("conductor")]
    [InlineData("scheduler")]
    [InlineData("compute")]
    public void Load_MetricsPortFlag_SetOnRolesWithoutAnApiAndUnsetByDefault(string role)
    {
        Assert.Equal(9109, Load([role, "--metrics-port", "9109"]).Options.MetricsPort);
        Assert.Null(Load([role]).Options.MetricsPort);
    }

    [Theory]
    [InlineData("""{ "hosts": "abc" }""", "hosts (in {0}): 'abc' is not a whole number")]
    [InlineData("""{ "api": { "imagePort": -1 } }""", "api:imagePort (in {0}): -1 is out of range (0..65535)")]
    [InlineData("""{ "liveMigration": { "timeoutAction": "wait" } }""", "liveMigration:timeoutAction (in {0}): 'wait' is not one of abort, force_complete")]
    [InlineData("""{ "identity": { "tokenLifetime": "soon" } }""", "identity:tokenLifetime (in {0}): 'soon' is not a number")]
    [InlineData("""{ "hostz": 3 }""", "{0}: 'hostz' is not a Ferry setting")]
    public void Load_BadFileValue_OneLineNamingTheSettingAndTheFile(string json, string expected)
    {
        var file = File(json);

        var loaded = Load(["all-in-one", "--config", file]);

        Assert.Equal(string.Format(System.Globalization.CultureInfo.InvariantCulture, expected, file), Assert.Single(loaded.Errors));
    }

    [Fact]
    public void Load_BadFlagValue_OneLineNamingTheFlag()
    {
        var commandLine = FerryCommandLine.ParseProgram(["compute", "--host", "bad host", "--transport", "rabbitmq://mq"]);

        Assert.Equal("--host: 'bad host' is not a host name (letters, digits, '-', '.', '_')", Assert.Single(commandLine.Errors).Message);
    }

    [Fact]
    public void Load_FileMissingOrNotJson_OneLineEach()
    {
        var missing = Path.Combine(_directory, "missing.json");
        var broken = File("{ \"hosts\": ");

        Assert.Equal($"--config: the configuration file '{missing}' does not exist", Assert.Single(Load(["all-in-one", "--config", missing]).Errors));
        var error = Assert.Single(Load(["all-in-one", "--config", broken]).Errors);
        Assert.StartsWith($"{broken}: not a valid configuration file", error, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', error);
    }

    [Theory]
    [InlineData("compute --host c1", "ferry compute needs a shared transport: set transport (FERRY_TRANSPORT or --transport) to rabbitmq://…")]
    [InlineData("compute --transport rabbitmq://mq", "ferry compute needs a host name: set compute:host (FERRY_COMPUTE__HOST or --host)")]
    [InlineData("conductor", "ferry conductor needs a shared transport: set transport (FERRY_TRANSPORT or --transport) to rabbitmq://…")]
    [InlineData("scheduler", "ferry scheduler needs a shared transport: set transport (FERRY_TRANSPORT or --transport) to rabbitmq://…")]
    [InlineData("api", "ferry api needs a shared transport: set transport (FERRY_TRANSPORT or --transport) to rabbitmq://…")]
    public void Load_RoleMissingWhatItNeeds_SaysWhichSettingToSet(string commandLine, string expected)
    {
        Assert.Equal(expected, Assert.Single(Load(commandLine.Split(' ')).Errors));
    }

    [Fact]
    public void Load_ApiServingNoComputeApi_NeedsNoSharedTransport()
    {
        var loaded = Load(["api", "--apis", "placement,image"]);

        Assert.Empty(loaded.Errors);
        Assert.Equal(["image", "placement"], loaded.Options.Apis.Order());
        Assert.False(loaded.Options.Serves("compute"));
    }

    [Fact]
    public void Load_ApisAsJsonArray_SameAsTheCommaList()
    {
        var file = File("""{ "apis": ["placement", "identity"] }""");

        var loaded = Load(["api", "--config", file]);
        var bad = Load(["api", "--config", File("""{ "apis": ["placement", "object-store"] }""")]);

        Assert.Empty(loaded.Errors);
        Assert.Equal(["identity", "placement"], loaded.Options.Apis.Order());
        Assert.EndsWith("'object-store' is not one of compute, placement, identity, image, network, volume", Assert.Single(bad.Errors), StringComparison.Ordinal);
    }

    [Fact]
    public void Load_ComputeRoleWithHostRangeAndNames_ServesEveryHostInOrder()
    {
        var loaded = Load(["compute", "--host", "compute[9-11],hv-a", "--transport", "rabbitmq://mq"]);

        Assert.Empty(loaded.Errors);
        Assert.Equal(["compute9", "compute10", "compute11", "hv-a"], loaded.Options.ComputeHosts);
    }

    [Theory]
    [InlineData("compute[3-1]", "--host: 'compute[3-1]' is not a range of host names (name[first-last], first <= last)")]
    [InlineData("a,b,a", "--host: names the host 'a' twice")]
    [InlineData("bad/name", "--host: 'bad/name' is not a host name (letters, digits, '-', '.', '_')")]
    [InlineData("c[1-2001]", "--host: 'c[1-2001]' names more than 2000 hosts")]
    public void Load_ComputeRoleWithBadHostList_SaysWhyInOneLine(string hosts, string expected)
    {
        var commandLine = FerryCommandLine.ParseProgram(["compute", "--host", hosts, "--transport", "rabbitmq://mq"]);

        Assert.Equal(expected, Assert.Single(commandLine.Errors).Message);
    }

    [Fact]
    public void Load_QemuComputeWithSeveralHosts_IsRefused()
    {
        var loaded = Load(["compute", "--host", "compute[1-2]", "--driver", "qemu", "--transport", "rabbitmq://mq"]);

        Assert.Equal(["--host: the qemu driver serves one host per process, not 2: give one name, or use the fake driver"], loaded.Errors);
    }

    [Fact]
    public void DistributedPlan_HostsPerCompute_SplitsHostsIntoProcessesLastOneSmaller()
    {
        var plan = new Ferry.Host.Distributed.DistributedPlan("/tmp/x", 7, 1, 0, 0, 0, 0, 0, 0, 0, 0, false, new Dictionary<string, string>()) { HostsPerCompute = 3 };

        Assert.Equal([("compute1-3", "compute[1-3]"), ("compute4-6", "compute[4-6]"), ("compute7", "compute7")], plan.ComputeProcesses());
    }

    [Fact]
    public void Load_ComputeRole_TakesItsHostAndAddress()
    {
        var loaded = Load(["compute", "--host", "hv-07", "--address", "10.0.0.7", "--transport", "rabbitmq://mq"],
            new() { ["FERRY_API__PLACEMENTURL"] = "http://10.0.0.1:8778/" });

        Assert.Empty(loaded.Errors);
        Assert.Equal(("hv-07", "10.0.0.7", "http://10.0.0.1:8778"), (loaded.Options.ComputeHost, loaded.Options.MigrationAddress, loaded.Options.PlacementUrl));
    }

    [Fact]
    public void OpenDatabase_NoPostgresAtTheSetting_OneLineNamingItAndTheSetting()
    {
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var closedPort = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();

        var thrown = Assert.Throws<FerryStartException>(() =>
            FerryInfrastructure.OpenDatabase($"Host=127.0.0.1;Port={closedPort};Database=ferry;Username=ferry;Password=s3cret;Timeout=3"));

        Assert.StartsWith($"Cannot reach the database postgresql://ferry@127.0.0.1:{closedPort}/ferry: ", thrown.Message);
        Assert.EndsWith("set database (FERRY_DATABASE or --database) to a running one", thrown.Message);
        Assert.DoesNotContain("s3cret", thrown.Message);
    }

    [Theory]
    [InlineData(FerryRoles.Api, "--apis", "--hosts")]
    [InlineData(FerryRoles.Compute, "--host ", "--hosts")]
    [InlineData(FerryRoles.Conductor, "--transport", "--driver")]
    [InlineData(FerryRoles.Scheduler, "--service-down-time", "--lm-bandwidth")]
    [InlineData(FerryRoles.DbSync, "--database", "--transport")]
    public void HelpText_EachRole_ListsItsOwnFlagsOnly(FerryRoles role, string listed, string notListed)
    {
        var help = FerryCommandLine.HelpText(role);

        Assert.Contains(listed, help, StringComparison.Ordinal);
        Assert.Contains("--config", help, StringComparison.Ordinal);
        Assert.DoesNotContain(notListed, help, StringComparison.Ordinal);
    }
}
