using System.Text.Json;
using Ferry.Core.Errors;

namespace Ferry.Virt;

/// <summary>
/// The few Linux network-device steps a compute host takes (iproute2's <c>ip</c>, as Nova's os-vif linux bridge plugin
/// takes them): a bridge per host, guests' tap devices enslaved to it, addresses on it; in this process's network
/// namespace or a named one (<c>netns</c>). Every step is idempotent, so a host that restarts mid-way repeats it safely.
/// </summary>
public static class LinuxNetwork
{
    /// <summary>Linux's IFNAMSIZ less the terminating zero.</summary>
    public const int MaxDeviceNameLength = 15;

    private const string IpBinary = "ip";
    private const string BridgeBinary = "bridge";

    /// <summary>Creates the bridge when missing (no STP, forwarding at once) and sets it up.</summary>
    public static async Task EnsureBridgeAsync(string bridge, CancellationToken cancellationToken, string? netns = null)
    {
        CheckName(bridge);
        if (!await ExistsAsync(bridge, cancellationToken, netns))
        {
            var (exitCode, _, stderr) = await RunRawAsync(In(netns, ["link", "add", bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"]), cancellationToken);
            // Another host of this machine may have made it in between.
            if (exitCode != 0 && !await ExistsAsync(bridge, cancellationToken, netns))
            {
                throw new FerryException($"Could not create the bridge {bridge}: {stderr.Trim()} (bridges and taps need root: run as root, or give guests no NICs with --bridge \"\")");
            }
        }
        await RunAsync(In(netns, ["link", "set", bridge, "up"]), cancellationToken);
    }

    /// <summary>Puts a (tap) device on the bridge and sets it up.</summary>
    public static Task AttachAsync(string device, string bridge, CancellationToken cancellationToken, string? netns = null)
    {
        CheckName(device);
        CheckName(bridge);
        return RunAsync(In(netns, ["link", "set", device, "master", bridge, "up"]), cancellationToken);
    }

    /// <summary>Gives the device an address (<c>a.b.c.d/prefix</c>) unless it has it already.</summary>
    public static Task AddAddressAsync(string device, string addressWithPrefix, CancellationToken cancellationToken, string? netns = null)
    {
        CheckName(device);
        return RunAsync(In(netns, ["address", "replace", addressWithPrefix, "dev", device]), cancellationToken);
    }

    /// <summary>Deletes the device; no error when it is gone already.</summary>
    public static async Task DeleteAsync(string device, CancellationToken cancellationToken, string? netns = null)
    {
        CheckName(device);
        var (exitCode, _, stderr) = await RunRawAsync(In(netns, ["link", "delete", device]), cancellationToken);
        if (exitCode != 0 && await ExistsAsync(device, cancellationToken, netns))
        {
            throw new FerryException($"Could not delete {device}: {stderr.Trim()}");
        }
    }

    public static async Task<bool> ExistsAsync(string device, CancellationToken cancellationToken, string? netns = null)
    {
        var (exitCode, _, _) = await RunRawAsync(In(netns, ["link", "show", "dev", device]), cancellationToken);
        return exitCode == 0;
    }

    /// <summary>The tap devices of this (or the named) network namespace, with the bridge each is on.</summary>
    public static async Task<IReadOnlyList<TapDevice>> ListTapsAsync(CancellationToken cancellationToken, string? netns = null)
    {
        var json = await RunAsync(In(netns, ["-j", "-d", "link", "show", "type", "tun"]), cancellationToken);
        var taps = new List<TapDevice>();
        using var doc = JsonDocument.Parse(string.IsNullOrWhiteSpace(json) ? "[]" : json);
        foreach (var link in doc.RootElement.EnumerateArray())
        {
            var info = link.TryGetProperty("linkinfo", out var li) && li.TryGetProperty("info_data", out var data) ? data : default;
            if (info.ValueKind == JsonValueKind.Object && info.TryGetProperty("type", out var type) && type.GetString() != "tap")
            {
                continue;
            }
            taps.Add(new TapDevice(link.GetProperty("ifname").GetString()!, link.TryGetProperty("master", out var master) ? master.GetString() : null));
        }
        return taps;
    }

    /// <summary>The MAC addresses the bridge learned on each of its ports: (MAC, device).</summary>
    public static async Task<IReadOnlyList<(string Mac, string Device)>> LearnedMacsAsync(string bridge, CancellationToken cancellationToken, string? netns = null)
    {
        CheckName(bridge);
        var json = await RunAsync(In(netns, ["-j", "fdb", "show", "br", bridge]), cancellationToken, BridgeBinary);
        var macs = new List<(string, string)>();
        using var doc = JsonDocument.Parse(string.IsNullOrWhiteSpace(json) ? "[]" : json);
        foreach (var entry in doc.RootElement.EnumerateArray())
        {
            var permanent = entry.TryGetProperty("state", out var state) && state.GetString() == "permanent";
            if (!permanent && entry.TryGetProperty("mac", out var mac) && entry.TryGetProperty("ifname", out var dev))
            {
                macs.Add((mac.GetString()!, dev.GetString()!));
            }
        }
        return macs;
    }

    /// <summary>The command's words, run in the named network namespace when one is given (<c>ip -n NS …</c>; <c>bridge</c> takes it too).</summary>
    private static IReadOnlyList<string> In(string? netns, IReadOnlyList<string> args) => netns is null ? args : ["-n", netns, .. args];

    private static void CheckName(string name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > MaxDeviceNameLength || name.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
        {
            throw new BadRequestException($"'{name}' is not a network device name (1–{MaxDeviceNameLength} of a-z, 0-9, '-', '_', '.').");
        }
    }

    private static async Task<string> RunAsync(IReadOnlyList<string> args, CancellationToken cancellationToken, string? binary = null)
    {
        var (exitCode, stdout, stderr) = await RunRawAsync(args, cancellationToken, binary);
        if (exitCode != 0)
        {
            throw new FerryException($"{binary ?? IpBinary} {string.Join(' ', args)} failed ({exitCode}): {stderr.Trim()}");
        }
        return stdout;
    }

    private static Task<(int ExitCode, string Stdout, string Stderr)> RunRawAsync(IReadOnlyList<string> args, CancellationToken cancellationToken, string? binary = null) =>
        HostCommand.RunAsync(binary ?? IpBinary, args, "the Debian package iproute2", cancellationToken);
}

/// <summary>A tap device: its name and the bridge it is on (null: none).</summary>
public sealed record TapDevice(string Name, string? Bridge);
