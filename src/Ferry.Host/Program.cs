using System.Collections;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Ferry.ControlPlane.Identity;
using Ferry.ControlPlane.Persistence;
using Ferry.Host;
using Ferry.Host.Configuration;
using Ferry.Host.Logging;
using Ferry.Host.Roles;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

var started = Stopwatch.StartNew();
var commandLine = FerryCommandLine.ParseProgram(args);
var role = FerryCommandLine.RoleOf(commandLine);
var helpHint = role == FerryRoles.None ? "ferry --help" : role == FerryRoles.AllInOne ? "./ferry up --help" : $"ferry {string.Join(' ', FerryCommandLine.WordsOf(role))} --help";
if (commandLine.Errors.Count > 0)
{
    foreach (var error in commandLine.Errors)
    {
        Console.Error.WriteLine($"ferry: {error.Message}");
    }
    Console.Error.WriteLine($"ferry: {helpHint} lists every option");
    return 2;
}
if (FerryCommandLine.WantsHelp(commandLine) || role == FerryRoles.None)
{
    Console.Out.Write(FerryCommandLine.HelpText(commandLine));
    return FerryCommandLine.WantsHelp(commandLine) ? 0 : 2;
}
var loaded = FerryConfiguration.Load(commandLine, Environment.GetEnvironmentVariables());
if (loaded.Errors.Count > 0)
{
    foreach (var error in loaded.Errors)
    {
        Console.Error.WriteLine($"ferry: {error}");
    }
    return 2;
}
var options = loaded.Options;
if (FerryInfrastructure.IsPostgres(options.DatabaseSetting))
{
    FerryDatabase.EnsureThreadsForPool(options.DatabaseSetting);
}
try
{
    return role switch
    {
        FerryRoles.DbSync => DbSync(options),
        FerryRoles.AllInOne => await RunAllInOneAsync(options, started),
        FerryRoles.Distributed => await RunDistributedAsync(options, commandLine, started),
        _ => await RunRoleAsync(role, options, started),
    };
}
catch (OperationCanceledException) when (StopSignals.Received)
{
    // Ctrl-C or SIGTERM before the ready line: what had started was stopped on the way here, as after a failed start.
    Console.WriteLine("ferry: stopped before it was ready.");
    return 0;
}
catch (FerryStartException ex)
{
    Console.Error.WriteLine($"ferry: {ex.Message}");
    return 2;
}
catch (Ferry.Core.Errors.RpcUnavailableException ex)
{
    // The broker the settings name is not there (or refuses the login): one line naming it and the setting.
    Console.Error.WriteLine($"ferry: cannot start: {ex.Message}");
    return 1;
}

static int DbSync(FerryHostOptions options)
{
    var database = options.DatabaseSetting;
    try
    {
        using var db = FerryInfrastructure.OpenDatabase(database);
        FerryInfrastructure.SyncSchema(db);
    }
    catch (Exception ex) when (ex is SqliteException or IOException or UnauthorizedAccessException)
    {
        Console.Error.WriteLine($"ferry db sync: cannot bring {database} up to date: {ex.Message.Split('\n')[0]}");
        return 1;
    }
    Console.WriteLine($"ferry db sync: the database {(FerryInfrastructure.IsPostgres(database) ? "(PostgreSQL)" : Path.GetFullPath(database))} is up to date.");
    return 0;
}

static async Task<int> RunAllInOneAsync(FerryHostOptions options, Stopwatch started)
{
    if (options.Driver == "qemu" && !File.Exists(options.TestGuestKernelPath))
    {
        Console.Error.WriteLine($"ferry: the test guest kernel {options.TestGuestKernelPath} is missing: run tools/test-guest/build.sh (./ferry up does)");
        return 2;
    }
    Directory.CreateDirectory(options.DataDirectory);
    options.LogFilePath = FerryLogging.LogFilePath(options.DataDirectory, DateTimeOffset.UtcNow);

    await using var ferry = AllInOne.Build(options);
    var log = ferry.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Ferry.Host");
    HostLog.Starting(log, options.Hosts, options.Driver, options.SharedStorage, options.Auth, Path.GetFullPath(options.DataDirectory),
        options.ComputeApiUrl, options.PlacementUrl, options.ImageUrl, options.LogLevel);
    using var stop = StopSignals.Register();
    try
    {
        await ferry.StartAsync(stop.Token);
    }
    catch (IOException ex)
    {
        // Usually a port already taken by another Ferry: say so in one line.
        Console.Error.WriteLine($"ferry: cannot start: {ex.Message}");
        return 1;
    }
    Console.WriteLine($"Ferry is ready in {started.ElapsedMilliseconds} ms: compute API {options.ComputeApiUrl}/v2.1, placement {options.PlacementUrl}, images {options.ImageUrl}, network {options.NetworkUrl}, volumes {options.VolumeUrl}/v3, " +
        $"{options.Hosts} {options.Driver} hosts, database {Path.GetFullPath(options.DatabasePath)}, log {Path.GetFullPath(options.LogFilePath)}. Ctrl-C stops it.");
    if (options.UsesKeystone)
    {
        WriteOpenRcFiles(options);
        Console.WriteLine($"Identity {options.IdentityUrl}/v3. Try: . {Path.Combine(options.DataDirectory, "admin-openrc.sh")} && openstack compute service list");
    }
    else
    {
        Console.WriteLine($"Try: curl -s -H 'X-Auth-Token: admin:admin' {options.ComputeApiUrl}/v2.1/os-hypervisors");
    }
    await stop.WaitAsync();
    HostLog.Stopping(log, options.Driver == "qemu" && !options.KillGuestsOnStop);
    Console.WriteLine(options.Driver == "qemu" && !options.KillGuestsOnStop
        ? "Ferry stopped. Its QEMU guests keep running (as under a stopped nova-compute); the next ./ferry up --driver qemu re-attaches them."
        : "Ferry stopped.");
    return 0;
}

static async Task<int> RunDistributedAsync(FerryHostOptions options, System.CommandLine.ParseResult commandLine, Stopwatch started)
{
    using var stop = StopSignals.Register();
    return await Ferry.Host.Distributed.DistributedCommand.RunAsync(options, FerryCommandLine.GivenFlags(commandLine), FerryCommandLine.ConfigFile(commandLine),
        started, stop.Token);
}

static async Task<int> RunRoleAsync(FerryRoles role, FerryHostOptions options, Stopwatch started)
{
    var computeHosts = options.ComputeHosts;
    var hosts = computeHosts.Count > 1 ? $"{computeHosts[0]}..{computeHosts[^1]}" : options.ComputeHost;
    var name = options.LogName ?? (role == FerryRoles.Compute ? $"compute-{hosts}" : role.ToString().ToLowerInvariant());
    Directory.CreateDirectory(options.DataDirectory);
    options.LogFilePath = FerryLogging.LogFilePath(options.DataDirectory, DateTimeOffset.UtcNow, name);
    await using var infrastructure = new FerryInfrastructure(options, apiOnly: role == FerryRoles.Api);
    using var host = role switch
    {
        FerryRoles.Api => RoleHosts.BuildApi(options, infrastructure),
        FerryRoles.Conductor => RoleHosts.BuildConductor(options, infrastructure),
        FerryRoles.Scheduler => RoleHosts.BuildScheduler(options, infrastructure),
        _ => RoleHosts.BuildCompute(options, infrastructure),
    };
    using var stop = StopSignals.Register();
    await FerryInfrastructure.ConnectAsync(host.Services, stop.Token);
    try
    {
        await host.StartAsync(stop.Token);
    }
    catch (IOException ex)
    {
        Console.Error.WriteLine($"ferry: cannot start: {ex.Message}");
        return 1;
    }
    if (role == FerryRoles.Api && options.UsesKeystone && options.Serves("identity"))
    {
        WriteOpenRcFiles(options);
    }
    var transport = FerryInfrastructure.Redacted(options.Transport);
    Console.WriteLine(role switch
    {
        FerryRoles.Api => $"Ferry api is ready in {started.ElapsedMilliseconds} ms: {string.Join(", ", ServedApis(options))}, transport {transport}",
        FerryRoles.Compute => $"Ferry compute {hosts}{(computeHosts.Count > 1 ? $" ({computeHosts.Count} hosts)" : "")} is ready in {started.ElapsedMilliseconds} ms: {options.Driver} driver, placement {options.PlacementUrl}, " +
            $"migration address {options.MigrationAddress}, transport {transport}",
        _ => $"Ferry {name} is ready in {started.ElapsedMilliseconds} ms: transport {transport}",
    } + (RoleHosts.MetricsUrl(host) is { } metrics ? $", metrics {metrics}" : "") + $", log {Path.GetFullPath(options.LogFilePath)}. Ctrl-C stops it.");
    await stop.WaitAsync();
    await host.StopAsync();
    Console.WriteLine($"Ferry {name} stopped.");
    return 0;
}

// devstack's openrc files, with the development passwords the identity file was first written with.
static void WriteOpenRcFiles(FerryHostOptions options)
{
    var identity = AllInOne.IdentityOptionsOf(options);
    foreach (var (user, password) in new[] { ("admin", identity.AdminPassword), ("demo", identity.DemoPassword) })
    {
        OpenRc.Write(Path.Combine(options.DataDirectory, $"{user}-openrc.sh"),
            OpenRc.Variables($"{options.IdentityUrl}/v3", user, password, user, identity.Region));
    }
}

static IEnumerable<string> ServedApis(FerryHostOptions options)
{
    if (options.Serves("compute"))
    {
        yield return $"compute API {options.ComputeApiUrl}/v2.1";
    }
    if (options.Serves("placement"))
    {
        yield return $"placement {options.PlacementUrl}";
    }
    if (options.UsesKeystone && options.Serves("identity"))
    {
        yield return $"identity {options.IdentityUrl}/v3";
    }
    if (options.Serves("image"))
    {
        yield return $"images {options.ImageUrl}";
    }
    if (options.Serves("network"))
    {
        yield return $"network {options.NetworkUrl}";
    }
    if (options.Serves("volume"))
    {
        yield return $"volume {options.VolumeUrl}";
    }
}

/// <summary>Ctrl-C (SIGINT) and SIGTERM stop a role cleanly: agents stop, listeners drain, the database closes.</summary>
internal sealed class StopSignals : IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly PosixSignalRegistration _sigint;
    private readonly PosixSignalRegistration _sigterm;

    private StopSignals()
    {
        _sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        _sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
    }

    public CancellationToken Token => _stop.Token;

    /// <summary>A Ctrl-C or SIGTERM came to this process (a start it cancelled is a stop, not a crash).</summary>
    public static bool Received { get; private set; }

    public static StopSignals Register() => new();

    public async Task WaitAsync()
    {
        try
        {
            await Task.Delay(Timeout.Infinite, _stop.Token);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private void Stop(PosixSignalContext context)
    {
        context.Cancel = true;
        Received = true;
        _stop.Cancel();
    }

    public void Dispose()
    {
        _sigint.Dispose();
        _sigterm.Dispose();
        _stop.Dispose();
    }
}
