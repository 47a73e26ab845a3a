using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Ferry.Tests.Virt.Qemu;

/// <summary>The TCP sockets in LISTEN state on this machine, read with iproute2's <c>ss</c> (what an operator would check).</summary>
internal static class ListeningSockets
{
    /// <summary>Every listening endpoint of process <paramref name="pid"/>.</summary>
    public static async Task<IReadOnlyList<IPEndPoint>> OfProcessAsync(int pid) =>
        [.. (await ListAsync()).Where(l => l.Users.Contains($"pid={pid.ToString(CultureInfo.InvariantCulture)},", StringComparison.Ordinal)).Select(l => l.Local)];

    /// <summary>Every listening endpoint on <paramref name="port"/>, whichever process owns it.</summary>
    public static async Task<IReadOnlyList<IPEndPoint>> OnPortAsync(int port) =>
        [.. (await ListAsync()).Where(l => l.Local.Port == port).Select(l => l.Local)];

    /// <summary>True when a connection to <paramref name="address"/>:<paramref name="port"/> is refused.</summary>
    public static async Task<bool> RefusesAsync(string address, int port)
    {
        using var client = new TcpClient(AddressFamily.InterNetwork);
        try
        {
            await client.ConnectAsync(IPAddress.Parse(address), port);
            return false;
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionRefused)
        {
            return true;
        }
    }

    private static async Task<List<(IPEndPoint Local, string Users)>> ListAsync()
    {
        var psi = new ProcessStartInfo("ss", "-Hltnp") { RedirectStandardOutput = true, UseShellExecute = false };
        using var ss = Process.Start(psi)!;
        var output = await ss.StandardOutput.ReadToEndAsync();
        await ss.WaitForExitAsync();
        var sockets = new List<(IPEndPoint, string)>();
        foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            // State Recv-Q Send-Q Local:Port Peer:Port [users:(("name",pid=N,fd=M))]
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length >= 5 && IPEndPoint.TryParse(fields[3].Replace("*:", "0.0.0.0:", StringComparison.Ordinal), out var local))
            {
                sockets.Add((local, fields.Length > 5 ? fields[5] : ""));
            }
        }
        return sockets;
    }
}
