using System.Diagnostics;
using Ferry.ControlPlane.Identity;
using Ferry.Host;
using Ferry.Host.Logging;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

var started = Stopwatch.StartNew();
var commandLine = FerryCommandLine.Parse(args);
if (commandLine.Errors.Count > 0)
{
    foreach (var error in commandLine.Errors)
    {
        Console.Error.WriteLine($"ferry: {error.Message}");
    }
    Console.Error.WriteLine("ferry: ./ferry up --help lists every option");
    return 2;
}
if (FerryCommandLine.WantsHelp(commandLine))
{
    Console.Out.Write(FerryCommandLine.HelpText());
    return 0;
}
var options = FerryCommandLine.Bind(commandLine);
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
using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    stop.Cancel();
};
// SIGTERM stops as cleanly as Ctrl-C: computes stop, listeners drain, the database closes.
using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, context =>
{
    context.Cancel = true;
    stop.Cancel();
});

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
catch (Ferry.Core.Errors.RpcUnavailableException ex)
{
    // No broker at --transport-url: the message names it (without its password) and the flag.
    Console.Error.WriteLine($"ferry: cannot start: {ex.Message}");
    return 1;
}
Console.WriteLine($"Ferry is ready in {started.ElapsedMilliseconds} ms: compute API {options.ComputeApiUrl}/v2.1, placement {options.PlacementUrl}, images {options.ImageUrl}, " +
    $"{options.Hosts} {options.Driver} hosts, database {Path.GetFullPath(options.DatabasePath)}, log {Path.GetFullPath(options.LogFilePath)}. Ctrl-C stops it.");
if (options.UsesKeystone)
{
    // devstack's openrc files, with the development passwords the identity file was first written with.
    var identity = AllInOne.IdentityOptionsOf(options);
    foreach (var (user, password) in new[] { ("admin", identity.AdminPassword), ("demo", identity.DemoPassword) })
    {
        OpenRc.Write(Path.Combine(options.DataDirectory, $"{user}-openrc.sh"),
            OpenRc.Variables($"{options.IdentityUrl}/v3", user, password, user, identity.Region));
    }
    Console.WriteLine($"Identity {options.IdentityUrl}/v3. Try: . {Path.Combine(options.DataDirectory, "admin-openrc.sh")} && openstack compute service list");
}
else
{
    Console.WriteLine($"Try: curl -s -H 'X-Auth-Token: admin:admin' {options.ComputeApiUrl}/v2.1/os-hypervisors");
}
try
{
    await Task.Delay(Timeout.Infinite, stop.Token);
}
catch (OperationCanceledException)
{
}
HostLog.Stopping(log, options.Driver == "qemu" && !options.KillGuestsOnStop);
Console.WriteLine(options.Driver == "qemu" && !options.KillGuestsOnStop
    ? "Ferry stopped. Its QEMU guests keep running (as under a stopped nova-compute); the next ./ferry up --driver qemu re-attaches them."
    : "Ferry stopped.");
return 0;
